"""Run specs and the run sheet's rows: the generic part, shared by every study.

A run spec is the dict of resolved hyper-parameters a training run is a pure function
of (dataset, view, architecture, head, objective, optimizer, schedule, seed, checkpoint
steps, probes). Each study's `runs(config)` (ncrepro.studies.<key>.runs) builds them;
`ncrepro.studies.build_run_sheet` collects them into the run sheet, one row per
(experiment, run).

A run is identified by a readable slug plus a short hash of its spec, so two configs
never collide and a changed hyper-parameter is a new run. One run can serve several
experiments (nc_limits fig1/fig2 reuse a fig3 cell).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from ncrepro.data.views import view_slug

# Columns every run sheet has; a study may add its own (nc_limits: grid_arch).
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


@dataclass(frozen=True)
class Run:
    """One (experiment, run) of a study: the spec and the study's extra sheet columns.
    `n_train` -1 means the full train split (filled in from the data at aggregation)."""

    experiment: str
    spec: dict
    n_train: int = -1
    extra: dict = field(default_factory=dict)


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


def dataset_entry(config: dict, key: str) -> dict:
    """The dataset part of a spec: key, loader and its parameters."""
    entry = config["datasets"][key]
    return {"key": key, "source": entry["source"], "params": entry.get("params", {})}


def objective_name(spec: dict) -> str:
    """The training objective's name (the sheet's `loss` column)."""
    return spec.get("objective", {}).get("name", spec.get("loss", "cross_entropy"))


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]


def run_id(spec: dict) -> str:
    slug = f"{spec['arch']}-{spec['dataset']['key']}{view_slug(spec.get('view'))}"
    return f"{slug}-s{spec['seed']}-{spec_hash(spec)}"


def sheet_row(study: str, run: Run) -> dict:
    """The run sheet's row of one (experiment, run)."""
    spec, training = run.spec, run.spec["training"]
    return {
        "study": study,
        "experiment": run.experiment,
        "run": run_id(spec),
        "dataset": spec["dataset"]["key"],
        "arch": spec["arch"],
        "loss": objective_name(spec),
        "seed": spec["seed"],
        "view": spec.get("view", {"kind": "full"})["kind"],
        "n_train": run.n_train,
        "lr": spec["lr"],
        "width": spec["width"],
        "batch_size": training["batch_size"],
        "weight_decay": training["weight_decay"],
        "steps": training["steps"],
        **run.extra,
    }


def probe_jobs(specs: dict[str, dict]) -> list[tuple[str, int, float]]:
    """(run, checkpoint step, LR) of every fine-tuning probe (`spec["finetune"]`): one
    Snakemake job each, so a cluster runs the LR sweep in parallel."""
    jobs = []
    for rid, spec in specs.items():
        finetune = spec.get("finetune")
        for step in spec["checkpoint_steps"] if finetune else []:
            for lr in finetune["lrs"]:
                jobs.append((rid, step, lr))
    return jobs


def probe_names(spec: dict) -> list[str]:
    """The per-run probes a spec asks for (`spec["probes"]`: name -> settings), each one
    job writing results/probes/{study}/{run}/{name}.parquet."""
    return sorted(spec.get("probes", {}))
