"""The training loop's device path: losses and accuracies read from the device once per
logging interval (the same numbers as reading every step), no reads in between,
divergence recorded where it happened, batches drawn from a device-resident epoch
order, explicit and recorded precision; the same for multi-view (SupCon) and
GC-penalty runs and the fine-tuning probe (its losses read once per check); on CUDA
(skipped without one) bf16 autocast, channels_last and steps that never wait for the
GPU; and bench/bench_train_loop.py."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections import Counter

import numpy as np
import pytest
import torch
import yaml
from pipeline import REPO
from test_estimate import SMOKE, TINY
from test_supcon_training import encoder_spec
from test_train import CLS_CONSTANT, LPC, fresh_model, make_data, make_spec, quiet_train

import ncrepro.train.device_data as device_data
from ncrepro.estimate import load_rates
from ncrepro.models import build_model
from ncrepro.probes.finetune import finetune_probe
from ncrepro.train import build_for_spec, train, write_run_record
from ncrepro.train.device_data import DeviceDataset, Normalizer, batch_indices, to_device
from ncrepro.train.objectives import build_objective, objective_config
from ncrepro.train.optim import build_optimizer
from ncrepro.train.steps import StepLoop, place_model


def step_loop(spec, model, images, labels, device="cpu", precision=None) -> StepLoop:
    """The StepLoop `train` builds for `spec` (same optimizer, objective, data, schedule)."""
    cfg = spec["training"]
    return StepLoop(
        model,
        build_optimizer(model, spec),
        build_objective(objective_config(spec)),
        DeviceDataset(images, labels, device),
        Normalizer.fit(images, cfg["normalize"]).to(device),
        batch_size=cfg["batch_size"],
        seed=spec["seed"],
        total_steps=cfg["steps"],
        augment=cfg["augment"],
        views=cfg.get("views", 1),
        precision=precision,
    )


def per_step_reference(spec, images, labels, model=None):
    """The log read the old way, every step's loss and correct count as Python numbers:
    (rows (step, mean loss, accuracy, lr), model, the diverged step and its result).
    `model`: a fresh one for `spec` (default: `fresh_model()`); accuracy NaN without a
    classifier."""
    cfg = spec["training"]
    # the layout train() gives the model (channels_last for image batches)
    model = place_model(model or fresh_model(), torch.device("cpu"), images.ndim == 4)
    loop = step_loop(spec, model, images, labels)
    model.train()
    rows, loss_sum, correct, n = [], 0.0, 0, 0
    for step in range(cfg["steps"]):
        result = loop.run(step)
        if result.diverged:
            return rows, model, step + 1, result
        loss_sum += result.loss * len(result.labels)
        correct += result.correct() if result.logits is not None else 0
        n += len(result.labels)
        if (step + 1) % cfg["log_every"] == 0 or step + 1 == cfg["steps"]:
            accuracy = correct / n if result.logits is not None else math.nan
            rows.append((step + 1, loss_sum / n, accuracy, result.lrs[0]))
            loss_sum, correct, n = 0.0, 0, 0
    return rows, model, None, None


def test_logged_numbers_equal_a_per_step_reference(tmp_path):
    images, labels = make_data()
    # a partial last interval (23), a per-epoch coefficient (gamma), two param groups
    spec = {**make_spec(steps=23, augment="crop_flip", param_groups=CLS_CONSTANT), "objective": LPC}
    model = fresh_model()
    result = quiet_train(spec, images, labels, tmp_path, model=model)
    rows, reference_model, diverged, _ = per_step_reference(spec, images, labels)
    assert diverged is None and result.status == "completed"
    log = result.log
    assert list(log["step"]) == [5, 10, 15, 20, 23]
    assert [tuple(r) for r in log[["step", "loss", "accuracy", "lr"]].to_numpy()] == rows
    assert {"lr_cls", "gamma"} <= set(log.columns)
    reference_state = reference_model.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, reference_state[name]), name


READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")
# selections whose size depends on the values: CUDA must finish them before the host
# knows the size (as does indexing with a boolean mask)
SIZED_BY_VALUES = ("nonzero", "argwhere", "masked_select", "unique")


def _has_mask(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def _copied_to_a_device(tensor, *args, **kwargs) -> bool:
    """`Tensor.to` given a device (or a tensor on one) by any caller but `to_device`: a
    copy from pageable host memory, which waits for the GPU's queued work."""
    targets = [*args, kwargs.get("device")]
    moves = any(isinstance(t, str | torch.device | torch.Tensor) for t in targets)
    # frame 2: the caller of the patched `Tensor.to` (frame 1 is its wrapper)
    return moves and sys._getframe(2).f_code is not to_device.__code__


