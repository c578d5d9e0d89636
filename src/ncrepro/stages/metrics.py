"""Metrics stage: the metric set a study declares, at every checkpoint of a run, from its
feature files (`ncrepro.stages.features`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ncrepro.atomic import write_parquet


def load_features(path: Path) -> dict:
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


def num_classes_of(train: dict, test: dict) -> int:
    """K: the classifier's outputs, or (an encoder) the labels present."""
    if "logits" in train:
        return int(train["logits"].shape[1])
    return int(max(train["labels"].max(), test["labels"].max())) + 1


def evaluate_run(
    features_dir: Path,
    run_dir: Path,
    out: Path,
    *,
    compute,
    options: dict,
    code_version: str,
) -> pd.DataFrame:
    """Rows {run, step, split, metric, value, **conventions} of every checkpoint;
    `compute(train, test, num_classes, seed=..., **options)` is the study's metric set."""
    record = json.loads((run_dir / "run.json").read_text())
    rows = []
    for entry in record["checkpoints"]:
        step_dir = features_dir / f"step{entry['step']}"
        train = load_features(step_dir / "train.npz")
        test = load_features(step_dir / "test.npz")
        num_classes = num_classes_of(train, test)
        for row in compute(train, test, num_classes, seed=record["spec"]["seed"], **options):
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
    write_parquet(out, frame)
    return frame
