"""Training loop: determinism, resume after a kill, divergence, checkpoints, schedules."""

import math

import numpy as np
import pytest
import torch

from ncrepro.train.device_data import Normalizer, batch_indices, crop_flip
from ncrepro.train.loop import (
    CheckpointError,
    Interrupted,
    load_checkpoint,
    lr_at,
    save_checkpoint,
    train,
)


class TinyNet(torch.nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2),
            torch.nn.Flatten(),
        )
        self.classifier = torch.nn.Linear(16, num_classes)

    def penultimate(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.penultimate(x))


def make_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    images[labels == 0, :, :4] //= 4  # a learnable signal
    return images, labels.astype(np.int64)


def make_spec(steps=20, lr=0.05, **training):
    t = {
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 16,
        "steps": steps,
        "lr_schedule": "cosine",
        "normalize": "pixel",
        "augment": "none",
        "checkpoints": {"schedule": "linear", "every": 5},
        "log_every": 5,
    }
    t.update(training)
    return {
        "arch": "tiny",
        "seed": 3,
        "lr": lr,
        "training": t,
        "checkpoint_steps": list(range(5, steps + 1, 5)),
    }


def fresh_model():
    torch.manual_seed(3)
    return TinyNet()


def test_resume_after_kill_is_identical(tmp_path):
    images, labels = make_data()
    spec = make_spec(augment="crop_flip")
    ref = train(
        spec,
        "r",
        fresh_model(),
        images,
        labels,
        tmp_path / "a/ckpt",
        tmp_path / "a/s",
        device=torch.device("cpu"),
        log=lambda m: None,
    )
    with pytest.raises(Interrupted):
        train(
            spec,
            "r",
            fresh_model(),
            images,
            labels,
            tmp_path / "b/ckpt",
            tmp_path / "b/s",
            device=torch.device("cpu"),
            log=lambda m: None,
            interrupt_at=12,
        )
    # the rerun starts from a *different* fresh model: everything must come from the state
    torch.manual_seed(99)
    resumed = train(
        spec,
        "r",
        TinyNet(),
        images,
        labels,
        tmp_path / "b/ckpt",
        tmp_path / "b/s",
        device=torch.device("cpu"),
        log=lambda m: None,
    )
    assert resumed.status == ref.status == "completed"
    assert resumed.checkpoints == ref.checkpoints == {s: f"step{s}.pt" for s in (5, 10, 15, 20)}
    for step in (5, 10, 15, 20):
        a = load_checkpoint(tmp_path / f"a/ckpt/step{step}.pt", run="r", arch="tiny")["model"]
        b = load_checkpoint(tmp_path / f"b/ckpt/step{step}.pt", run="r", arch="tiny")["model"]
        for key in a:
            assert torch.equal(a[key], b[key]), (step, key)
    pd_a, pd_b = ref.log.reset_index(drop=True), resumed.log.reset_index(drop=True)
    assert pd_a[["step", "loss", "accuracy"]].equals(pd_b[["step", "loss", "accuracy"]])
    assert not (tmp_path / "b/s/resume.pt").exists()


def test_divergence_is_recorded_not_raised(tmp_path):
    images, labels = make_data()
    result = train(
        make_spec(lr=1e12),
        "r",
        fresh_model(),
        images,
        labels,
        tmp_path / "c",
        tmp_path / "s",
        device=torch.device("cpu"),
        log=lambda m: None,
    )
    assert result.status == "diverged"
    assert result.final_step < 20
    assert not math.isfinite(result.log["loss"].iloc[-1])


