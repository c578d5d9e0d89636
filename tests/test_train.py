"""Training loop: determinism, resume after a kill, divergence, checkpoints, schedules."""

import math
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import yaml
from pipeline import REPO

from ncrepro.models.base import ACTIVATIONS
from ncrepro.train import build_for_spec
from ncrepro.train.device_data import Normalizer, batch_indices, crop_flip
from ncrepro.train.loop import (
    CheckpointError,
    Interrupted,
    load_checkpoint,
    save_checkpoint,
    train,
)
from ncrepro.train.objectives import OBJECTIVES, Objective, build_objective
from ncrepro.train.optim import OPTIMIZERS
from ncrepro.train.schedules import SCHEDULES, check_schedule, epoch_at, lr_at


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


def quiet_train(spec, images, labels, tmp_path, *, model=None, run="r", dirs=("c", "s")):
    """`train` on the CPU without log output, checkpoints and scratch under tmp_path."""
    return train(
        spec,
        run,
        fresh_model() if model is None else model,
        images,
        labels,
        tmp_path / dirs[0],
        tmp_path / dirs[1],
        device=torch.device("cpu"),
        log=lambda m: None,
    )


# Each configuration changes the LR schedule and/or objective coefficients across the
# interrupt at step 12 (epoch = 16 · step // 60 = 3; the step schedule decays every epoch).
STEP_LR = {"name": "step", "factor": 0.5, "every": 1, "start": 1}
LPC = {"name": "feature_penalty", "gamma": 0.01, "gamma_factor": 2.0, "gamma_max": 0.05}
CLS_CONSTANT = [{"params": ["classifier"], "lr_schedule": "constant", "name": "cls"}]
NONLINEAR_HEAD = {"kind": "nonlinear", "width": 4, "hidden": 16, "activation": "silu"}
RESUME_CASES = {
    "sgd-momentum-cross_entropy": ({}, {}),
    "sgd-plain-step_lr": ({}, {"momentum": 0.0, "lr_schedule": STEP_LR}),
    "sgd-feature_penalty": ({"objective": LPC}, {}),
    "adamw-feature_penalty-groups": (
        {"objective": LPC, "lr": 3e-3},
        {"optimizer": "adamw", "lr_schedule": STEP_LR, "param_groups": CLS_CONSTANT},
    ),
    "mlp-silu-head-nobias-adamw": (
        {
            "arch": "mlp",
            "arch_params": {"depth": 2, "hidden": 32, "activation": "silu"},
            "width": 1.0,
            "head": NONLINEAR_HEAD,
            "classifier": {"bias": False},
            "objective": LPC,
            "lr": 3e-3,
        },
        {"optimizer": "adamw", "betas": [0.8, 0.99], "param_groups": CLS_CONSTANT},
    ),
}