def record_host_waits(monkeypatch) -> list:
    """Record, on any device, every way the code run can make the host wait for a CUDA
    device: a read of a tensor's value (READS), a selection sized by the values
    (SIZED_BY_VALUES, a boolean-mask index: "mask"), and a host tensor moved or built on
    a device other than through `to_device` ("copy"); and each update `StepLoop.run(s)`
    as the number s. Returns the list the events are appended to, in order."""
    events = []

    def record(owner, name, event=None, when=None):
        original = getattr(owner, name)

        def recorded(*args, _original=original, **kwargs):
            if when is None or when(*args, **kwargs):
                events.append(event or name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)

    for name in READS:
        record(torch.Tensor, name)
    for name in SIZED_BY_VALUES:
        record(torch.Tensor, name)
        record(torch, name)
    record(torch.Tensor, "__getitem__", "mask", lambda tensor, index: _has_mask(index))
    record(torch.Tensor, "to", "copy", _copied_to_a_device)
    record(torch, "tensor", "copy", lambda *args, device=None, **kwargs: device is not None)
    run = StepLoop.run

    def stepped(self, step):
        events.append(step)
        return run(self, step)

    monkeypatch.setattr(StepLoop, "run", stepped)
    return events


def waits_after(events: list) -> Counter:
    """Step count after an update -> the waits recorded from its start until the next
    update (so a wait inside every update shows at every step)."""
    waits, done = Counter(), None
    for event in events:
        if isinstance(event, int):
            done = event + 1
        elif done is not None:
            waits[done] += 1
    return waits


def test_no_device_reads_between_logging_steps(tmp_path, monkeypatch):
    """Every way the host can wait for the device (`record_host_waits`) is counted, and
    where: none between logging steps, checkpoints and the end; at least one (the
    interval's read) at each."""
    events = record_host_waits(monkeypatch)
    images, labels = make_data()
    spec = make_spec(steps=17, log_every=5, augment="crop_flip")
    spec["checkpoint_steps"] = [12]
    result = quiet_train(spec, images, labels, tmp_path)
    assert result.status == "completed" and list(result.checkpoints) == [12]
    waits = waits_after(events)
    assert set(waits) == {5, 10, 12, 15, 17}
    assert all(waits[s] >= 1 for s in (5, 10, 12, 15, 17))


GC_EXACT = {"name": "gc_penalty", "rate": 0.1}
GC_PROJECTIONS = {**GC_EXACT, "estimator": "projections", "projections": 3}


@pytest.mark.parametrize(
    "case",
    [
        "supcon_2_views",  # SupCon views (colour jitter), an encoder without classifier
        "supcon_geometric_3_views",
        "supcon_ce_1_view",  # anchors without a positive in batches of 8 from 8 classes
        "gc_exact",
        "gc_projections",
    ],
)
def test_view_and_gc_runs_wait_only_at_logging_steps(tmp_path, monkeypatch, case):
    """Multi-view (SupCon) and GC-penalty runs: no host wait between logging steps and
    checkpoints (no value read, no selection sized by the values, no copy from the host
    but `to_device`'s), and the per-step reference's log and weights, bit for bit."""
    if case.startswith("gc"):
        images, labels = make_data()
        spec = {
            **make_spec(steps=12, augment="crop_flip"),
            "arch": "mlp",
            "width": 0.03125,  # 32 hidden units: the penalty's double backward stays cheap
            "objective": GC_EXACT if case == "gc_exact" else GC_PROJECTIONS,
        }
        classes = 3
    else:
        rng = np.random.default_rng(2)
        images = rng.integers(0, 256, (24, 3, 8, 8), dtype=np.uint8)
        views = {"supcon_2_views": 2, "supcon_geometric_3_views": 3}.get(case, 1)
        augment = {"supcon_geometric_3_views": "supcon_geometric"}.get(case, "supcon")
        spec = {**encoder_spec(steps=12, views=views, augment=augment), "arch": "mlp"}
        classes = 3
        if case == "supcon_ce_1_view":
            spec.pop("classifier")
            spec["objective"] = {"name": "supcon_ce", "temperature": 0.1, "gamma": 0.01}
            classes = 8
        labels = np.arange(24) % classes
    spec["checkpoint_steps"] = [7]

    def model():
        return build_for_spec(spec, classes, images.shape[1:])

    rows, reference_model, diverged, _ = per_step_reference(spec, images, labels, model())
    events = record_host_waits(monkeypatch)
    trained = model()
    result = quiet_train(spec, images, labels, tmp_path, model=trained)
    monkeypatch.undo()
    assert diverged is None and result.status == "completed" and list(result.checkpoints) == [7]
    assert set(waits_after(events)) == {5, 7, 10, 12}
    log = result.log[["step", "loss", "accuracy", "lr"]].to_numpy()
    np.testing.assert_array_equal(log, np.array(rows))  # NaN accuracies of an encoder equal
    assert np.isnan(log[:, 2]).all() == (spec.get("classifier") == "none")
    reference_state = reference_model.state_dict()
    for name, value in trained.state_dict().items():
        assert torch.equal(value, reference_state[name]), name


