"""Iteration-based training with a checkpoint schedule, resume and divergence handling.

Everything random is a pure function of (seed, step): model init uses the seed,
the batch order and augmentation are seeded per step (see device_data), and the
LRs and objective coefficients are functions of the step (see schedules). A run
resumed from its last saved state (model, optimizer state, log) therefore continues
exactly as an uninterrupted run would (bit-identical on CPU). One update is
`ncrepro.train.steps.StepLoop.run`, shared with the fine-tuning probe.

The loop reads numbers from the device only when it needs them: each step's loss and
correct count stay device tensors until the next logging step, checkpoint or resume save
(`PendingSteps`), where one transfer brings the whole interval's values back; between them
the host only queues work. Divergence (a NaN/inf loss) is therefore noticed within one
logging interval (`log_every` steps) and always before a checkpoint or resume state is
written, and recorded at the step where it happened, exactly as a per-step check would:
the same status, final step, log rows and checkpoints. The steps run after it until it
is noticed are wasted compute, nothing more.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ncrepro.atomic import atomic_output, write_json
from ncrepro.errors import CheckpointError, DeviceError, Interrupted
from ncrepro.provenance import (
    git_state,
    package_versions,
    sha256_file,
    slurm_state,
)
from ncrepro.train.device_data import DeviceDataset, Normalizer
from ncrepro.train.objectives import build_objective, objective_config
from ncrepro.train.optim import build_optimizer
from ncrepro.train.steps import StepLoop, StepResult, place_model, uses_channels_last

CKPT_FORMAT = "ncrepro-checkpoint-1"
RESUME_FORMAT = "ncrepro-resume-3"  # 3: ncrepro.train.optim state (groups, SGD or AdamW)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "device 'cuda' requested but this machine has no CUDA device: use "
            "--config device=auto (GPU where there is one) or device=cpu"
        )
    return torch.device(name)


def save_checkpoint(path: Path, model: torch.nn.Module, run: str, arch: str, step: int) -> None:
    payload = {"format": CKPT_FORMAT, "run": run, "arch": arch, "step": step}
    with atomic_output(path) as tmp:
        torch.save({**payload, "model": model.state_dict()}, tmp)


def load_checkpoint(path: str | Path, *, run: str | None = None, arch: str | None = None) -> dict:
    """Load a checkpoint safely (weights_only) and check it belongs to `run`/`arch`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path} is not an ncrepro checkpoint")
    if run is not None and ckpt["run"] != run:
        raise CheckpointError(f"checkpoint {path} belongs to run {ckpt['run']}, not {run}")
    if arch is not None and ckpt["arch"] != arch:
        raise CheckpointError(f"checkpoint {path} is a {ckpt['arch']} model, expected {arch}")
    return ckpt


@dataclass
class TrainResult:
    status: str  # completed | diverged | stopped_on_loss | capped
    final_step: int
    checkpoints: dict[int, str] = field(default_factory=dict)  # step -> file name
    log: pd.DataFrame | None = None
    # how the numbers were made: {"precision": "fp32" | "bf16-autocast", "channels_last"}
    arithmetic: dict = field(default_factory=dict)


@dataclass
class _Divergence:
    step: int  # the step count after the update whose loss was not finite
    loss: float
    result: StepResult


class PendingSteps:
    """The steps since the last read of the device: their losses and correct counts as
    device tensors, read back in one transfer by `flush`."""

    def __init__(self, scored: bool):
        self.scored = scored
        self.steps: list[tuple[int, StepResult, torch.Tensor | None]] = []

    def add(self, step: int, result: StepResult) -> None:
        correct = result.correct_tensor() if self.scored else None  # queued, not read
        # the logits are not kept: only the count, the loss, LRs and coefficients
        self.steps.append((step, dataclasses.replace(result, logits=None), correct))

    def flush(self) -> tuple[list[tuple[float, int, int]], _Divergence | None]:
        """(loss, correct, batch size) of each pending step in order, up to the first
        non-finite loss, and that step's divergence (None if every loss is finite)."""
        if not self.steps:
            return [], None
        # float64 holds every float32 loss and integer count exactly
        values = [r.loss_tensor.double() for _, r, _ in self.steps]
        if self.scored:
            values += [c.double() for _, _, c in self.steps]
        numbers = torch.stack(values).tolist()  # the one host sync of the interval
        losses = numbers[: len(self.steps)]
        corrects = [int(c) for c in numbers[len(self.steps) :]] or [0] * len(self.steps)
        entries, divergence = [], None
        for (step, result, _), loss, correct in zip(self.steps, losses, corrects, strict=True):
            if not math.isfinite(loss):
                divergence = _Divergence(step, loss, result)
                break
            entries.append((loss, correct, len(result.labels)))
        self.steps = []
        return entries, divergence