def model_for(spec):
    """TinyNet, or the spec's own model (build_for_spec: arch, head, classifier)."""
    if spec["arch"] == "tiny":
        return fresh_model()
    return build_for_spec(spec, 3, (1, 8, 8))


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_after_kill_is_identical(tmp_path, case):
    images, labels = make_data()
    top, training = RESUME_CASES[case]
    spec = make_spec(augment="crop_flip", **training)
    spec.update(top)
    ref = train(
        spec,
        "r",
        model_for(spec),
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
            model_for(spec),
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
    rerun_model = (
        TinyNet() if spec["arch"] == "tiny" else build_for_spec({**spec, "seed": 9}, 3, (1, 8, 8))
    )
    resumed = train(
        spec,
        "r",
        rerun_model,
        images,
        labels,
        tmp_path / "b/ckpt",
        tmp_path / "b/s",
        device=torch.device("cpu"),
        log=lambda m: None,
    )
    assert resumed.status == ref.status == "completed"
    assert resumed.checkpoints == ref.checkpoints == {s: f"step{s}.pt" for s in (5, 10, 15, 20)}
    arch = spec["arch"]
    for step in (5, 10, 15, 20):
        a = load_checkpoint(tmp_path / f"a/ckpt/step{step}.pt", run="r", arch=arch)["model"]
        b = load_checkpoint(tmp_path / f"b/ckpt/step{step}.pt", run="r", arch=arch)["model"]
        assert list(a) == list(b)
        for key in a:
            assert torch.equal(a[key], b[key]), (step, key)
    pd_a, pd_b = ref.log.reset_index(drop=True), resumed.log.reset_index(drop=True)
    assert list(pd_a.columns) == list(pd_b.columns)
    assert pd_a.drop(columns="elapsed_s").equals(pd_b.drop(columns="elapsed_s"))
    assert math.isfinite(pd_a["loss"].iloc[-1])
    assert not (tmp_path / "b/s/resume.pt").exists()


def test_log_records_group_lrs_and_objective_coefficients(tmp_path):
    """Rows at steps 5, 10, 15, 20 hold the values of the update just before them (step
    4, 9, 14, 19: epochs 1, 2, 3, 5 with 16 · step // 60): the step schedule halves the
    default group's LR from epoch 1 on, the classifier group keeps its LR, and
    gamma = min(0.01 · 2^epoch, 0.05)."""
    images, labels = make_data()
    _, training = RESUME_CASES["adamw-feature_penalty-groups"]
    spec = {**make_spec(**training), "objective": LPC, "lr": 3e-3}
    result = quiet_train(spec, images, labels, tmp_path)
    log = result.log
    assert list(log.columns) == ["step", "lr", "loss", "accuracy", "elapsed_s", "lr_cls", "gamma"]
    assert [epoch_at(s - 1, 16, 60) for s in log["step"]] == [1, 2, 3, 5]
    assert log["lr"].tolist() == [3e-3 / 2, 3e-3 / 4, 3e-3 / 8, 3e-3 / 32]
    assert log["lr_cls"].tolist() == [3e-3] * 4
    assert log["gamma"].tolist() == [0.02, 0.04, 0.05, 0.05]


def test_a_new_objective_joins_the_registry_without_loop_changes(tmp_path, monkeypatch):
    """What later objectives need (ArcFace reads the classifier's weights, a gradient-norm
    penalty differentiates through the model) reaches `loss`: the model, the batch's
    inputs and labels; the objective's coefficients land in the log."""
    seen = []

    class ClassifierWeightPenalty(Objective):
        name = "classifier_weight_penalty"

        def __init__(self, *, lam):
            self.lam = lam

        def coefficients(self, step, epoch):
            return {"lam": self.lam * (epoch + 1)}

        def loss(self, batch, coefficients):
            seen.append((batch.inputs.shape, batch.labels.shape, batch.model))
            penalty = batch.model.classifier.weight.pow(2).sum()
            ce = torch.nn.functional.cross_entropy(batch.outputs.logits, batch.labels)
            return ce + coefficients["lam"] * penalty

    monkeypatch.setitem(OBJECTIVES, ClassifierWeightPenalty.name, ClassifierWeightPenalty)
    images, labels = make_data()
    spec = {**make_spec(steps=10), "objective": {"name": "classifier_weight_penalty", "lam": 0.1}}
    model = fresh_model()
    result = quiet_train(spec, images, labels, tmp_path, model=model)
    assert result.status == "completed" and len(seen) == 10
    assert all(s == (torch.Size([16, 1, 8, 8]), torch.Size([16]), model) for s in seen)
    expected = [0.1 * (epoch_at(step - 1, 16, 60) + 1) for step in (5, 10)]  # epochs 1, 2
    assert result.log["lam"].tolist() == expected


def test_resume_state_of_another_format_is_refused(tmp_path):
    images, labels = make_data()
    spec = make_spec()
    (tmp_path / "s").mkdir()
    torch.save({"format": "ncrepro-resume-2", "run": "r"}, tmp_path / "s/resume.pt")
    with pytest.raises(CheckpointError, match=r"another ncrepro version\); delete it"):
        train(
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


def test_divergence_is_recorded_not_raised(tmp_path):
    images, labels = make_data()
    result = quiet_train(make_spec(lr=1e12), images, labels, tmp_path)
    assert result.status == "diverged"
    assert result.final_step < 20
    assert not math.isfinite(result.log["loss"].iloc[-1])


def test_stop_on_loss_and_cap(tmp_path):
    images, labels = make_data()
    spec = make_spec(steps=40, stop_loss=10.0, checkpoints={"schedule": "final"})
    spec["checkpoint_steps"] = [40]
    result = quiet_train(spec, images, labels, tmp_path)
    assert result.status == "stopped_on_loss" and result.final_step == 5
    assert result.checkpoints == {5: "step5.pt"}
    spec["training"]["stop_loss"] = 1e-30
    result = quiet_train(spec, images, labels, tmp_path, dirs=("d", "s2"))
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
    assert lr_at(77, 0.1, 100, {"name": "cosine"}) == lr_at(77, 0.1, 100, "cosine")
    assert lr_at(77, 0.1, 100, "constant") == 0.1
    # halve every 3 epochs from epoch 2: decays at epochs 2, 5, 8, ...
    step = {"name": "step", "factor": 0.5, "every": 3, "start": 2}
    lrs = [lr_at(0, 0.8, 100, step, epoch=e) for e in range(9)]
    assert lrs == [0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1]
    # defaults: factor 0.5, first decay after `every` epochs (torch's StepLR)
    assert check_schedule({"name": "step", "every": 4}) == {
        "name": "step",
        "every": 4,
        "factor": 0.5,
        "start": 4,
    }
    assert [lr_at(0, 1.0, 10, {"name": "step", "every": 4}, epoch=e) for e in (3, 4, 8)] == [
        1.0,
        0.5,
        0.25,
    ]
    for bad, match in (
        ("linear", "unknown lr schedule 'linear'"),
        ({"name": "step"}, "needs 'every'"),
        ({"name": "step", "every": 0}, "every must be an integer >= 1"),
        ({"name": "cosine", "every": 2}, "does not take every"),
    ):
        with pytest.raises(ValueError, match=match):
            check_schedule(bad)
    with pytest.raises(ValueError, match="needs the epoch"):
        lr_at(3, 0.1, 10, {"name": "step", "every": 1})


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


def test_training_does_not_import_torch_dynamo(tmp_path):
    """torch.optim's optimizers import torch._dynamo and torch.use_deterministic_algorithms
    imports torch._inductor (seconds per process together); the training stage must not,
    for either optimizer and the feature penalty, and still turns deterministic
    algorithms on (warn only) on the CPU."""
    code = f"""
import sys, pathlib, numpy as np, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_train import TinyNet, make_data, make_spec, LPC
from ncrepro.config import load_config
from ncrepro.data import prepare
from ncrepro.runspec import run_id
from ncrepro.stages.train import run_training
from ncrepro.studies.nc_limits.runs import run_spec
from ncrepro.train.loop import train
images, labels = make_data()
for optimizer in ("sgd", "adamw"):
    spec = {{**make_spec(steps=5, optimizer=optimizer), "objective": LPC}}
    out = pathlib.Path({str(tmp_path)!r}) / optimizer
    train(spec, "r", TinyNet(), images, labels, out / "c", out / "s",
          device=torch.device("cpu"), log=lambda m: None)
config = load_config({str(REPO / "config.yaml")!r}, {str(REPO / "presets/smoke.yaml")!r})
config["nc_limits"]["training"].update(steps=3, checkpoints={{"schedule": "linear", "every": 3}})
spec = run_spec(config, "digits", "resnet18", 0)
tmp = pathlib.Path({str(tmp_path)!r})
prepare("digits", config["datasets"]["digits"]["params"], "data", False, tmp / "data")
record = run_training(spec, run_id(spec), tmp / "data", tmp / "run", tmp / "scratch",
                      device="cpu", threads=1, log=lambda m: None)
assert record["status"] == "completed", record["status"]
assert torch.are_deterministic_algorithms_enabled()
assert torch.is_deterministic_algorithms_warn_only_enabled()
slow = ("torch._dynamo", "torch._inductor", "torchvision")
print(sorted(m for m in sys.modules if m.startswith(slow)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------ config schema ($defs)
def schema_defs() -> dict:
    path = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
    return yaml.safe_load(path.read_text())["$defs"]


def valid(defs: dict, name: str, instance) -> bool:
    schema = {"$defs": defs, "$ref": f"#/$defs/{name}"}
    return jsonschema.Draft202012Validator(schema).is_valid(instance)


def test_schema_defs_accept_the_new_keys_and_match_the_code():
    defs = schema_defs()
    old = make_spec()["training"]
    assert valid(defs, "training", old)  # today's blocks stay valid
    new = {
        **old,
        "optimizer": "adamw",
        "betas": [0.9, 0.99],
        "eps": 1e-6,
        "lr_schedule": {"name": "step", "factor": 0.5, "every": 10, "start": 50},
        "param_groups": [{"params": ["classifier"], "lr_schedule": "constant", "name": "cls"}],
    }
    del new["momentum"]
    assert valid(defs, "training", new)
    assert not valid(defs, "training", {**new, "optimizer": "sgd"})  # sgd needs momentum
    assert not valid(defs, "training", {**new, "lr_schedule": {"name": "step"}})
    assert not valid(defs, "training", {**new, "param_groups": [{"lr": 0.1}]})

    enum = defs["training"]["properties"]["optimizer"]["enum"]
    assert set(enum) == set(OPTIMIZERS)
    names = defs["lr_schedule"]["oneOf"][0]["enum"] + ["step"]
    assert set(names) == set(SCHEDULES)
    objective_names = {b["properties"]["name"]["const"] for b in defs["objective"]["oneOf"]}
    assert objective_names == set(OBJECTIVES)
    assert set(defs["activation"]["enum"]) == set(ACTIVATIONS)

    lpc = {"name": "feature_penalty", "gamma": 0.01, "gamma_factor": 1.1, "gamma_max": 1.0}
    for objective in ({"name": "cross_entropy"}, lpc):
        assert valid(defs, "objective", objective)
        build_objective(objective)  # what the schema accepts, the code accepts
    assert not valid(defs, "objective", {"name": "feature_penalty"})
    assert not valid(defs, "objective", {"name": "cross_entropy", "gamma": 1})

    for head in ({"kind": "linear", "width": 8}, NONLINEAR_HEAD):
        assert valid(defs, "head", head)
    assert not valid(defs, "head", {"kind": "linear", "width": 8, "activation": "silu"})
    for classifier in ("none", {"bias": False}, {}):
        assert valid(defs, "classifier", classifier)
    assert not valid(defs, "classifier", {"bias": "no"})
