"""Metrics stage: NC metrics of every checkpoint of a run, from its feature files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ncrepro.provenance import atomic_path


def load_features(path: Path) -> dict:
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


def evaluate_checkpoint(step_dir: Path, num_classes: int, *, kmeans_n_init: int, seed: int):
    """Metric rows (dicts) of one checkpoint: train and test splits."""
    from ncrepro.metrics import compute_all

    train, test = load_features(step_dir / "train.npz"), load_features(step_dir / "test.npz")
    for split in (train, test):
        split["W"], split["b"] = split["classifier_weight"], split["classifier_bias"]
    return compute_all(train, test, num_classes, kmeans_n_init=kmeans_n_init, seed=seed)


def evaluate_run(
    features_dir: Path, run_dir: Path, out: Path, *, kmeans_n_init: int = 4, code_version: str
) -> pd.DataFrame:
    record = json.loads((run_dir / "run.json").read_text())
    rows = []
    for entry in record["checkpoints"]:
        step_dir = features_dir / f"step{entry['step']}"
        num_classes = int(load_features(step_dir / "train.npz")["logits"].shape[1])
        for row in evaluate_checkpoint(
            step_dir, num_classes, kmeans_n_init=kmeans_n_init, seed=record["spec"]["seed"]
        ):
            rows.append({"run": record["run"], "step": entry["step"], **row})
    if record["status"] == "diverged":
        # A diverged run keeps its earlier checkpoints and says where it diverged.
        rows.append(
            {
                "run": record["run"],
                "step": record["final_step"],
                "split": "train",
                "metric": "diverged",
                "value": 1.0,
            }
        )
    frame = pd.DataFrame(rows)
    frame["code_version_metrics"] = code_version
    tmp = atomic_path(out)
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    return frame
