"""nc_limits (Hui, Belkin, Nakkiran 2022) figures 4 and 5, from the study's long table.

fig4 (train vs test anti-correlation across train-set sizes) and fig5 (collapsed
features transfer worse). Both read the long table of results/tables/nc_limits.parquet
(columns experiment, run, dataset, arch, seed, view, n_train, step, split, metric,
value, ... see ncrepro.stages.aggregate) and are driven by the table alone; `config` is only
used for captions (datasets' `stands_in_for`, optional `arch_stands_in_for` and panel
order under nc_limits.train_size / nc_limits.transfer) and for the switch `enabled: false`
of either experiment (the figure then says it is not drawn, and why). Missing config keys
are fine.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize

from ncrepro.claims import disabled_reason
from ncrepro.figures import (
    ARCH_NAMES,
    DATASET_NAMES,
    add_caption,
    dataset_label,
    disabled_figure,
    set_style,
)
from ncrepro.studies.nc_limits.runs import STUDY

TRAIN_SIZE_EXPERIMENT = "train_size"
TRANSFER_EXPERIMENT = "transfer"
PANEL_KEYS = ["dataset", "arch"]


# ----------------------------------------------------------------------------- helpers
def _study_config(config: dict, section: str) -> dict:
    return (config or {}).get("nc_limits", {}).get(section, {}) or {}


def _arch_name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def _stand_ins(config: dict, section: str, rows: pd.DataFrame) -> str:
    """What stood in for what (empty at paper scale)."""
    parts = []
    datasets = (config or {}).get("datasets", {})
    for key in dict.fromkeys(rows.get("dataset", pd.Series(dtype=object))):
        entry = datasets.get(key, {})
        if entry.get("stands_in_for"):
            parts.append(
                f"'{key}' ({entry.get('source', key)}) stands in for {entry['stands_in_for']}"
            )
    swaps = _study_config(config, section).get("arch_stands_in_for", {})
    for arch in dict.fromkeys(rows.get("arch", pd.Series(dtype=object))):
        if arch in swaps:
            parts.append(f"{_arch_name(arch)} stands in for {swaps[arch]}")
    if "width" in rows and rows["width"].notna().any():
        widths = sorted(float(w) for w in rows["width"].dropna().unique())
        if widths != [1.0]:
            parts.append("channel width x" + "/".join(f"{w:g}" for w in widths))
    return ("Stand-ins: " + "; ".join(parts) + ". ") if parts else ""


def _hyper_sentence(rows: pd.DataFrame, what: str) -> str:
    """Pretraining hyper-parameters per panel, read from the table's sheet columns."""
    cols = {"lr": "LR", "batch_size": "batch", "weight_decay": "weight decay", "steps": "cap"}
    present = [c for c in cols if c in rows]
    if not present or rows.empty:
        return ""
    parts = []
    for (dataset, arch), cell in rows.groupby(PANEL_KEYS, sort=False):
        vals = []
        for c in present:
            uniq = sorted(cell[c].dropna().unique())
            if uniq:
                text = "/".join(f"{v:g}" for v in uniq)
                vals.append(f"{cols[c]} {text}" + (" steps" if c == "steps" else ""))
        parts.append(
            f"{_arch_name(arch)}/{DATASET_NAMES.get(dataset, dataset)}: " + ", ".join(vals)
        )
    return f"{what} (SGD, cosine LR): " + "; ".join(parts) + ". "


def _panels(rows: pd.DataFrame, config: dict, section: str) -> list[tuple[str, str]]:
    """(dataset, arch) panels: config order (nc_limits.<section>.panels) first, then
    the table's order of appearance."""
    found = list(dict.fromkeys(zip(rows["dataset"], rows["arch"], strict=True)))
    wanted = [tuple(p) for p in _study_config(config, section).get("panels", [])]
    return [p for p in wanted if p in found] + [p for p in found if p not in wanted]