class _StopSignals:
    """Turns SIGTERM (what SLURM sends on preemption/time limit) and SIGINT (Ctrl-C, or
    Snakemake stopping its jobs) into a flag the loop checks between steps, so the run
    saves its resume state and exits cleanly instead of dying mid-step."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self):
        self.raised: str | None = None  # the name of the signal received
        self._previous: dict = {}

    def __enter__(self):
        if sys.platform != "win32" and _in_main_thread():
            for name in self.SIGNALS:
                self._previous[name] = signal.signal(getattr(signal, name), self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = signal.Signals(signum).name

    def __exit__(self, *exc):
        for name, previous in self._previous.items():
            signal.signal(getattr(signal, name), previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train(
    spec: dict,
    run: str,
    model: torch.nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    ckpt_dir: Path,
    scratch_dir: Path,
    *,
    device: torch.device,
    log=print,
    interrupt_at: int | None = None,
    resume_every_s: float | None = None,
    precision: str | None = None,
) -> TrainResult:
    """Train `model` as `spec` says; checkpoints land in `ckpt_dir`.

    The spec's `training` block (optimizer, LR schedules, param groups, batching,
    augmentation, checkpoints, stopping) and `objective` (default: `loss`, else
    cross-entropy) define the run; see ncrepro.train.optim, .schedules, .objectives.
    `scratch_dir` holds the resume state and the checkpoints written so far; it is
    not a Snakemake output, so it survives a killed job and the rerun resumes from
    it. The resume state is saved at every checkpoint, on SIGTERM/SIGINT, and every
    `resume_every_s` seconds of training (so SIGKILL, an out-of-memory kill or a node
    failure loses at most that much; runs that stop on a loss threshold resume too).
    `interrupt_at` simulates a SIGTERM at that step (tests). `precision`: "fp32" or
    "bf16-autocast" (None: the device's default, see ncrepro.train.steps); the result's
    `arithmetic` records it and whether the model ran channels_last.

    The train log has one row per `log_every` steps: step, lr (group 0), loss and
    accuracy (means over the steps since the last row; accuracy NaN without a
    classifier), elapsed_s, then `lr_<name>` for every further param group and the
    objective's coefficients at the row's step (e.g. gamma).
    """
    cfg = spec["training"]
    total, seed, arch = cfg["steps"], spec["seed"], spec["arch"]
    schedule = set(spec["checkpoint_steps"]) if cfg["checkpoints"]["schedule"] != "final" else set()
    stop_loss = cfg.get("stop_loss")
    log_every = cfg.get("log_every", max(1, min(100, total // 20)))
    scratch_dir.mkdir(parents=True, exist_ok=True)
    resume_path = scratch_dir / "resume.pt"

    normalizer = Normalizer.fit(train_images, cfg.get("normalize", "pixel")).to(device)
    data = DeviceDataset(train_images, train_labels, device)
    place_model(model, device, train_images.ndim == 4)
    optimizer = build_optimizer(model, spec)
    steps = StepLoop(
        model,
        optimizer,
        build_objective(objective_config(spec)),
        data,
        normalizer,
        batch_size=cfg["batch_size"],
        seed=seed,
        total_steps=total,
        augment=cfg.get("augment", "none"),
        views=cfg.get("views", 1),
        precision=precision,
    )
    arithmetic = {
        "precision": steps.precision,
        "channels_last": uses_channels_last(device, train_images.ndim == 4),
    }
    scored = getattr(model, "classifier", None) is not None  # accuracy needs logits
    pending = PendingSteps(scored)

    step, log_rows, written = 0, [], {}
    window_loss, window_correct, window_n = 0.0, 0, 0
    if resume_path.exists():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        if state.get("run") != run:
            raise CheckpointError(f"resume state {resume_path} does not belong to run {run}")
        if state.get("format") != RESUME_FORMAT:
            raise CheckpointError(
                f"resume state {resume_path} has format {state.get('format')!r}, not "
                f"{RESUME_FORMAT!r} (written by another ncrepro version); delete it to restart"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, log_rows = int(state["step"]), list(state["log"])
        written = {int(k): v for k, v in state["written"].items()}
        window_loss, window_correct, window_n = state["window"]
        log(f"resuming {run} from step {step}")

    def save_resume():
        with atomic_output(resume_path) as tmp:
            torch.save(
                {
                    "format": RESUME_FORMAT,
                    "run": run,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "log": log_rows,
                    "written": {str(k): v for k, v in written.items()},
                    "window": [window_loss, window_correct, window_n],
                },
                tmp,
            )

    def checkpoint(at: int):
        name = f"step{at}.pt"
        save_checkpoint(scratch_dir / name, model, run, arch, at)
        written[at] = name

    def read_pending() -> _Divergence | None:
        """Add the pending steps to the log window (as the per-step sums, in order)."""
        nonlocal window_loss, window_correct, window_n
        entries, divergence = pending.flush()
        for loss, correct, n in entries:
            window_loss += loss * n
            window_correct += correct
            window_n += n
        return divergence

    def diverged(divergence: _Divergence) -> int:
        result, elapsed = divergence.result, time.perf_counter() - start
        log_rows.append(
            _log_row(divergence.step, optimizer, result, divergence.loss, math.nan, elapsed)
        )
        log(f"step {divergence.step}: loss is {divergence.loss}; run recorded as diverged")
        return divergence.step

    status = "completed"
    model.train()
    start, start_step = time.perf_counter(), step
    last_save = start
    with _StopSignals() as stop:
        while step < total:
            if interrupt_at is not None and step == interrupt_at:
                stop.raised = "SIGTERM"
            if stop.raised:
                if divergence := read_pending():  # it came first: the run ended there
                    status, step = "diverged", diverged(divergence)
                    break
                save_resume()
                log(f"{stop.raised} at step {step}: resume state saved; a rerun resumes here")
                raise Interrupted(f"run {run} stopped by {stop.raised} at step {step}")
            result = steps.run(step)
            step += 1
            pending.add(step, result)

            logging = step % log_every == 0 or step == total
            saving = step in schedule or (
                resume_every_s is not None and time.perf_counter() - last_save >= resume_every_s
            )
            if (logging or saving) and (divergence := read_pending()):
                status, step = "diverged", diverged(divergence)
                break
            if step in schedule:
                checkpoint(step)
            if logging:
                mean_loss = window_loss / window_n
                accuracy = window_correct / window_n if scored else math.nan
                elapsed = time.perf_counter() - start
                log_rows.append(_log_row(step, optimizer, result, mean_loss, accuracy, elapsed))
                rate = (step - start_step) / max(time.perf_counter() - start, 1e-9)
                coefficients = "".join(f" {k} {v:.4g}" for k, v in result.coefficients.items())
                log(
                    f"step {step}/{total} loss {mean_loss:.4g} acc {accuracy:.3f}{coefficients} "
                    f"{rate:.2f} it/s ETA {_fmt_eta((total - step) / max(rate, 1e-9))}"
                )
                window_loss, window_correct, window_n = 0.0, 0, 0
                if stop_loss is not None and mean_loss < stop_loss:
                    status = "stopped_on_loss"
                    break
            if saving:
                save_resume()
                last_save = time.perf_counter()

    if stop_loss is not None and status == "completed":
        status = "capped"  # the step cap, not the loss criterion, ended the run
    if status in ("stopped_on_loss", "capped") and step not in written:
        checkpoint(step)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for name in written.values():
        os.replace(scratch_dir / name, ckpt_dir / name)
    resume_path.unlink(missing_ok=True)
    _remove_empty(scratch_dir)
    checkpoints = dict(sorted(written.items()))
    return TrainResult(status, step, checkpoints, pd.DataFrame(log_rows), arithmetic)


def _remove_empty(folder: Path, levels: int = 2) -> None:
    """Remove `folder` and up to `levels - 1` parents while they are empty (the run's
    scratch folder and its study folder), so finished runs leave nothing behind."""
    for path in [folder, *list(folder.parents)[: levels - 1]]:
        try:
            path.rmdir()
        except OSError:  # not empty, or gone
            return


def _log_row(step, optimizer, result: StepResult, loss, acc, elapsed_s) -> dict:
    """A train-log row at `step` with the LRs and coefficients `result`'s update used."""
    groups = optimizer.param_groups
    row = {
        "step": int(step),
        "lr": float(result.lrs[0]),
        "loss": float(loss),
        "accuracy": float(acc),
        "elapsed_s": float(elapsed_s),
    }
    names = [g["name"] for g in groups[1:]]
    row.update({f"lr_{n}": float(lr) for n, lr in zip(names, result.lrs[1:], strict=True)})
    row.update({k: float(v) for k, v in result.coefficients.items()})
    return row


def write_run_record(
    path: Path,
    *,
    spec: dict,
    run: str,
    result: TrainResult,
    ckpt_dir: Path,
    device: torch.device,
    wall_time_s: float,
    code_version: str,
    data_dir: Path,
    n_params: int,
) -> dict:
    record = {
        "run": run,
        "spec": spec,
        "status": result.status,
        "final_step": result.final_step,
        "checkpoints": [
            {"step": step, "file": f"ckpt/{name}", "sha256": sha256_file(ckpt_dir / name)}
            for step, name in result.checkpoints.items()
        ],
        "n_parameters": n_params,
        "n_train": int(np.load(ckpt_dir.parent / "train_index.npy").shape[0]),
        "train_index_sha256": sha256_file(ckpt_dir.parent / "train_index.npy"),
        "data": {
            "dir": str(data_dir),
            "manifest": str(data_dir / "manifest.json"),
            "manifest_sha256": sha256_file(data_dir / "manifest.json"),
        },
        "code_version": code_version,
        "git": git_state(),
        "packages": package_versions(),
        "device": {
            "type": device.type,
            "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(),
            # how the numbers were made: "fp32" or "bf16-autocast", and the memory layout
            **result.arithmetic,
        },
        "slurm": slurm_state(),
        "wall_time_s": round(wall_time_s, 3),
    }
    write_json(path, record)
    return record