def finetune_mlp(**kwargs) -> dict:
    """A fine-tune of a seeded MLP on `make_data` (3 classes, 8×8), model returned."""
    images, labels = make_data()
    torch.manual_seed(1)
    model = build_model("mlp", num_classes=2, in_channels=1, image_size=8, hidden=32)
    settings = dict(num_classes=3, steps=25, batch_size=16, seed=3, normalizer="pixel")
    settings.update(kwargs)
    return finetune_probe(
        model, images, labels, images[:20], labels[:20], return_model=True, **settings
    )


@pytest.mark.parametrize("lr", [0.05, 1e8])
def test_finetune_reads_its_losses_once_per_check(monkeypatch, lr):
    """The fine-tuning probe waits for the device only every `check_every` steps and at
    the end; status, steps done, last loss, metrics and (completed) weights are those of
    the per-step check (`check_every=1`, the probe's old loop). lr 1e8 diverges at step
    3, inside the first interval: recorded there, still "diverged"."""
    reference = finetune_mlp(lr=lr, lr_schedule="constant", check_every=1)
    events = record_host_waits(monkeypatch)
    result = finetune_mlp(lr=lr, lr_schedule="constant", check_every=10)
    monkeypatch.undo()
    net, reference_net = result.pop("model"), reference.pop("model")
    if lr == 0.05:
        assert result["status"] == "completed" and result["steps_done"] == 25
        assert set(waits_after(events)) == {10, 20, 25}  # 25: the last read and evaluation
        assert math.isfinite(result["last_batch_loss"])
        for name, value in net.state_dict().items():
            assert torch.equal(value, reference_net.state_dict()[name]), name
    else:
        assert result["status"] == reference["status"] == "diverged"
        assert result["steps_done"] == reference["steps_done"] == 3
        assert set(waits_after(events)) == {10}  # noticed at the first check, not later
        assert math.isnan(result["last_batch_loss"]) and math.isnan(result["accuracy"])
    np.testing.assert_equal(result, reference)  # every value (NaN equals NaN)
    with pytest.raises(ValueError, match="check_every must be an integer >= 1"):
        finetune_mlp(lr=lr, check_every=0)


def test_divergence_mid_interval_is_recorded_where_it_happened(tmp_path):
    """lr 1e4 diverges between logging steps (every 10), before the checkpoint at 9: the
    run is the per-step check's: status, final step, log row, checkpoints."""
    images, labels = make_data()
    spec = make_spec(steps=20, lr=1e4, log_every=10, checkpoints={"schedule": "linear"})
    spec["checkpoint_steps"] = [3, 6, 9, 12]
    _, _, diverged_at, reference = per_step_reference(spec, images, labels)
    assert diverged_at is not None and 6 < diverged_at < 9  # inside the interval
    result = quiet_train(spec, images, labels, tmp_path)
    assert result.status == "diverged" and result.final_step == diverged_at
    assert result.checkpoints == {3: "step3.pt", 6: "step6.pt"}
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["step3.pt", "step6.pt"]
    assert not (tmp_path / "s").exists()  # no resume state left
    (row,) = result.log.to_dict("records")  # the first log row would have been at 10
    assert row["step"] == diverged_at and math.isnan(row["accuracy"])
    assert row["lr"] == reference.lrs[0] and not math.isfinite(row["loss"])


def test_batches_come_from_one_device_order_per_epoch(monkeypatch):
    calls = []
    permutation = device_data.epoch_permutation

    def counted(n, seed, epoch):
        calls.append(epoch)
        return permutation(n, seed, epoch)

    monkeypatch.setattr(device_data, "epoch_permutation", counted)
    images, labels = make_data(n=50)
    data = DeviceDataset(images, labels, "cpu")
    for batch in (16, 7, 64):  # 64 > 50: one batch of all 50 per epoch
        per_epoch = 50 // min(batch, 50)
        expected = [batch_indices(50, batch, step, 2) for step in range(3 * per_epoch)]
        calls.clear()
        for step, indices in enumerate(expected):
            assert torch.equal(data.batch_index(batch, step, 2), indices)
        assert calls == [0, 1, 2]  # one permutation (one copy to the device) per epoch


