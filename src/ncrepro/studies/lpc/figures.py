"""lpc figures 1, 3, 4, 5 (the paper's numbering) from the study's long table (fig3-5)
and the toy stage's latents (fig1). Fig. 2 of the paper is a sketch (a hypercube), not a
result, and is not reproduced."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncrepro.figures import add_caption, set_style
from ncrepro.studies.lpc.models import BINARITY_MODELS, NAMES
from ncrepro.studies.lpc.report import (
    convergence_epochs,
    curves,
    final_values,
    model_order,
    section_order,
    select_runs,
    settings_sentence,
    stand_in_sentence,
    summary,
)

# One colour per model: the penalized linear-penultimate family warm, the rest cool/grey.
COLORS = dict(
    zip(
        NAMES,
        [
            "#d62728",  # LPC
            "#ff7f0e",  # LPC-Wide
            "#8c564b",  # LPC-Narrow
            "#bcbd22",  # LPC-NoPen
            "#e377c2",  # LPC-SCL
            "#1f77b4",  # LinPen
            "#17becf",  # NonlinPen
            "#2ca02c",  # SCL
            "#9467bd",  # ArcFace
            "#7f7f7f",  # CosFace
            "#000000",  # NoPen
        ],
        strict=True,
    )
)


def _no_data(ax, text="no data at this scale"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="red")


# --------------------------------------------------------------------------------- fig1
def fig1(table: pd.DataFrame, config: dict):
    """The toy's 2-d latents for each γ (one panel each, own symmetric limits)."""
    set_style()
    latents = pd.read_parquet(config["inputs"]["toy"])
    gammas = sorted(latents["gamma"].unique())
    fig, axes = plt.subplots(1, len(gammas), figsize=(3.1 * len(gammas), 3.4))
    axes = np.atleast_1d(axes)
    palette = plt.get_cmap("tab10")
    summaries, rows = [], []
    for ax, gamma in zip(axes, gammas, strict=True):
        part = latents[latents["gamma"] == gamma]
        z = part[["z1", "z2"]].to_numpy()
        for c in sorted(part["label"].unique()):
            sel = part["label"].to_numpy() == c
            ax.scatter(z[sel, 0], z[sel, 1], s=3, alpha=0.5, color=palette(int(c)), lw=0)
        lim = 1.08 * np.abs(z).max()
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        means = part.groupby("label")[["z1", "z2"]].mean()
        spread = np.sqrt(np.mean(np.sum((z - means.loc[part["label"]].to_numpy()) ** 2, axis=1)))
        norm = float(np.linalg.norm(means.to_numpy(), axis=1).mean())
        ax.set_title(f"γ = {gamma:g} (epoch {int(part['epoch'].iloc[0])})")
        ax.set_xlabel("z1")
        ax.text(
            0.03,
            0.03,
            f"|mean| {norm:.3g}\nspread {spread:.2g}",
            transform=ax.transAxes,
            fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        accuracy = float(part["train_accuracy"].iloc[0])
        summaries.append(
            f"gamma {gamma:g}: class-mean norm {norm:.3g}, within-class rms {spread:.2g}, "
            f"train accuracy {accuracy:.3f}"
        )
        step = int(part["epoch"].iloc[0])
        for metric, value in (
            ("class_mean_norm", norm),
            ("within_class_rms", spread),
            ("train_accuracy", accuracy),
        ):
            rows.append(
                {
                    "experiment": f"toy_gamma_{gamma:g}",
                    "step": step,
                    "split": "train",
                    "metric": metric,
                    "value": value,
                }
            )
    axes[0].set_ylabel("z2")
    toy = config["lpc"]["toy"]
    caption = (
        "Figure 1. Latent point collapse in a 2-d linear penultimate layer as the penalty "
        "gamma grows (each panel its own scale). The authors' demo notebook (Figure 1 of "
        f"the paper): {toy['num_classes']} Gaussian clusters (std {toy['noise_std']}) "
        f"around random vertices of the {toy['input_dim']}-d hypercube, "
        f"{toy['n_per_class']} points per class; MLP {toy['input_dim']}-"
        f"{'-'.join(str(h) for h in toy['hidden'])} (SiLU)-2 (linear)-{toy['num_classes']}; "
        f"AdamW lr {toy['lr']:g}, weight decay {toy['weight_decay']:g}, batch "
        f"{toy['batch_size']}; gamma x{toy['gamma_factor']:g} per epoch from "
        f"{toy['gamma_init']:g}, rounded down to a power of ten; latents when gamma first "
        "reaches each value. gamma = 0 (our addition): the same network trained with "
        "cross-entropy only for as many epochs. " + "; ".join(summaries) + "."
    )
    fig.tight_layout()
    add_caption(fig, caption)
    return fig, pd.DataFrame(rows), caption


# --------------------------------------------------------------------------------- fig3
def fig3_points(table: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """Per (section, model): mean/std over seeds of the separation ratio (`split`) and of
    the DeepFool robustness (test), last checkpoint of the selected runs."""
    selected = select_runs(table)
    sep = summary(final_values(table, selected, "separation_ratio", split))
    rob = summary(final_values(table, selected, "deepfool_robustness", "test"))
    points = sep.merge(rob, on=["paper_dataset", "model"], suffixes=("_sep", "_rob"))
    return points


def fig3(table: pd.DataFrame, config: dict):
    set_style()
    points = fig3_points(table)
    sections = section_order(table)
    fig, axes = plt.subplots(1, max(len(sections), 1), figsize=(5.2 * max(len(sections), 1), 4.2))
    axes = np.atleast_1d(axes)
    rhos = []
    for ax, section in zip(axes, sections, strict=False):
        part = points[points["paper_dataset"] == section]
        if part.empty:
            _no_data(ax)
            continue
        for _, p in part.iterrows():
            ax.errorbar(
                p["mean_sep"],
                p["mean_rob"],
                xerr=None if np.isnan(p["std_sep"]) else p["std_sep"],
                yerr=None if np.isnan(p["std_rob"]) else p["std_rob"],
                fmt="o",
                color=COLORS[p["model"]],
                ms=6,
                capsize=2,
            )
            ax.annotate(
                p["model"],
                (p["mean_sep"], p["mean_rob"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("class separation ratio (train features)")
        ax.set_ylabel("DeepFool robustness ||r|| / ||x||")
        ax.set_title(section)
        from scipy.stats import spearmanr

        ok = part.dropna(subset=["mean_sep", "mean_rob"])
        rho = spearmanr(ok["mean_sep"], ok["mean_rob"]).statistic if len(ok) >= 3 else np.nan
        rhos.append(f"{section}: Spearman rho {rho:.2f} over {len(ok)} models")
    caption = (
        "Figure 3. Class separation vs robustness, one point per model (mean over seeds, bars: "
        "std over seeds); separation ratio of the train features, DeepFool robustness on test "
        "images, both at the last checkpoint of the best-LR run per seed. "
        + "; ".join(rhos)
        + ". "
        + settings_sentence(config)
        + stand_in_sentence(config)
    )
    fig.tight_layout()
    add_caption(fig, caption)
    rows = table[
        table["metric"].isin(["separation_ratio", "deepfool_robustness"])
        & table["run"].isin(select_runs(table)["run"])
    ]
    return fig, rows, caption


# --------------------------------------------------------------------------------- fig4
FIG4_METRICS = [
    ("binarity_score_mean", "GMM score (mean over dims)", "linear"),
    ("binarity_std_mean", "component std (mean over dims)", "log"),
    ("binarity_peak_distance_mean", "peak distance (mean over dims)", "log"),
]


def fig4(table: pd.DataFrame, config: dict):
    set_style()
    selected = select_runs(table)
    sections = section_order(table)
    models = model_order(m for m in table["model"].unique() if m in BINARITY_MODELS)
    nrow = max(len(sections), 1)
    fig, axes = plt.subplots(nrow, 3, figsize=(13, 3.3 * nrow), squeeze=False)
    finals = []
    for r, section in enumerate(sections):
        for c, (metric, label, scale) in enumerate(FIG4_METRICS):
            ax = axes[r, c]
            data = curves(table, selected, metric, "train")
            data = data[data["paper_dataset"] == section]
            if data.empty:
                _no_data(ax)
            for model in models:
                m = data[data["model"] == model]
                if m.empty:
                    continue
                ax.plot(m["epoch"], m["mean"], marker="o", ms=3, color=COLORS[model], label=model)
                if (m["n"] > 1).any():
                    ax.fill_between(
                        m["epoch"],
                        m["mean"] - m["std"],
                        m["mean"] + m["std"],
                        color=COLORS[model],
                        alpha=0.15,
                        lw=0,
                    )
                if c == 0:
                    finals.append(f"{section} {model} {m['mean'].iloc[-1]:.3g}")
            ax.set_yscale(scale)
            ax.set_xlabel("epoch")
            ax.set_title(f"{section}: {label}", fontsize=9)
            if c == 0:
                ax.axhline(-0.5 * np.log(2 * np.pi * np.e), color="grey", ls=":", lw=1)
    if models:
        axes[0, 0].legend(fontsize=7)
    caption = (
        "Figure 4. Binarity of the penultimate layer over training (train features): per "
        "dimension a 2-component Gaussian mixture on the standardized values; mean over the "
        "dimensions of its log-likelihood score (dotted: -1.419, a single Gaussian), of the "
        "components' std and of the peak distance |m1 - m2| / mean std; mean (band: std) over "
        "seeds of the best-LR runs. Final scores: "
        + "; ".join(finals)
        + ". "
        + settings_sentence(config)
        + stand_in_sentence(config)
    )
    fig.tight_layout()
    add_caption(fig, caption)
    rows = table[
        table["metric"].isin([m for m, _, _ in FIG4_METRICS])
        & table["run"].isin(selected["run"])
        & (table["split"] == "train")
    ]
    return fig, rows, caption


# --------------------------------------------------------------------------------- fig5
FIG5_METRICS = [
    ("nc1_per_dim", "NC1 / d", "log"),
    ("nc2_equinorm", "equinorm", "log"),
    ("nc2_equiangularity", "equiangularity", "log"),
    ("nc2_max_angle", "max-angle", "log"),
]


def fig5(table: pd.DataFrame, config: dict):
    set_style()
    selected = select_runs(table)
    sections = section_order(table)
    models = model_order(table["model"].unique())
    threshold = config["lpc"].get("convergence_accuracy", 0.999)
    converged = convergence_epochs(table, selected, threshold)
    ncol = max(len(sections), 1)
    fig, axes = plt.subplots(4, ncol, figsize=(6.0 * ncol, 11), squeeze=False)
    for c, section in enumerate(sections):
        for r, (metric, label, scale) in enumerate(FIG5_METRICS):
            ax = axes[r, c]
            data = curves(table, selected, metric, "train")
            data = data[data["paper_dataset"] == section]
            if data.empty:
                _no_data(ax)
            for model in models:
                m = data[data["model"] == model]
                if m.empty:
                    continue
                ax.plot(
                    m["epoch"],
                    m["mean"],
                    marker="o",
                    ms=2.5,
                    lw=1.2,
                    color=COLORS[model],
                    label=model,
                )
                if (section, model) in converged:
                    ax.axvline(converged[(section, model)], color=COLORS[model], ls="--", lw=0.8)
            ax.set_yscale(scale)
            ax.set_title(f"{section}: {label} (train)", fontsize=9)
            if r == 3:
                ax.set_xlabel("epoch")
    if models:
        axes[0, 0].legend(fontsize=6.5, ncol=2)
    reached = [f"{d} {m} {e:.0f}" for (d, m), e in sorted(converged.items())]
    caption = (
        "Figure 5. Neural collapse over training for every model (train features, true "
        "labels): NC1/d and NC2 (equinorm, equiangularity, max-angle of the centred class "
        "means); mean over seeds of the best-LR runs. Dashed lines: the mean epoch at which "
        f"train accuracy (clean images, at checkpoints) first reached {threshold:g} — "
        + ("; ".join(reached) if reached else "no model reached it in this run")
        + ". "
        + settings_sentence(config)
        + stand_in_sentence(config)
    )
    fig.tight_layout()
    add_caption(fig, caption)
    rows = table[
        table["metric"].isin([m for m, _, _ in FIG5_METRICS] + ["accuracy"])
        & table["run"].isin(selected["run"])
        & (table["split"] == "train")
    ]
    return fig, rows, caption
