"""nc_limits (Hui, Belkin, Nakkiran 2022) figures 1-3, from the study's long table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncrepro.figures import (
    ARCH_NAMES,
    LABELS,
    PALETTE,
    add_caption,
    dataset_label,
    plain_log_ticks,
    set_style,
)

VARIANCES = ["train_variance", "strong_test_variance", "weak_test_variance"]
DIVERGED = "diverged"  # a run's status, and the metric row the metrics stage gives it


def stand_in_sentence(config: dict, dataset_keys, archs) -> str:
    """What stood in for what, for captions (empty at paper scale)."""
    parts = []
    for key in dict.fromkeys(dataset_keys):
        entry = config["datasets"][key]
        if entry.get("stands_in_for"):
            parts.append(f"'{key}' ({entry['source']}) stands in for {entry['stands_in_for']}")
    swaps = config["nc_limits"]["grid"].get("arch_stands_in_for", {})
    for arch in dict.fromkeys(archs):
        if arch in swaps:
            parts.append(f"{ARCH_NAMES.get(arch, arch)} stands in for {swaps[arch]}")
    width = config["nc_limits"]["width"]
    if width != 1:
        parts.append(f"all architectures at channel width x{width}")
    return ("Stand-ins: " + "; ".join(parts) + ". ") if parts else ""


def training_sentence(config: dict) -> str:
    t = config["nc_limits"]["training"]
    lrs = ", ".join(f"{ARCH_NAMES.get(a, a)} {lr:g}" for a, lr in config["nc_limits"]["lr"].items())
    return (
        f"Preset '{config['preset']}': initial LR {lrs}; SGD momentum {t['momentum']}, "
        f"weight decay {t['weight_decay']}, batch {t['batch_size']}, {t['steps']} iterations, "
        f"{t['lr_schedule']} LR, cross-entropy, no augmentation. "
        "Variances at iteration t use class means of the same checkpoint t "
        "(the paper writes the means at the final time T). "
    )


def _curves(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    sub = rows[rows["metric"] == metric]
    return sub.groupby("step")["value"].agg(["mean", "min", "max", "count"]).reset_index()


def _completed(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` without the runs that diverged: their earlier checkpoints are real, but a
    curve over seeds must not average a run that did not finish."""
    return rows[rows["status"] != DIVERGED]


def _plot_variances(ax, rows: pd.DataFrame, metrics) -> None:
    """Mean curves of the completed runs; a diverged run is marked instead (its rows
    include the metric "diverged", the only one a run diverged before its first
    checkpoint has)."""
    for metric in metrics:
        curve = _curves(_completed(rows), metric)
        if curve.empty:
            continue
        ax.plot(
            curve["step"],
            curve["mean"],
            marker="o",
            ms=3,
            lw=1.6,
            color=PALETTE[metric],
            label=LABELS[metric],
        )
        if (curve["count"] > 1).any():
            ax.fill_between(
                curve["step"], curve["min"], curve["max"], color=PALETTE[metric], alpha=0.2, lw=0
            )
    n_diverged = rows.loc[rows["status"] == DIVERGED, "run"].nunique()
    if n_diverged:
        text = DIVERGED + (f" ({n_diverged} runs)" if n_diverged > 1 else "")
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", color="red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_xlabel("SGD iteration")


def _curves_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["experiment"] == "curves") & table["metric"].isin([*VARIANCES, DIVERGED])]


def _diverged_sentence(rows: pd.DataFrame) -> str:
    n = rows.loc[rows["status"] == DIVERGED, "run"].nunique()
    return f"{n} diverged run(s): marked 'diverged', left out of the curves. " if n else ""


def _seeds_sentence(seeds: list[int]) -> str:
    if len(seeds) > 1:
        return f"Seeds {seeds}: line = mean, band = min-max over seeds. "
    return f"One seed ({seeds[0]}): no band. " if seeds else ""