def test_precision_is_explicit_and_recorded(tmp_path):
    images, labels = make_data()
    spec = make_spec(steps=10)
    result = quiet_train(spec, images, labels, tmp_path)
    assert result.arithmetic == {"precision": "fp32", "channels_last": True}  # image batches
    np.save(tmp_path / "train_index.npy", np.arange(len(labels)))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text("{}")
    record = write_run_record(
        tmp_path / "run.json",
        spec=spec,
        run="r",
        result=result,
        ckpt_dir=tmp_path / "c",
        device=torch.device("cpu"),
        wall_time_s=1.0,
        code_version="test",
        data_dir=tmp_path / "data",
        n_params=1,
    )
    assert record["device"]["precision"] == "fp32"
    assert record["device"]["channels_last"] is True
    # bf16 autocast is a choice on the CPU too: logits in bfloat16, loss in float32
    loop = step_loop(spec, fresh_model(), images, labels, precision="bf16-autocast")
    step = loop.run(0)
    assert step.logits.dtype == torch.bfloat16 and step.loss_tensor.dtype == torch.float32
    assert math.isfinite(step.loss)
    explicit = train(
        spec,
        "r",
        fresh_model(),
        images,
        labels,
        tmp_path / "c2",
        tmp_path / "s2",
        device=torch.device("cpu"),
        log=lambda m: None,
        precision="bf16-autocast",
    )
    assert explicit.arithmetic["precision"] == "bf16-autocast"
    assert not explicit.log["loss"].equals(result.log["loss"])
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        step_loop(spec, fresh_model(), images, labels, precision="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_steps_are_bf16_channels_last_and_never_wait(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(256, 3, 32, 32), dtype=np.uint8)
    labels = (np.arange(256) % 10).astype(np.int64)
    spec = {
        **make_spec(steps=12, augment="crop_flip", log_every=6),
        "arch": "resnet18",
        "width": 0.125,
        "checkpoint_steps": [6, 12],
    }
    spec["training"]["batch_size"] = 32
    cuda = torch.device("cuda")
    model = build_for_spec(spec, 10, (3, 32, 32))
    result = train(
        spec,
        "r",
        model,
        images,
        labels,
        tmp_path / "c",
        tmp_path / "s",
        device=cuda,
        log=lambda m: None,
    )
    assert result.arithmetic == {"precision": "bf16-autocast", "channels_last": True}
    assert result.status == "completed" and np.isfinite(result.log["loss"]).all()
    convs = [p for p in model.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)

    loop = step_loop(spec, model, images, labels, device=cuda)
    loop.run(0)  # first use: cuDNN plans, allocator and pinned-memory pools
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync now raises
    try:
        steps = [loop.run(step) for step in range(1, 6)]  # epoch 0: 8 batches of 32
        counts = [step.correct_tensor() for step in steps]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert steps[0].logits.dtype == torch.bfloat16
    assert all(math.isfinite(v) for v in torch.stack([s.loss_tensor for s in steps]).tolist())
    assert all(0 <= int(c) <= 32 for c in counts)


def test_bench_quick_compares_both_loops_and_writes_rates(tmp_path, capsys):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(TINY))
    path = REPO / "bench" / "bench_train_loop.py"
    spec = importlib.util.spec_from_file_location("bench_train_loop", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    rates_file = tmp_path / "rates.json"
    argv = ["--quick", "--preset", SMOKE, "--preset", str(tiny), "--rates-file", str(rates_file)]
    try:
        assert bench.main(argv) == 0
    finally:
        torch.set_num_threads(threads)  # --quick runs on one thread
    out = capsys.readouterr().out
    ours = float(re.search(r"ncrepro loop\s+([\d.e+-]+) steps/s", out).group(1))
    plain = float(re.search(r"plain loop\s+([\d.e+-]+) steps/s", out).group(1))
    ratio = float(re.search(r"ratio ncrepro / plain: ([\d.]+)", out).group(1))
    assert ours > 0 and plain > 0 and ratio == pytest.approx(ours / plain, rel=0.01, abs=1e-3)
    assert "1 warm-up + 2 timed steps" in out
    rates = load_rates(rates_file=rates_file)
    assert set(rates.throughput) == {"resnet18", "mlp"}  # the tiny preset's architectures
    # measured at batch 8: the estimate's rates are per 128 images
    measured = float(re.search(r"  resnet18\s+([\d.e+-]+) steps/s", out).group(1))
    assert rates.steps_per_s("resnet18") == pytest.approx(measured * 8 / 128, rel=1e-3)
    assert "nc_limits: 3 training runs" in out and "TOTAL" in out
