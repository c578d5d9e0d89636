"""Supervised contrastive training: the SupCon views (ncrepro.train.augment), the
multi-view step (StepLoop views), the "supcon" objective, resume, and the linear probe
of the backbone representation."""

import colorsys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ncrepro.models import build_model
from ncrepro.models.base import Outputs
from ncrepro.probes.finetune import extract_features
from ncrepro.train import build_for_spec, load_checkpoint, train
from ncrepro.train.augment import (
    _crop_flip_theta,
    _hsv_to_rgb,
    _rgb_to_hsv,
    multi_view,
    supcon_view,
    view_generator,
)
from ncrepro.train.contrastive import supcon_loss
from ncrepro.train.device_data import DeviceDataset, Normalizer
from ncrepro.train.loop import Interrupted
from ncrepro.train.objectives import Batch, build_objective
from ncrepro.train.optim import build_optimizer
from ncrepro.train.steps import StepLoop


def images(n=12, channels=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def test_views_are_a_pure_function_of_seed_step_and_view():
    batch = torch.from_numpy(images())
    a = supcon_view(batch, step=3, seed=1, view=0)
    assert a.dtype == torch.float32 and a.shape == batch.shape
    assert float(a.min()) >= 0.0 and float(a.max()) <= 255.0 + 1e-4
    assert torch.equal(a, supcon_view(batch, step=3, seed=1, view=0))
    for other in ({"step": 4, "seed": 1, "view": 0}, {"step": 3, "seed": 2, "view": 0}):
        assert not torch.equal(a, supcon_view(batch, **other))
    both = multi_view(batch, step=3, seed=1, views=2)
    assert torch.equal(both[:12], a) and torch.equal(both[12:], supcon_view(batch, 3, 1, 1))
    grey = supcon_view(torch.from_numpy(images(channels=1)), step=0, seed=0, view=0)
    assert grey.shape == (12, 1, 8, 8)


def test_full_crop_is_the_identity_and_flip_mirrors():
    x = torch.from_numpy(images()).float()
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    grid = F.affine_grid(theta, [2, 1, 8, 8], align_corners=False)
    out = F.grid_sample(x[:2], grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1], x[1].flip(-1))
    # drawn crops stay inside the image: every sampling point within [-1, 1]
    theta = _crop_flip_theta(view_generator(0, 0, 0), 500).reshape(500, 2, 3)
    grids = F.affine_grid(theta, [500, 1, 8, 8], align_corners=False)
    assert float(grids.abs().max()) <= 1.0 + 1e-6


def test_hsv_round_trip_and_hue_match_colorsys():
    rng = np.random.default_rng(0)
    rgb = rng.random((50, 3))
    x = torch.tensor(rgb, dtype=torch.float32)[:, :, None, None]
    hsv = _rgb_to_hsv(x)[:, :, 0, 0].numpy()
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    np.testing.assert_allclose(hsv, expected, atol=1e-6)
    torch.testing.assert_close(_hsv_to_rgb(_rgb_to_hsv(x)), x, atol=1e-6, rtol=0)


def test_colour_jitter_and_grayscale_rates():
    """80 % of views are jittered, 20 % grey (3 equal channels) — over 4000 images."""
    batch = torch.from_numpy(images(n=4000, size=4, seed=1))
    out = supcon_view(batch, step=0, seed=0, view=0)
    grey = (out[:, 0] == out[:, 1]).all(dim=(1, 2)) & (out[:, 1] == out[:, 2]).all(dim=(1, 2))
    assert 0.17 < float(grey.float().mean()) < 0.23


def encoder_spec(steps=20, views=2, **training):
    t = {
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "batch_size": 8,
        "steps": steps,
        "lr_schedule": "cosine",
        "normalize": "channel",
        "augment": "supcon",
        "views": views,
        "checkpoints": {"schedule": "linear", "every": 5},
        "log_every": 5,
    }
    t.update(training)
    return {
        "arch": "resnet18",
        "width": 0.0625,
        "seed": 4,
        "lr": 0.05,
        "head": {"kind": "nonlinear", "width": 8},
        "classifier": "none",
        "objective": {"name": "supcon", "temperature": 0.1, "base_temperature": 0.07},
        "training": t,
        "checkpoint_steps": list(range(5, steps + 1, 5)),
    }


def test_supcon_objective_reads_views_as_n_by_v():
    features = torch.randn(6, 4)  # 2 views of 3 images, view-major
    labels = torch.tensor([0, 1, 0])
    batch = Batch(torch.zeros(6, 1), labels, Outputs(features, features, None), None, views=2)
    per_view = batch.per_view(features)
    assert torch.equal(per_view[1, 0], features[1]) and torch.equal(per_view[1, 1], features[4])
    loss = build_objective({"name": "supcon", "temperature": 0.2}).loss(batch, {})
    torch.testing.assert_close(loss, supcon_loss(per_view, labels, temperature=0.2))
    with pytest.raises(ValueError, match="not 3 views"):
        Batch(torch.zeros(6, 1), labels, Outputs(features, features, None), None, 3).per_view(
            features
        )
    with pytest.raises(ValueError, match="temperature > 0"):
        build_objective({"name": "supcon", "temperature": 0.0})


