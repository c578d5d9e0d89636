"""Training stage: one run spec -> run_dir/{run.json, train_log.parquet, train_index.npy,
ckpt/step*.pt}; resumes from `scratch_dir` after a kill."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ncrepro.atomic import atomic_output, write_parquet
from ncrepro.stages.context import RunContext


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
    resume_every_s: float | None = None,
    log=print,
) -> dict:
    """Train one run; write its outputs under `run_dir`."""
    import torch

    from ncrepro.train import train, write_run_record
    from ncrepro.train.steps import deterministic_algorithms

    if threads:
        torch.set_num_threads(threads)
    context = RunContext(spec, run, data_dir, device=device)
    dev = context.torch_device
    if dev.type == "cpu":  # bit-identical reruns are promised on CPU only
        deterministic_algorithms()
    t0 = time.perf_counter()
    images, labels, index = context.view("train")
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(run_dir / "train_index.npy") as tmp:  # the exact images trained on
        np.save(tmp, index)
    model = context.build_model()
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"run {run}: {spec['arch']} (width {spec['width']}, {n_params:,} parameters) on "
        f"{spec['dataset']['key']} ({len(labels)} train images, view {context.view_spec['kind']}, "
        f"{context.num_classes()} classes), device {dev}, {torch.get_num_threads()} threads"
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
        resume_every_s=resume_every_s,
    )
    write_parquet(run_dir / "train_log.parquet", result.log)
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
