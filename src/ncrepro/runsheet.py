"""The run sheet: the config expanded into one row per (experiment, run).

A run is identified by a readable slug plus a short hash of its resolved
hyper-parameters, so two configs never collide and a changed hyper-parameter is
a new run. One run can serve several experiments (fig1/fig2 reuse a fig3 cell).
"""

from __future__ import annotations

import hashlib
import json
import math

import pandas as pd

SHEET_COLUMNS = [
    "study",
    "experiment",
    "run",
    "dataset",
    "arch",
    "loss",
    "seed",
    "view",
    "n_train",
    "lr",
    "width",
    "batch_size",
    "weight_decay",
    "steps",
]


def checkpoint_steps(schedule: dict, steps: int) -> list[int]:
    """Steps at which checkpoints are written; always includes the final step."""
    kind = schedule["schedule"]
    if kind == "final":
        return [steps]
    if kind == "linear":
        every = schedule["every"]
        return sorted({*range(every, steps + 1, every), steps})
    if kind == "log":
        count, first = schedule["count"], schedule.get("first", 1)
        first = min(first, steps)
        if count == 1 or first == steps:
            return [steps]
        ratio = math.log(steps / first) / (count - 1)
        return sorted({round(first * math.exp(ratio * i)) for i in range(count)} | {steps})
    raise ValueError(f"unknown checkpoint schedule {kind!r}")


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]


def _dataset_entry(config: dict, key: str) -> dict:
    entry = config["datasets"][key]
    return {"key": key, "source": entry["source"], "params": entry.get("params", {})}


def nc_limits_spec(config: dict, dataset: str, arch: str, seed: int) -> dict:
    """Resolved hyper-parameters of one nc_limits training run."""
    study = config["nc_limits"]
    training = dict(study["training"])
    training.setdefault("normalize", "pixel")
    training.setdefault("augment", "none")
    return {
        "study": "nc_limits",
        "dataset": _dataset_entry(config, dataset),
        "arch": arch,
        "arch_params": study.get("arch_params", {}).get(arch, {}),
        "width": study["width"],
        "seed": seed,
        "lr": study["lr"][arch],
        "loss": "cross_entropy",
        "training": training,
        "checkpoint_steps": checkpoint_steps(training["checkpoints"], training["steps"]),
    }


def run_id(spec: dict) -> str:
    return f"{spec['arch']}-{spec['dataset']['key']}-s{spec['seed']}-{spec_hash(spec)}"


def nc_limits_cells(config: dict) -> list[tuple[str, str, str]]:
    """(experiment, dataset, arch) cells of the nc_limits figures 1-3."""
    study = config["nc_limits"]
    cells = [("curves", study["curves"]["dataset"], study["curves"]["arch"])]
    overrides = study["grid"].get("arch_override", {})
    for dataset in study["grid"]["datasets"]:
        for arch in study["grid"]["archs"]:
            cells.append(("grid", dataset, overrides.get(dataset, {}).get(arch, arch)))
    return cells


def build_run_sheet(config: dict) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Return (sheet, specs): the sheet has SHEET_COLUMNS plus `grid_arch`;
    specs maps run id -> resolved spec."""
    rows, specs = [], {}
    study = config.get("nc_limits", {})
    if study.get("enabled"):
        for experiment, dataset, arch in nc_limits_cells(config):
            for seed in study["seeds"]:
                spec = nc_limits_spec(config, dataset, arch, seed)
                rid = run_id(spec)
                specs[rid] = spec
                t = spec["training"]
                rows.append(
                    {
                        "study": "nc_limits",
                        "experiment": experiment,
                        "run": rid,
                        "dataset": dataset,
                        "arch": arch,
                        "loss": spec["loss"],
                        "seed": seed,
                        "view": "full",
                        "n_train": -1,  # full split; filled from the data manifest
                        "lr": spec["lr"],
                        "width": spec["width"],
                        "batch_size": t["batch_size"],
                        "weight_decay": t["weight_decay"],
                        "steps": t["steps"],
                        "grid_arch": _grid_column(arch, dataset, study),
                    }
                )
    sheet = pd.DataFrame(rows, columns=[*SHEET_COLUMNS, "grid_arch"])
    return sheet.drop_duplicates(["experiment", "run"]).reset_index(drop=True), specs


def _grid_column(arch: str, dataset: str, study: dict) -> str:
    """The grid column an arch sits in (undoing a per-dataset override)."""
    for grid_arch, used in study["grid"].get("arch_override", {}).get(dataset, {}).items():
        if used == arch:
            return grid_arch
    return arch
