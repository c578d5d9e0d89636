"""Probe stages: one fine-tuning probe per (checkpoint, LR); each registered probe (e.g.
the linear probe over all checkpoints of a run); or (fused stages) all of a run's in one
process and one file. Fine-tuning scores the run's fine-tuning pool (disjoint from its
pretraining pool) with the original, finer labels (`task="finetune"` of its view)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from ncrepro.atomic import write_parquet
from ncrepro.stages.context import RunContext

NO_ROWS = ["run", "step", "split", "metric", "value"]  # a probe file's key columns


def _context(run_dir: Path, data_dir: Path, device: str, threads: int | None) -> RunContext:
    if threads:
        torch.set_num_threads(threads)
    return RunContext.from_run_dir(run_dir, data_dir, device=device)


def run_finetune(
    run_dir: Path,
    data_dir: Path,
    step: int,
    lr: float,
    out: Path,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> pd.DataFrame:
    frame = finetune_rows(_context(run_dir, data_dir, device, threads), step, lr)
    write_parquet(out, frame)
    return frame


def finetune_rows(context: RunContext, step: int, lr: float) -> pd.DataFrame:
    """Test and train accuracy of the fine-tuning probe of checkpoint `step` at `lr`."""
    from ncrepro.probes.finetune import finetune_probe

    spec, settings = context.spec, context.spec["finetune"]
    written = {entry["step"] for entry in context.checkpoints()}
    if context.record["status"] == "diverged" and step not in written:
        # the job is planned from the spec's schedule; the run diverged before this step,
        # so there is no checkpoint: one "diverged" row instead of a failed pipeline
        result = {"status": "diverged", "accuracy": math.nan, "train_accuracy": math.nan}
    else:
        train_images, train_labels, _ = context.view("train", task="finetune")
        test_images, test_labels, _ = context.view("test", task="finetune")
        result = finetune_probe(
            context.model_at(step),
            train_images,
            train_labels,
            test_images,
            test_labels,
            num_classes=context.num_classes("finetune"),
            lr=lr,
            steps=settings["steps"],
            batch_size=settings["batch_size"],
            # the pretraining's SGD settings; an AdamW pretraining has no momentum: 0.9
            momentum=settings.get("momentum", spec["training"].get("momentum", 0.9)),
            weight_decay=settings.get("weight_decay", spec["training"]["weight_decay"]),
            seed=spec["seed"],
            device=context.torch_device,
            normalizer=context.normalizer,
        )
    base = {
        "run": context.run,
        "step": step,
        "probe": "finetune",
        "probe_lr": lr,
        "probe_status": result["status"],
        "probe_steps": settings["steps"],
    }
    frame = pd.DataFrame(
        [
            {**base, "split": split, "metric": "finetune_accuracy", "value": result[key]}
            for split, key in (("test", "accuracy"), ("train", "train_accuracy"))
        ]
    )
    return frame


def run_probe(
    name: str,
    run_dir: Path,
    data_dir: Path,
    out: Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    log=print,
) -> pd.DataFrame:
    """The registered probe `name` (ncrepro.probes.registry) with the run's settings."""
    frame = probe_rows(_context(run_dir, data_dir, device, threads), name, log)
    write_parquet(out, frame)
    return frame


def probe_rows(context: RunContext, name: str, log=print) -> pd.DataFrame:
    from ncrepro.probes.registry import probe_function

    settings = context.spec.get("probes", {}).get(name)
    if settings is None:
        raise ValueError(f"run {context.run} does not list the probe {name!r} in its spec")
    return pd.DataFrame(probe_function(name)(context, settings, log))


def run_all_probes(
    run_dir: Path,
    data_dir: Path,
    out: Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    log=print,
) -> pd.DataFrame:
    """Every fine-tuning probe (each checkpoint x LR) and every registered probe of a run's
    spec, in one process, to one file: the rows the per-probe jobs write, concatenated
    (no rows for a run without probes)."""
    from ncrepro.probes.registry import PROBES
    from ncrepro.runspec import probe_jobs, probe_names

    context = _context(run_dir, data_dir, device, threads)
    frames = []
    for _run, step, lr in probe_jobs({context.run: context.spec}):
        frames.append(finetune_rows(context, step, lr))
        log(f"fine-tune probe step {step} lr {lr}: {frames[-1]['value'].iloc[0]:.4f} test accuracy")
    for name in probe_names(context.spec):
        if name in PROBES:  # a study's own probe stages write their own files
            frames.append(probe_rows(context, name, log))
            log(f"probe {name}: {len(frames[-1])} rows")
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=NO_ROWS)
    write_parquet(out, frame)
    return frame