def fig_curves(table: pd.DataFrame, config: dict, *, weak: bool):
    """fig1 (train vs strong test) and fig2 (+ weak test): one run's variances vs iteration."""
    set_style()
    rows = _curves_rows(table)
    spec = config["nc_limits"]["curves"]
    metrics = VARIANCES if weak else VARIANCES[:2]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    _plot_variances(ax, rows, metrics)
    ax.set_ylabel("variance (within / between class)")
    title = (
        f"{ARCH_NAMES.get(spec['arch'], spec['arch'])} on {dataset_label(spec['dataset'], config)}"
    )
    # two lines: the stand-in names make one line wider than the axes
    ax.set_title(("Neural collapse" if weak else "Failure of test collapse") + "\n" + title)
    ax.legend(frameon=True, fontsize=8)
    done = _completed(rows)
    seeds = sorted(int(s) for s in done["seed"].unique())
    final = done[done["step"] == done["step"].max()].groupby("metric")["value"].mean()
    finals = ", ".join(f"{LABELS[m]} {final[m]:.3g}" for m in metrics if m in final)
    caption = (
        ("Figure 2. " if weak else "Figure 1. ")
        + "Train collapse vs test collapse over training "
        + f"(paper: ResNet18 on CIFAR-10). {_seeds_sentence(seeds)}{_diverged_sentence(rows)}"
        + f"Final values: {finals}. "
        + training_sentence(config)
        + stand_in_sentence(config, [spec["dataset"]], [spec["arch"]])
        + (
            "WeakTestVariance: k-means (k = K) centroids of the test features, distance to the "
            "nearest centroid. "
            if weak
            else ""
        )
    )
    fig.tight_layout()
    add_caption(fig, caption)
    return fig, rows, caption


def fig_grid(table: pd.DataFrame, config: dict):
    """fig3: TrainVariance and StrongTestVariance vs iteration, dataset x architecture."""
    set_style()
    grid = config["nc_limits"]["grid"]
    rows = table[(table["experiment"] == "grid") & table["metric"].isin([*VARIANCES[:2], DIVERGED])]
    datasets, archs = grid["datasets"], grid["archs"]
    fig, axes = plt.subplots(
        len(datasets),
        len(archs),
        figsize=(3.0 * len(archs) + 0.6, 2.4 * len(datasets) + 0.4),
        squeeze=False,
        sharex=True,
    )
    used_archs = []
    for i, dataset in enumerate(datasets):
        for j, grid_arch in enumerate(archs):
            ax = axes[i, j]
            cell = rows[(rows["dataset"] == dataset) & (rows["grid_arch"] == grid_arch)]
            arch = cell["arch"].iloc[0] if len(cell) else grid_arch
            used_archs.append(arch)
            _plot_variances(ax, cell, VARIANCES[:2])
            ax.set_title(
                f"{dataset_label(dataset, config)}\n{ARCH_NAMES.get(arch, arch)}", fontsize=8
            )
            if i < len(datasets) - 1:
                ax.set_xlabel("")
            if j == 0:
                ax.set_ylabel("variance")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.0)
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    finals = _final_gap_sentence(_completed(rows))
    caption = (
        "Figure 3. Failure of test collapse: TrainVariance (purple) and StrongTestVariance "
        "(black) vs SGD iteration for each dataset x architecture (paper: MNIST, "
        "Fashion-MNIST, CIFAR-10, SVHN, STL-10 x ResNet18 (ResNet50 on STL-10), DenseNet201, "
        f"VGG11-BN). {finals}{_diverged_sentence(rows)}"
        + training_sentence(config)
        + stand_in_sentence(config, datasets, used_archs)
    )
    add_caption(fig, caption)
    return fig, rows, caption


def _final_gap_sentence(rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    last = rows[rows["step"] == rows.groupby("run")["step"].transform("max")]
    pivot = last.pivot_table(index="run", columns="metric", values="value", aggfunc="mean")
    if not {"train_variance", "strong_test_variance"} <= set(pivot.columns):
        return ""
    ratio = pivot["strong_test_variance"] / pivot["train_variance"]
    return (
        f"At the last checkpoint StrongTestVariance / TrainVariance ranges "
        f"{np.nanmin(ratio):.3g}-{np.nanmax(ratio):.3g} across cells. "
    )


def fig1(table: pd.DataFrame, config: dict):
    return fig_curves(table, config, weak=False)


def fig2(table: pd.DataFrame, config: dict):
    return fig_curves(table, config, weak=True)
