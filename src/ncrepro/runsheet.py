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


def nc_limits_spec(
    config: dict,
    dataset: str,
    arch: str,
    seed: int,
    *,
    view: dict | None = None,
    training: dict | None = None,
    lr: float | None = None,
    arch_params: dict | None = None,
) -> dict:
    """Resolved hyper-parameters of one nc_limits training run. `training` overrides
    keys of the study's training block; `view` defaults to the full splits."""
    study = config["nc_limits"]
    resolved = {**study["training"], **(training or {})}
    resolved.setdefault("normalize", "pixel")
    resolved.setdefault("augment", "none")
    spec = {
        "study": "nc_limits",
        "dataset": _dataset_entry(config, dataset),
        "arch": arch,
        "arch_params": arch_params or study.get("arch_params", {}).get(arch, {}),
        "width": study["width"],
        "seed": seed,
        "lr": lr if lr is not None else study["lr"][arch],
        "loss": "cross_entropy",
        "training": resolved,
        "checkpoint_steps": checkpoint_steps(resolved["checkpoints"], resolved["steps"]),
    }
    if view is not None:  # absent for full-split runs, so their ids do not change
        spec["view"] = view
    return spec


def view_slug(view: dict | None) -> str:
    if not view:
        return ""
    if view["kind"] == "subset":
        return f"-n{view['n_train']}"
    return "-super"


def run_id(spec: dict) -> str:
    slug = f"{spec['arch']}-{spec['dataset']['key']}{view_slug(spec.get('view'))}"
    return f"{slug}-s{spec['seed']}-{spec_hash(spec)}"


def train_size_specs(config: dict):
    """fig4: (setting, N, seed, spec) for balanced subsets trained to a loss threshold."""
    block = config["nc_limits"].get("train_size") or {}
    if not block.get("enabled", False):
        return
    training = {
        "steps": block["steps"],
        "stop_loss": block["stop_loss"],
        "checkpoints": {"schedule": "final"},
    }
    for setting in block["settings"]:
        for n_train in setting["n_train"]:
            for seed in block["seeds"]:
                view = {"kind": "subset", "n_train": n_train, "seed": seed}
                spec = nc_limits_spec(
                    config,
                    setting["dataset"],
                    setting["arch"],
                    seed,
                    view=view,
                    training=training,
                    lr=setting.get("lr"),
                )
                yield setting, n_train, seed, spec


def transfer_specs(config: dict):
    """fig5: (setting, seed, spec) for superclass pretraining with checkpoints."""
    block = config["nc_limits"].get("transfer") or {}
    if not block.get("enabled", False):
        return
    training = {"steps": block["steps"], "checkpoints": block["checkpoints"]}
    for setting in block["settings"]:
        for seed in block["seeds"]:
            view = {"kind": "superclass", "groups": setting["groups"], "pools": setting["pools"]}
            spec = nc_limits_spec(
                config,
                setting["dataset"],
                setting["arch"],
                seed,
                view=view,
                training=training,
                lr=setting.get("lr"),
                arch_params=setting.get("arch_params"),
            )
            spec["finetune"] = block["finetune"]
            yield setting, seed, spec


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
        for _setting, n_train, _seed, spec in train_size_specs(config):
            rid = run_id(spec)
            specs[rid] = spec
            rows.append(_sheet_row("train_size", rid, spec, view="subset", n_train=n_train))
        for _setting, _seed, spec in transfer_specs(config):
            rid = run_id(spec)
            specs[rid] = spec
            rows.append(_sheet_row("transfer", rid, spec, view="superclass", n_train=-1))
    sheet = pd.DataFrame(rows, columns=[*SHEET_COLUMNS, "grid_arch"])
    return sheet.drop_duplicates(["experiment", "run"]).reset_index(drop=True), specs


def _sheet_row(experiment: str, rid: str, spec: dict, *, view: str, n_train: int) -> dict:
    t = spec["training"]
    return {
        "study": "nc_limits",
        "experiment": experiment,
        "run": rid,
        "dataset": spec["dataset"]["key"],
        "arch": spec["arch"],
        "loss": spec["loss"],
        "seed": spec["seed"],
        "view": view,
        "n_train": n_train,
        "lr": spec["lr"],
        "width": spec["width"],
        "batch_size": t["batch_size"],
        "weight_decay": t["weight_decay"],
        "steps": t["steps"],
        "grid_arch": spec["arch"],
    }


def probe_jobs(specs: dict[str, dict]) -> list[tuple[str, int, float]]:
    """(run, checkpoint step, LR) of every fine-tuning probe: one Snakemake job each."""
    jobs = []
    for rid, spec in specs.items():
        for step in spec.get("finetune") and spec["checkpoint_steps"] or []:
            for lr in spec["finetune"]["lrs"]:
                jobs.append((rid, step, lr))
    return jobs


def _grid_column(arch: str, dataset: str, study: dict) -> str:
    """The grid column an arch sits in (undoing a per-dataset override)."""
    for grid_arch, used in study["grid"].get("arch_override", {}).get(dataset, {}).items():
        if used == arch:
            return grid_arch
    return arch