def _std(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _spearman(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(x[ok], y[ok]).statistic)


def _use_log(values) -> bool:
    """Log scale for positive values spanning more than a factor 20. Decided once per
    figure over all its panels, so the same quantity has the same scale in each."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return bool(len(v) and (v > 0).all() and v.max() / v.min() > 20)


def _set_log(ax, log: bool, axis: str) -> None:
    if log:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _empty_panel(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _pick(rows: pd.DataFrame, metric: str, split: str) -> pd.DataFrame:
    return rows[(rows["metric"] == metric) & (rows["split"] == split)]


def _seeds(rows: pd.DataFrame) -> str:
    if "seed" not in rows or rows.empty:
        return "[]"
    return str(sorted(int(s) for s in rows["seed"].dropna().unique()))


# -------------------------------------------------------------------------------- fig4
FIG4_METRICS = {
    "train_variance": ("train", "x"),
    "strong_test_variance": ("test", "y"),
    "accuracy": ("test", "acc"),
}


def fig4_points(table: pd.DataFrame, *, experiment: str = TRAIN_SIZE_EXPERIMENT):
    """(per_run, points, rows_used) for fig4.

    per_run: one row per run at its last step: dataset, arch, n_train, seed, run, status,
    step, x (TrainVariance), y (StrongTestVariance), acc (test accuracy).
    points: per (dataset, arch, n_train) mean/std over the non-diverged runs.
    """
    rows = table[table["experiment"] == experiment]
    keep = np.zeros(len(rows), bool)
    for metric, (split, _) in FIG4_METRICS.items():
        keep |= ((rows["metric"] == metric) & (rows["split"] == split)).to_numpy()
    # a run that diverged before its checkpoint has only its "diverged" row: listed
    # (status, caption, claims), never in a point
    marks = rows[(rows["metric"] == "diverged") & ~rows["run"].isin(rows.loc[keep, "run"])]
    rows = rows[keep]
    if rows.empty and marks.empty:
        return pd.DataFrame(), pd.DataFrame(), rows
    rows = rows[rows["step"] == rows.groupby("run")["step"].transform("max")]
    rows = pd.concat([rows, marks]) if len(marks) else rows
    ids = ["dataset", "arch", "n_train", "seed", "run", "step"]
    per_run = rows.pivot_table(index=ids, columns="metric", values="value", aggfunc="mean")
    per_run = per_run.rename(columns={m: short for m, (_, short) in FIG4_METRICS.items()})
    per_run = per_run.reindex(columns=["x", "y", "acc"]).reset_index()
    if "status" in rows:
        status = rows.groupby("run")["status"].first()
        per_run["status"] = per_run["run"].map(status).fillna("unknown")
    else:
        per_run["status"] = "unknown"
    ok = per_run[per_run["status"] != "diverged"]
    points = (
        ok.groupby(["dataset", "arch", "n_train"], sort=False)
        .agg(
            x=("x", "mean"),
            x_std=("x", _std),
            y=("y", "mean"),
            y_std=("y", _std),
            acc=("acc", "mean"),
            acc_std=("acc", _std),
            n_seeds=("seed", "nunique"),
        )
        .reset_index()
        .sort_values(["dataset", "arch", "n_train"])
    )
    return per_run, points, rows


def fig4(table: pd.DataFrame, config: dict, *, experiment: str = TRAIN_SIZE_EXPERIMENT):
    """Figure 4: end-of-training TrainVariance (x) vs StrongTestVariance (y) per train size.

    Table contract (rows with experiment == `experiment`, default "train_size"):
      - metric "train_variance", split "train": TrainVariance of a checkpoint;
      - metric "strong_test_variance", split "test": StrongTestVariance;
      - metric "accuracy", split "test": test accuracy (written above each point);
      - columns run, dataset, arch, seed, n_train (the subset size N of that run), step;
        optional status ("diverged" runs are dropped; stopped_on_loss / capped are
        counted in the caption) and sheet columns lr, batch_size, weight_decay, steps,
        width (caption).
    "End of training" = each run's largest step in the table (runs stop on the loss
    criterion at different steps). One point per (dataset, arch, N): mean ± 1 std
    (ddof 1) over seeds. One panel per (dataset, arch), stacked vertically (paper:
    CIFAR-10/ResNet18 top, Fashion-MNIST/VGG11-BN bottom).
    """
    set_style()
    off = disabled_reason(config, STUDY, TRAIN_SIZE_EXPERIMENT)
    if off:
        return disabled_figure(table, "Figure 4", off)
    per_run, points, rows = fig4_points(table, experiment=experiment)
    panels = _panels(per_run, config, "train_size") if not per_run.empty else []
    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 1, figsize=(5.6, 3.7 * n), squeeze=False)
    axes = axes[:, 0]
    rho_parts = []
    all_n = sorted(points["n_train"].unique()) if not points.empty else []
    cmap = plt.get_cmap("viridis")
    colour = {
        N: cmap(0.85 * i / max(1, len(all_n) - 1)) for i, N in enumerate(all_n)
    }  # same N, same colour in every panel
    log_x = _use_log(points["x"]) if not points.empty else False
    log_y = _use_log(points["y"]) if not points.empty else False
    for ax, panel in zip(axes, panels or [None], strict=False):
        if panel is None:
            _empty_panel(ax, f"no '{experiment}' rows in the table")
            continue
        dataset, arch = panel
        cell = points[(points["dataset"] == dataset) & (points["arch"] == arch)]
        cell = cell.sort_values("n_train")
        ax.plot(cell["x"], cell["y"], color="0.6", lw=0.9, ls="--", zorder=1)
        for _, p in cell.iterrows():
            ax.errorbar(
                p["x"],
                p["y"],
                xerr=p["x_std"],
                yerr=p["y_std"],
                fmt="o",
                ms=6,
                capsize=3,
                color=colour[p["n_train"]],
                label=f"N = {int(p['n_train']):,}",
                zorder=3,
            )
            if math.isfinite(p["acc"]):
                ax.annotate(
                    f"{100 * p['acc']:.1f}%",
                    (p["x"], p["y"]),
                    xytext=(7, 7),
                    textcoords="offset points",
                    ha="left",
                    va="bottom",
                    fontsize=8,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                    zorder=4,
                )
        _set_log(ax, log_x, "x")
        _set_log(ax, log_y, "y")
        ax.margins(x=0.12, y=0.2)
        ax.set_xlabel("TrainVariance (end of training)")
        ax.set_ylabel("StrongTestVariance\n(end of training)")
        ax.set_title(f"{_arch_name(arch)} on {dataset_label(dataset, config)}")
        ax.legend(fontsize=7, title="train set size", title_fontsize=7, loc="best")
        r_test = _spearman(cell["x"], cell["y"])
        r_acc = _spearman(cell["x"], cell["acc"])
        if math.isfinite(r_test):
            rho_parts.append(
                f"{_arch_name(arch)}/{DATASET_NAMES.get(dataset, dataset)}: "
                f"rho(TrainVar, StrongTestVar) = {r_test:+.2f}, "
                f"rho(TrainVar, test acc) = {r_acc:+.2f}"
            )
    fig.tight_layout()

    by_run = rows.drop_duplicates("run")
    statuses = by_run["status"].value_counts() if "status" in by_run and len(by_run) else {}
    status_text = ", ".join(f"{int(c)} {s}" for s, c in dict(statuses).items())
    sizes = ", ".join(f"{int(v):,}" for v in all_n)
    caption = (
        "Figure 4. Train vs test collapse across train-set sizes N "
        f"({sizes}). Each point: TrainVariance (x) and StrongTestVariance (y) at the end of "
        "training (each run's last checkpoint; runs stop when the train loss falls below the "
        "stop-loss threshold, 'stopped_on_loss', or at the step cap, 'capped'), mean +/- 1 std "
        f"over seeds {_seeds(per_run)}, a different balanced random subset per seed; number "
        "above a point: mean test accuracy. Paper: ResNet18 on CIFAR-10 subsets N = 12 500 to "
        "50 000 (top), VGG11-BN on Fashion-MNIST subsets (bottom), 5 seeds, stop at train "
        f"loss 1e-6. Runs: {status_text or 'none'} (diverged runs excluded). "
        + ("Spearman over N: " + "; ".join(rho_parts) + ". " if rho_parts else "")
        + _hyper_sentence(rows.drop_duplicates("run"), "Training")
        + "Variances use the class means of the same checkpoint (the paper writes the means "
        "at the final time T, which here is that checkpoint). "
        + _stand_ins(config, "train_size", rows)
    )
    add_caption(fig, caption)
    return fig, rows, caption


# -------------------------------------------------------------------------------- fig5
def _col(rows: pd.DataFrame, preferred: str, fallback: str) -> str | None:
    return preferred if preferred in rows else (fallback if fallback in rows else None)


def best_finetune(rows: pd.DataFrame, metric: str = "finetune_accuracy") -> pd.DataFrame:
    """Best test accuracy over the LR sweep per (run, step): diverged LRs and non-finite
    values ignored, ties to the smaller LR. Columns run, step, best, best_lr, n_lrs,
    n_diverged."""
    ft = _pick(rows, metric, "test").copy()
    if ft.empty:
        return pd.DataFrame(columns=["run", "step", "best", "best_lr", "n_lrs", "n_diverged"])
    status_col = _col(ft, "probe_status", "status")
    lr_col = _col(ft, "probe_lr", "lr")
    ft["_lr"] = ft[lr_col].astype(float) if lr_col else np.nan
    diverged = ft[status_col] == "diverged" if status_col else pd.Series(False, index=ft.index)
    ft["_diverged"] = diverged | ~np.isfinite(ft["value"].astype(float))
    counts = ft.groupby(["run", "step"]).agg(n_lrs=("_lr", "size"), n_diverged=("_diverged", "sum"))
    ok = ft[~ft["_diverged"]].sort_values(["value", "_lr"], ascending=[False, True])
    best = ok.groupby(["run", "step"]).first()[["value", "_lr"]]
    best = best.rename(columns={"value": "best", "_lr": "best_lr"})
    return counts.join(best, how="left").reset_index()


FIG5_METRICS = ["strong_test_variance", "finetune_accuracy", "linear_probe_accuracy"]


def fig5_points(table: pd.DataFrame, *, experiment: str = TRANSFER_EXPERIMENT):
    """(per_ckpt, points, rows_used) for fig5: per (run, step) x/y, then per
    (dataset, arch, step) mean/std over seeds."""
    rows = table[table["experiment"] == experiment]
    used = pd.concat(
        [_pick(rows, m, "test") for m in FIG5_METRICS], ignore_index=False
    ).sort_index()
    # a diverged pretraining run's earlier checkpoints are not averaged with the others
    if "status" in rows:
        rows = rows[rows["status"] != "diverged"]
    x_rows = _pick(rows, "strong_test_variance", "test")
    best = best_finetune(rows)
    lin = _pick(rows, "linear_probe_accuracy", "test")
    if x_rows.empty or best.empty:
        return pd.DataFrame(), pd.DataFrame(), used
    extra = [c for c in ("view",) if c in x_rows]
    x = x_rows.groupby(["run", "step"]).agg(
        x=("value", "mean"),
        dataset=("dataset", "first"),
        arch=("arch", "first"),
        seed=("seed", "first"),
        **{c: (c, "first") for c in extra},
    )
    per_ckpt = x.join(best.set_index(["run", "step"]), how="inner")
    if not lin.empty:
        per_ckpt = per_ckpt.join(
            lin.groupby(["run", "step"])["value"].mean().rename("linear"), how="left"
        )
    else:
        per_ckpt["linear"] = np.nan
    per_ckpt = per_ckpt.reset_index()
    points = (
        per_ckpt.groupby(["dataset", "arch", "step"], sort=False)
        .agg(
            x=("x", "mean"),
            x_std=("x", _std),
            y=("best", "mean"),
            y_std=("best", _std),
            linear=("linear", "mean"),
            linear_std=("linear", _std),
            n_seeds=("seed", "nunique"),
        )
        .reset_index()
        .sort_values(["dataset", "arch", "step"])
    )
    return per_ckpt, points, used


def fig5(table: pd.DataFrame, config: dict, *, experiment: str = TRANSFER_EXPERIMENT):
    """Figure 5: checkpoint StrongTestVariance (x) vs best fine-tuned accuracy (y).

    Table contract (rows with experiment == `experiment`, default "transfer"):
      - metric "strong_test_variance", split "test": StrongTestVariance of pretraining
        checkpoint (run, step) on the pretraining (superclass) test set;
      - metric "finetune_accuracy", split "test": downstream test accuracy after
        fine-tuning from checkpoint (run, step) — `step` is the *pretraining* step of the
        checkpoint — one row per swept LR, with columns probe ("finetune"), probe_lr and
        probe_status (`ncrepro.probes.sweep_rows` writes these; plain `lr`/`status` are
        used only when probe_lr/probe_status are absent, since in the aggregated table
        those names hold the pretraining run's LR and status);
      - optional metric "linear_probe_accuracy", split "test": kept in the points
        (column linear) for the table, not plotted;
      - columns run, dataset, arch, seed (and view, shown in the panel title).
    y = max over LRs of finetune_accuracy, ignoring probe_status "diverged" and NaN;
    per checkpoint step: mean ± 1 std (ddof 1) over seeds. One panel per (dataset,
    arch), side by side (paper: MLP 3×1024 on MNIST odd/even → 10 classes, left;
    ResNet18 on CIFAR-10 objects/animals → 8 classes, right).
    """
    set_style()
    off = disabled_reason(config, STUDY, TRANSFER_EXPERIMENT)
    if off:
        return disabled_figure(table, "Figure 5", off)
    per_ckpt, points, rows = fig5_points(table, experiment=experiment)
    panels = _panels(per_ckpt, config, "transfer") if not per_ckpt.empty else []
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.0), squeeze=False)
    axes = axes[0]
    rho_parts = []
    log_x = _use_log(points["x"]) if not points.empty else False
    for ax, panel in zip(axes, panels or [None], strict=False):
        if panel is None:
            _empty_panel(ax, f"no '{experiment}' rows with variances and fine-tunes")
            continue
        dataset, arch = panel
        cell = points[(points["dataset"] == dataset) & (points["arch"] == arch)]
        cell = cell.sort_values("step")
        steps = cell["step"].to_numpy(float)
        norm = (
            LogNorm(steps.min(), max(steps.max(), steps.min() * 1.01))
            if (steps > 0).all()
            else Normalize(steps.min(), steps.max())
        )
        cmap = plt.get_cmap("viridis")
        ax.plot(cell["x"], cell["y"], color="0.6", lw=0.9, ls="--", zorder=1)
        ax.errorbar(
            cell["x"],
            cell["y"],
            xerr=cell["x_std"],
            yerr=cell["y_std"],
            fmt="none",
            ecolor="0.45",
            elinewidth=0.9,
            capsize=2.5,
            zorder=2,
        )
        sc = ax.scatter(
            cell["x"],
            cell["y"],
            c=steps,
            cmap=cmap,
            norm=norm,
            s=36,
            edgecolors="k",
            linewidths=0.5,
            zorder=3,
            label="fine-tune (best LR)",
        )
        cbar = fig.colorbar(sc, ax=ax, pad=0.02)
        cbar.set_label("pretraining checkpoint (SGD step)", fontsize=8)
        _set_log(ax, log_x, "x")
        ax.margins(x=0.1, y=0.15)
        ax.set_xlabel(
            "StrongTestVariance of checkpoint\n(pretraining test set; lower = more collapsed)"
        )
        ax.set_ylabel("fine-tuned test accuracy\n(best over LR sweep)")
        views = (
            per_ckpt.loc[(per_ckpt["dataset"] == dataset) & (per_ckpt["arch"] == arch), "view"]
            if "view" in per_ckpt
            else pd.Series(dtype=object)
        )
        view = next((v for v in views.dropna().unique() if v not in ("full", "")), None)
        title = f"{_arch_name(arch)} on {dataset_label(dataset, config)}"
        ax.set_title(title + (f"\npretraining view: {view}" if view else ""))
        rho = _spearman(cell["x"], cell["y"])
        if math.isfinite(rho):
            rho_parts.append(f"{_arch_name(arch)}/{DATASET_NAMES.get(dataset, dataset)} {rho:+.2f}")
    fig.tight_layout()

    lr_col = _col(rows, "probe_lr", "lr")
    ft_rows = rows[rows["metric"] == "finetune_accuracy"]
    lrs = sorted(ft_rows[lr_col].dropna().unique()) if lr_col and len(ft_rows) else []
    n_ft = int(per_ckpt["n_lrs"].sum()) if len(per_ckpt) else 0
    n_div = int(per_ckpt["n_diverged"].sum()) if len(per_ckpt) else 0
    n_none = int(per_ckpt["best"].isna().sum()) if len(per_ckpt) else 0
    best_lr = (
        per_ckpt["best_lr"].value_counts().idxmax()
        if len(per_ckpt) and per_ckpt["best_lr"].notna().any()
        else None
    )
    caption = (
        "Figure 5. The paper's claim: collapsed features transfer worse. Each point is one "
        "pretraining checkpoint (colour: its SGD step): x = its StrongTestVariance on the "
        "pretraining (superclass) test set; y = downstream test accuracy after fine-tuning "
        "all weights from that checkpoint with a new classification head, the best over the "
        "LR sweep "
        f"{{{', '.join(f'{v:g}' for v in lrs)}}} (diverged LRs ignored: {n_div} of {n_ft} "
        f"fine-tunes diverged"
        + (
            f"; {n_none} (checkpoint, seed) pairs had no usable LR and are left out of the means"
            if n_none
            else ""
        )
        + (f"; most frequent best LR {best_lr:g}" if best_lr is not None else "")
        + f"); mean +/- 1 std over seeds {_seeds(per_ckpt)}. Paper: MLP 3x1024 on MNIST "
        "odd/even -> 10 classes (left), ResNet18 on CIFAR-10 objects/animals -> 8 classes "
        "(right); LR swept over 0.0005-0.25; 5 seeds. "
        + (
            "Spearman rho(x, y) over checkpoints: "
            + "; ".join(rho_parts)
            + " (the claim predicts rho > 0: lower variance, lower accuracy). "
            if rho_parts
            else ""
        )
        + _hyper_sentence(
            _pick(rows, "strong_test_variance", "test").drop_duplicates("run"), "Pretraining"
        )
        + (
            "The linear probe on frozen penultimate features is in the table "
            "(metric linear_probe_accuracy), not plotted, as in the paper. "
            if "linear" in per_ckpt and per_ckpt["linear"].notna().any()
            else ""
        )
        + "Variances use the class means of the same checkpoint. "
        + _stand_ins(config, "transfer", rows)
    )
    add_caption(fig, caption)
    return fig, rows, caption


FIGURES = {"fig4": fig4, "fig5": fig5}
