"""Training stage: one run = one spec (see ncrepro.runsheet) -> run.json, log, checkpoints."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ncrepro.train.loop import (
    CheckpointError,
    Interrupted,
    TrainResult,
    load_checkpoint,
    resolve_device,
    train,
    write_run_record,
)

__all__ = [
    "CheckpointError",
    "Interrupted",
    "TrainResult",
    "build_for_spec",
    "load_checkpoint",
    "resolve_device",
    "run_training",
]


def build_for_spec(spec: dict, num_classes: int, image_shape: tuple[int, int, int]):
    """The model a spec describes, initialised from the spec's seed."""
    from ncrepro.models import build_model

    torch.manual_seed(spec["seed"])
    return build_model(
        spec["arch"],
        num_classes=num_classes,
        in_channels=image_shape[0],
        image_size=image_shape[1],
        width=spec["width"],
        **spec.get("arch_params", {}),
    )


def run_training(
    spec: dict,
    run: str,
    data_dir: Path,
    run_dir: Path,
    scratch_dir: Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    code_version: str = "unknown",
    interrupt_at: int | None = None,
    log=print,
) -> dict:
    """Train one run; write run_dir/{run.json, train_log.parquet, ckpt/step*.pt}."""
    from ncrepro.data import load_prepared

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if dev.type == "cpu":  # bit-identical reruns are promised on CPU only
        torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.perf_counter()
    from ncrepro.runviews import apply_view
    from ncrepro.runviews import num_classes as view_classes

    train_split = load_prepared(data_dir, "train")
    view = spec.get("view", {"kind": "full"})
    images, labels, index = apply_view(view, "train", train_split)
    run_dir.mkdir(parents=True, exist_ok=True)
    np.save(run_dir / "train_index.npy", index)  # the exact images this run trained on
    num_classes = view_classes(view, len(train_split.class_names))
    model = build_for_spec(spec, num_classes, tuple(train_split.images.shape[1:]))
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"run {run}: {spec['arch']} (width {spec['width']}, {n_params:,} parameters) on "
        f"{spec['dataset']['key']} ({len(labels)} train images, view {view['kind']}, "
        f"{num_classes} classes), "
        f"device {dev}, {torch.get_num_threads()} threads"
    )
    result = train(
        spec,
        run,
        model,
        images,
        labels,
        run_dir / "ckpt",
        scratch_dir,
        device=dev,
        log=log,
        interrupt_at=interrupt_at,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    result.log.to_parquet(run_dir / "train_log.parquet", index=False)
    record = write_run_record(
        run_dir / "run.json",
        spec=spec,
        run=run,
        result=result,
        ckpt_dir=run_dir / "ckpt",
        device=dev,
        wall_time_s=time.perf_counter() - t0,
        code_version=code_version,
        data_dir=data_dir,
        n_params=n_params,
    )
    log(f"run {run}: {result.status} at step {result.final_step} in {record['wall_time_s']:.1f} s")
    return record
