"""Learning-rate sweeps over a probe and their rows in the long table.

The paper (appendix B) sweeps the fine-tuning LR over 0.0005…0.25 and reports the
best test accuracy of all swept LRs. `lr_sweep` runs a probe per LR and picks the
best: the maximum test accuracy over LRs whose status is not "diverged" (and
whose accuracy is finite); ties go to the smaller LR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable


def _usable(entry: dict) -> bool:
    acc = entry.get("accuracy")
    return entry.get("status") != "diverged" and acc is not None and math.isfinite(float(acc))


def select_best(sweep: list[dict]) -> tuple[float | None, float]:
    """(best_lr, best_accuracy) of sweep entries {lr, accuracy, status};
    (None, nan) when every entry diverged."""
    usable = [e for e in sweep if _usable(e)]
    if not usable:
        return None, float("nan")
    best = min(usable, key=lambda e: (-float(e["accuracy"]), float(e["lr"])))
    return float(best["lr"]), float(best["accuracy"])


def lr_sweep(probe_fn: Callable[..., dict], lrs: Iterable[float], /, **kwargs) -> dict:
    """Call `probe_fn(lr=lr, **kwargs)` for each LR (in the given order).

    Returns {"best_lr", "best_accuracy", "n_diverged", "sweep": [{"lr", "accuracy",
    "status", ...every other key of the probe's result except "model"}, ...]}.
    `best_lr` is None and `best_accuracy` NaN when every LR diverged.
    """
    sweep = []
    for lr in lrs:
        result = dict(probe_fn(lr=lr, **kwargs))
        result.pop("model", None)
        entry = {
            "lr": float(lr),
            "accuracy": float(result.pop("accuracy", float("nan"))),
            "status": result.pop("status", "completed"),
        }
        result.pop("lr", None)
        sweep.append({**entry, **result})
    best_lr, best_accuracy = select_best(sweep)
    return {
        "best_lr": best_lr,
        "best_accuracy": best_accuracy,
        "n_diverged": sum(e["status"] == "diverged" for e in sweep),
        "sweep": sweep,
    }


def sweep_rows(sweep: dict, *, probe: str = "finetune", **keys) -> list[dict]:
    """Long-table rows of a fine-tuning sweep (the fig5 contract of
    ncrepro.studies.nc_limits.transfer_figures): per LR, metric "finetune_accuracy" with
    split "test" (and "train" where known) and metric "finetune_loss" (train/test),
    columns probe, probe_lr, probe_status, plus `keys` (run, step = the pretraining
    checkpoint's step, seed, ...). `probe_lr`/`probe_status` rather than lr/status:
    the aggregated table already carries the pretraining run's lr and status."""
    rows = []
    for e in sweep["sweep"]:
        base = {**keys, "probe": probe, "probe_lr": e["lr"], "probe_status": e["status"]}
        values = {
            ("test", "finetune_accuracy"): e["accuracy"],
            ("train", "finetune_accuracy"): e.get("train_accuracy"),
            ("test", "finetune_loss"): e.get("test_loss"),
            ("train", "finetune_loss"): e.get("train_loss"),
        }
        for (split, metric), value in values.items():
            if value is not None:
                rows.append({**base, "split": split, "metric": metric, "value": float(value)})
    return rows