def test_stop_on_loss_and_cap(tmp_path):
    images, labels = make_data()
    spec = make_spec(steps=40, stop_loss=10.0, checkpoints={"schedule": "final"})
    spec["checkpoint_steps"] = [40]
    result = train(
        spec,
        "r",
        fresh_model(),
        images,
        labels,
        tmp_path / "c",
        tmp_path / "s",
        device=torch.device("cpu"),
        log=lambda m: None,
    )
    assert result.status == "stopped_on_loss" and result.final_step == 5
    assert result.checkpoints == {5: "step5.pt"}
    spec["training"]["stop_loss"] = 1e-30
    result = train(
        spec,
        "r",
        fresh_model(),
        images,
        labels,
        tmp_path / "d",
        tmp_path / "s2",
        device=torch.device("cpu"),
        log=lambda m: None,
    )
    assert result.status == "capped" and result.checkpoints == {40: "step40.pt"}


def test_checkpoint_checks(tmp_path):
    model = fresh_model()
    save_checkpoint(tmp_path / "c.pt", model, "run-a", "tiny", 5)
    assert load_checkpoint(tmp_path / "c.pt", run="run-a", arch="tiny")["step"] == 5
    with pytest.raises(CheckpointError, match="belongs to run run-a"):
        load_checkpoint(tmp_path / "c.pt", run="run-b")
    with pytest.raises(CheckpointError, match="expected resnet18"):
        load_checkpoint(tmp_path / "c.pt", arch="resnet18")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_lr_schedules():
    assert lr_at(0, 0.1, 100, "cosine") == pytest.approx(0.1)
    assert lr_at(50, 0.1, 100, "cosine") == pytest.approx(0.05)
    assert lr_at(100, 0.1, 100, "cosine") == pytest.approx(0.0)
    assert lr_at(77, 0.1, 100, "constant") == 0.1


def test_batch_order_is_a_function_of_seed_and_step():
    n, b = 50, 16  # 3 full batches per epoch, the partial one dropped
    epoch0 = torch.cat([batch_indices(n, b, s, seed=1) for s in range(3)])
    assert len(set(epoch0.tolist())) == 48
    assert torch.equal(batch_indices(n, b, 4, seed=1), batch_indices(n, b, 4, seed=1))
    assert not torch.equal(batch_indices(n, b, 3, seed=1), batch_indices(n, b, 0, seed=1))
    assert not torch.equal(batch_indices(n, b, 0, seed=1), batch_indices(n, b, 0, seed=2))


def test_normalizer_and_augmentation():
    images, _ = make_data()
    norm = Normalizer.fit(images, "pixel")
    x = norm(torch.from_numpy(images)).double()
    assert torch.allclose(x.mean(0), torch.zeros_like(x[0]), atol=1e-5)
    batch = torch.from_numpy(images[:8])
    out = crop_flip(batch, step=3, seed=0)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert torch.equal(out, crop_flip(batch, step=3, seed=0))
    # pad 0, no flip possible to distinguish: with pad=0 every crop is the identity or a flip
    same = crop_flip(batch, step=3, seed=0, pad=0)
    flipped = batch.flip(-1)
    for i in range(8):
        assert torch.equal(same[i], batch[i]) or torch.equal(same[i], flipped[i])


def test_sgd_matches_torch_optim_bit_for_bit():
    """ncrepro.train.sgd.SGD (no torch.optim import) = torch.optim.SGD on CPU, with an LR
    change between steps, a parameter without gradient, and a state_dict round trip."""
    from ncrepro.train.sgd import SGD

    def model():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
        net.add_module("unused", torch.nn.Linear(2, 2))
        return net

    ours_net, ref_net = model(), model()
    ours = SGD(ours_net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    ref = torch.optim.SGD(ref_net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for step in range(6):
        for opt, net in ((ours, ours_net), (ref, ref_net)):
            opt.param_groups[0]["lr"] = 0.1 / (1 + step)
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net[:3](x), y).backward()
            opt.step()
        if step == 2:  # resume mid-way into a fresh optimizer
            state = ours.state_dict()
            ours = SGD(ours_net.parameters(), lr=1.0)
            ours.load_state_dict(state)
    for a, b in zip(ours_net.parameters(), ref_net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert ours.momentum_buffers[-1] is None  # the unused layer never moved
