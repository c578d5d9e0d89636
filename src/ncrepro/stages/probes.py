"""Probe stages: one fine-tuning probe per (checkpoint, LR); the linear probe over all
checkpoints of a run. Both score the run's fine-tuning pool (disjoint from its
pretraining pool) with the original, finer labels (`task="finetune"` of its view)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ncrepro.atomic import write_parquet
from ncrepro.stages.context import RunContext


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
    from ncrepro.probes.finetune import finetune_probe

    context = _context(run_dir, data_dir, device, threads)
    spec, settings = context.spec, context.spec["finetune"]
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
    write_parquet(out, frame)
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
    from ncrepro.probes.registry import probe_function

    context = _context(run_dir, data_dir, device, threads)
    settings = context.spec.get("probes", {}).get(name)
    if settings is None:
        raise ValueError(f"run {context.run} does not list the probe {name!r} in its spec")
    frame = pd.DataFrame(probe_function(name)(context, settings, log))
    write_parquet(out, frame)
    return frame
