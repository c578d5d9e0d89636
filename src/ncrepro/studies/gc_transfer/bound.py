"""The study stage "gc_bound": Figure 3's bound (Prop. 4.3) for one run, with the Poincaré
constant estimated as the paper does, from the runs of Figure 1 (`bound.pair`).

Inputs (in this order): the target run's geometric probe file and metric file, then the
geometric probe and metric files of every run of the calibration pair (the target run is
one of them). Output rows, one per checkpoint of the target run, split "test":

- `gc_bound` = `ncrepro.metrics.geometric.gc_bound(geometric collapse, K, m, ρ̂)`;
- `cdnv_bound` = `ncc_error_bound(train CDNV, K, m)`: the same bound with the measured
  CDNV in place of its GC bound (Galanti et al.'s form), for comparison;

with ρ̂ = `poincare_estimate` = max over every checkpoint of the calibration runs of train
CDNV / geometric collapse (the paper: "a lower bound for the Poincaré constant by comparing
the magnitudes of the RHS and LHS" of eq. 6 "based on results in Figure 1"), recorded in
the column `poincare_constant` with the number of checkpoints it used.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ncrepro.metrics.geometric import gc_bound, ncc_error_bound, poincare_estimate


def bound_inputs(
    sheet: pd.DataFrame, specs: dict, run: str, results: str, probe_file=None
) -> list[str]:
    """The inputs of the stage for `run`, in its order: pairs (the file with the run's
    geometric probe rows, its metric file), the run's first, then those of every run of
    its calibration pair (the rule's input). `probe_file(run, probe)` names the probe's
    file relative to `results` (fused stages keep all probes of a run in one file)."""
    probe_file = probe_file or (lambda name, probe: f"probes/gc_transfer/{name}/{probe}.parquet")
    pair = specs[run]["probes"]["gc_bound"]["pair"]
    runs = sheet.loc[(sheet["study"] == "gc_transfer") & (sheet["pair"] == pair), "run"]
    files = []
    for name in [run, *sorted(runs.unique())]:
        files += [
            f"{results}/{probe_file(name, 'geometric')}",
            f"{results}/metrics/gc_transfer/{name}.parquet",
        ]
    return files


def _values(frame: pd.DataFrame, metric: str, split: str = "train") -> pd.DataFrame:
    sub = frame[(frame["metric"] == metric) & (frame["split"] == split)]
    return sub[["run", "step", "value"]].rename(columns={"value": metric})


def calibration_points(geometric: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """(run, step, cdnv, geometric_collapse) of every checkpoint with both values."""
    return _values(metrics, "cdnv").merge(
        _values(geometric, "geometric_collapse"), on=["run", "step"]
    )


def _geometric_rows(path) -> pd.DataFrame:
    """The geometric probe's rows of a probe file (fused stages: other probes' rows too)."""
    frame = pd.read_parquet(path)
    return frame[frame["probe"] == "geometric"] if "probe" in frame else frame


def gc_bound_rows(config: dict, inputs: list[Path]) -> pd.DataFrame:
    """`fn(config, inputs)` of the study stage (see the module docstring)."""
    if len(inputs) < 2:
        raise ValueError("gc_bound needs the target run's geometric and metric files first")
    target_geometric = _geometric_rows(inputs[0])
    target_metrics = pd.read_parquet(inputs[1])
    calibration = [Path(p) for p in inputs[2:]] or [Path(p) for p in inputs[:2]]
    geometric = pd.concat([_geometric_rows(p) for p in calibration[0::2]])
    metrics = pd.concat([pd.read_parquet(p) for p in calibration[1::2]])
    points = calibration_points(geometric, metrics)
    rho = poincare_estimate(points["cdnv"], points["geometric_collapse"])
    run = str(target_geometric["run"].iloc[0])
    k = int(target_geometric["num_classes"].iloc[0])
    m = int(target_geometric["per_class"].iloc[0])
    target = calibration_points(target_geometric, target_metrics)
    base = {
        "run": run,
        "split": "test",
        "probe": "gc_bound",
        "poincare_constant": rho,
        "poincare_checkpoints": len(points),
        "poincare_runs": int(points["run"].nunique()),
        "bound_num_classes": k,
        "bound_per_class": m,
        "bound_lipschitz_term": "omitted",
    }
    rows = []
    for point in target.itertuples(index=False):
        rows.append(
            {
                **base,
                "step": int(point.step),
                "metric": "gc_bound",
                "value": gc_bound(point.geometric_collapse, k, m, rho),
            }
        )
        rows.append(
            {
                **base,
                "step": int(point.step),
                "metric": "cdnv_bound",
                "value": ncc_error_bound(point.cdnv, k, m),
            }
        )
    return pd.DataFrame(rows)
