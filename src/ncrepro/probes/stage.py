"""Probe stages of the pipeline: one fine-tuning probe per (checkpoint, LR); the linear
probe over all checkpoints of a run. Both score the run's fine-tuning pool (disjoint
from its pretraining pool) with the original, finer labels."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from ncrepro.provenance import atomic_path


def _load(run_dir: Path, data_dir: Path):
    from ncrepro.data import load_prepared
    from ncrepro.runviews import apply_view

    record = json.loads((run_dir / "run.json").read_text())
    spec = record["spec"]
    prepared = {s: load_prepared(data_dir, s) for s in ("train", "test")}
    pretrain = apply_view(spec["view"], "train", prepared["train"])
    finetune = {s: apply_view(spec["view"], s, raw, task="finetune") for s, raw in prepared.items()}
    return record, spec, prepared, pretrain, finetune


def _model_at(spec, record, run_dir, step, prepared, device):
    from ncrepro.runviews import num_classes
    from ncrepro.train import build_for_spec, load_checkpoint

    entry = next((c for c in record["checkpoints"] if c["step"] == step), None)
    if entry is None:
        raise FileNotFoundError(f"run {record['run']} has no checkpoint at step {step}")
    ckpt = load_checkpoint(run_dir / entry["file"], run=record["run"], arch=spec["arch"])
    base = len(prepared["train"].class_names)
    model = build_for_spec(
        spec, num_classes(spec["view"], base), prepared["train"].images.shape[1:]
    )
    model.load_state_dict(ckpt["model"])
    return model.to(device)


def _write(rows: list[dict], out: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    tmp = atomic_path(out)
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    return frame


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
    from ncrepro.runviews import num_classes
    from ncrepro.train import resolve_device
    from ncrepro.train.device_data import Normalizer

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    record, spec, prepared, pretrain, finetune = _load(run_dir, data_dir)
    model = _model_at(spec, record, run_dir, step, prepared, dev)
    normalizer = Normalizer.fit(pretrain[0], spec["training"].get("normalize", "pixel")).to(dev)
    settings = spec["finetune"]
    result = finetune_probe(
        model,
        finetune["train"][0],
        finetune["train"][1],
        finetune["test"][0],
        finetune["test"][1],
        num_classes=num_classes(spec["view"], len(prepared["train"].class_names), "finetune"),
        lr=lr,
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        momentum=spec["training"]["momentum"],
        weight_decay=spec["training"]["weight_decay"],
        seed=spec["seed"],
        device=dev,
        normalizer=normalizer,
    )
    base = {
        "run": record["run"],
        "step": step,
        "probe": "finetune",
        "probe_lr": lr,
        "probe_status": result["status"],
        "probe_steps": settings["steps"],
    }
    return _write(
        [
            {**base, "split": "test", "metric": "finetune_accuracy", "value": result["accuracy"]},
            {
                **base,
                "split": "train",
                "metric": "finetune_accuracy",
                "value": result["train_accuracy"],
            },
        ],
        out,
    )


def run_linear(
    run_dir: Path, data_dir: Path, out: Path, *, device: str = "auto", threads: int | None = None
) -> pd.DataFrame:
    from ncrepro.probes.finetune import extract_features
    from ncrepro.probes.linear import linear_probe
    from ncrepro.runviews import num_classes
    from ncrepro.train import resolve_device
    from ncrepro.train.device_data import Normalizer

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    record, spec, prepared, pretrain, finetune = _load(run_dir, data_dir)
    normalizer = Normalizer.fit(pretrain[0], spec["training"].get("normalize", "pixel")).to(dev)
    k = num_classes(spec["view"], len(prepared["train"].class_names), "finetune")
    rows = []
    for entry in record["checkpoints"]:
        model = _model_at(spec, record, run_dir, entry["step"], prepared, dev)
        feats = {
            s: extract_features(model, finetune[s][0], normalizer=normalizer, device=dev)
            for s in ("train", "test")
        }
        result = linear_probe(
            feats["train"],
            finetune["train"][1],
            feats["test"],
            finetune["test"][1],
            num_classes=k,
            seed=spec["seed"],
        )
        rows.append(
            {
                "run": record["run"],
                "step": entry["step"],
                "split": "test",
                "metric": "linear_probe_accuracy",
                "value": result["accuracy"],
                "probe": "linear",
                "probe_status": result["status"],
            }
        )
    return _write(rows, out)