def test_views_need_the_supcon_augmentation():
    spec = encoder_spec()
    model = build_for_spec(spec, 3, (3, 8, 8))
    data = DeviceDataset(images(), np.arange(12) % 3, "cpu")
    with pytest.raises(ValueError, match="need a random view pipeline"):
        StepLoop(
            model,
            build_optimizer(model, spec),
            build_objective(spec["objective"]),
            data,
            Normalizer.fit(images(), "channel"),
            batch_size=8,
            seed=0,
            total_steps=5,
            augment="crop_flip",
            views=2,
        )


def test_supcon_training_resumes_bit_identically_and_learns(tmp_path):
    x, y = images(n=24, seed=2), np.arange(24) % 3
    x[y == 0, 0] //= 3  # a learnable colour signal per class
    x[y == 1, 2] //= 3
    spec = encoder_spec()

    def run(folder, **kw):
        model = build_for_spec(spec, 3, (3, 8, 8))
        return train(
            spec,
            "r",
            model,
            x,
            y,
            tmp_path / folder / "ckpt",
            tmp_path / folder / "s",
            device=torch.device("cpu"),
            log=lambda m: None,
            **kw,
        )

    ref = run("a")
    with pytest.raises(Interrupted):
        run("b", interrupt_at=12)
    resumed = run("b")
    assert resumed.checkpoints == ref.checkpoints
    for step in (5, 10, 15, 20):
        a = load_checkpoint(tmp_path / f"a/ckpt/step{step}.pt")["model"]
        b = load_checkpoint(tmp_path / f"b/ckpt/step{step}.pt")["model"]
        for key in a:
            assert torch.equal(a[key], b[key]), (step, key)
    losses = ref.log["loss"].to_numpy()
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert ref.log["accuracy"].isna().all()  # an encoder has no train accuracy


def test_extract_features_of_the_backbone():
    model = build_model(
        "resnet18",
        num_classes=3,
        in_channels=3,
        image_size=8,
        width=0.0625,
        head={"kind": "nonlinear", "width": 5},
        classifier="none",
    )
    x = images(n=6)
    backbone = extract_features(model, x, normalizer="channel", representation="backbone")
    head = extract_features(model, x, normalizer="channel")
    assert backbone.shape == (6, model.backbone_dim) and head.shape == (6, 5)
    with torch.no_grad():
        norm = Normalizer.fit(x, "channel")
        model.eval()
        expected = model.backbone(norm(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(backbone, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="representation must be"):
        extract_features(model, x, normalizer="channel", representation="logits")


def test_chunked_normalizer_statistics_match_the_one_shot_ones(monkeypatch):
    """Large train sets (ImageNet32) get their statistics over chunks: the same values."""
    import ncrepro.train.device_data as device_data

    x = images(n=50, size=6, seed=3)
    for kind in ("pixel", "channel"):
        whole = Normalizer.fit(x, kind)
        monkeypatch.setattr(device_data, "CHUNKED_ABOVE", 10)
        monkeypatch.setattr(device_data, "CHUNK_IMAGES", 7)
        chunked = Normalizer.fit(x, kind)
        monkeypatch.undo()
        assert chunked.mean.shape == whole.mean.shape
        torch.testing.assert_close(chunked.mean, whole.mean, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(chunked.std, whole.std, rtol=1e-6, atol=1e-7)


def test_registered_linear_probe_reads_the_backbone_when_asked():
    """probes "linear" with {"representation": "backbone"}: the encoder's representation,
    recorded in the rows; the default stays the penultimate features (no new column)."""
    from types import SimpleNamespace

    from ncrepro.probes.linear import linear_probe, linear_probe_checkpoints

    torch.manual_seed(0)
    model = build_model(
        "resnet18",
        num_classes=3,
        in_channels=3,
        image_size=8,
        width=0.0625,
        head={"kind": "nonlinear", "width": 5},
        classifier="none",
    )
    x_train, x_test = images(n=24, seed=1), images(n=12, seed=2)
    y_train, y_test = np.arange(24) % 3, np.arange(12) % 3
    norm = Normalizer.fit(x_train, "channel")
    context = SimpleNamespace(
        run="r",
        spec={"seed": 0},
        normalizer=norm,
        torch_device=torch.device("cpu"),
        view=lambda split, task: {"train": (x_train, y_train), "test": (x_test, y_test)}[split],
        checkpoints=lambda: [{"step": 5}],
        model_at=lambda step: model,
        num_classes=lambda task: 3,
    )
    rows = linear_probe_checkpoints(context, {"task": "pretrain", "representation": "backbone"})
    backbone = [
        extract_features(model, x, normalizer=norm, representation="backbone")
        for x in (x_train, x_test)
    ]
    expected = linear_probe(backbone[0], y_train, backbone[1], y_test, num_classes=3)
    assert rows[0]["value"] == expected["accuracy"] and rows[0]["representation"] == "backbone"
    default = linear_probe_checkpoints(context, {"task": "pretrain"})
    assert "representation" not in default[0]
