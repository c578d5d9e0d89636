"""ib_supcon figures 2-4 (Wang & Palmer), from the study's long table (the pair-analysis
rows, `ncrepro.studies.ib_supcon.pair`)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import cm, colors, ticker

from ncrepro.claims import disabled_reason
from ncrepro.figures import DATASET_NAMES, add_caption, not_drawn_panel, set_style
from ncrepro.studies.ib_supcon import select as sel
from ncrepro.studies.ib_supcon.runs import STUDY

SOLID, DASHED = "#1b6ca8", "#d95f02"  # K-dim IB space; full representation


def _label(config: dict, p: dict) -> str:
    name = DATASET_NAMES.get(p["dataset"], p["dataset"])
    return f"{name} (for {p['paper_dataset']})" if name != p["paper_dataset"] else name


def _head(head: dict) -> str:
    """ "64 -> 64 -> 32 MLP" style text of a head config (hidden default: backbone)."""
    if head.get("kind") == "nonlinear":
        return f"MLP (hidden {head.get('hidden', 'backbone width')}) to {head['width']}"
    return f"{head.get('kind')} to {head['width']}"


def setting_sentence(config: dict) -> str:
    block = config["ib_supcon"]
    t, a = block["training"], block["analysis"]
    stands = "; ".join(
        f"'{e['dataset']}' ({config['datasets'][e['dataset']]['source']}) stands for {e['paper']}"
        for e in block.get("in_domain", [])
        if e["dataset"] != e["paper"]
    )
    return (
        f"Preset '{config['preset']}': two SupCon encoders per dataset (seeds "
        f"{block['seeds']}), {block['arch']} at width {block['width']} (paper: ResNet-50), "
        f"projection head {_head(block['head'])}, temperature "
        f"{block['objective']['temperature']}, "
        f"SGD LR {block['lr']} ({t['lr_schedule']}), batch {t['batch_size']} x "
        f"{t.get('views', 1)} views ({t['augment']}), {t['steps']} steps. "
        + (f"Stand-ins: {stands}. " if stands else "")
        + "Representation = the backbone's pooled output (not the projection head). "
        "Linear evaluation: logistic regression (C = 1) on standardized features, train "
        f"split, scored on test. Covariance ridge {a.get('ridge', 0):g} x mean variance. "
    )


def _colorbar(fig, ax, norm, label="epoch"):
    mappable = cm.ScalarMappable(norm=norm, cmap="viridis")
    fig.colorbar(mappable, ax=ax, label=label, fraction=0.05, pad=0.02)


def fig2(table: pd.DataFrame, config: dict):
    """Mean (± std) and variance of the K leading CCA coefficients vs NC1, per checkpoint."""
    set_style()
    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    pairs = sel.pairs(rows)
    tpt = 1.0 - config["ib_supcon"]["analysis"].get("tpt_train_error", 0.02)
    ncol = max(len(pairs), 1)
    fig, axes = plt.subplots(2, ncol, figsize=(4.2 * ncol + 0.8, 6.0), squeeze=False)
    notes = []
    for j, p in enumerate(pairs):
        run = p["run"]
        nc = sel.series(rows, run, "nc1", split="train", model=1)
        mean = sel.series(rows, run, "cca_leading_mean")
        var = sel.series(rows, run, "cca_leading_var")
        acc = sel.series(
            rows, run, "linear_accuracy", split="train", model=1, representation=sel.RAW
        )
        data = (
            nc[["step", "epoch", "value"]]
            .rename(columns={"value": "nc1"})
            .merge(mean[["step", "value", "dims"]].rename(columns={"value": "mean"}), on="step")
            .merge(var[["step", "value"]].rename(columns={"value": "var"}), on="step")
            .merge(acc[["step", "value"]].rename(columns={"value": "train_acc"}), on="step")
        )
        norm = colors.Normalize(data["epoch"].min(), max(data["epoch"].max(), 1e-9))
        in_tpt = data["train_acc"] >= tpt
        for i, (column, ylabel) in enumerate(
            (("mean", "mean of K leading CCA coef."), ("var", "variance of K leading CCA coef."))
        ):
            ax = axes[i, j]
            if in_tpt.any():
                lo, hi = data.loc[in_tpt, "nc1"].min(), data.loc[in_tpt, "nc1"].max()
                ax.axvspan(
                    lo / 1.15,
                    hi * 1.15,
                    color="0.85",
                    zorder=0,
                    label=f"train error < {100 * (1 - tpt):g} %",
                )
            if column == "mean":
                ax.errorbar(
                    data["nc1"],
                    data["mean"],
                    yerr=np.sqrt(data["var"]),
                    fmt="none",
                    ecolor="0.5",
                    elinewidth=0.8,
                    zorder=1,
                )
            ax.scatter(
                data["nc1"],
                data[column],
                c=data["epoch"],
                cmap="viridis",
                norm=norm,
                s=36,
                zorder=2,
                edgecolors=np.where(in_tpt, "k", "none"),
            )
            ax.plot(data["nc1"], data[column], color="0.6", lw=0.7, zorder=1)
            positive = data["nc1"][data["nc1"] > 0]
            if len(positive) and positive.max() > 10 * positive.min():  # log over decades
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("NC1 of model 1 (train)")
            ax.set_ylabel(ylabel)
            if i == 0:
                k = int(data["dims"].max()) if len(data) else 0
                ax.set_title(f"{_label(config, p)}: K = {k}", fontsize=9)
                if in_tpt.any():
                    ax.legend(fontsize=7, loc="best")
            _colorbar(fig, ax, norm)
        if len(data) >= 3 and data["nc1"].nunique() > 1:
            from scipy.stats import spearmanr

            rho = spearmanr(data["nc1"], data["mean"]).statistic
            notes.append(
                f"{_label(config, p)}: Spearman rho(NC1, mean) = {rho:.2f} over "
                f"{len(data)} checkpoints, {int(in_tpt.sum())} in the terminal phase"
            )
    fig.tight_layout()
    caption = (
        "Figure 2. Linear identifiability vs variability collapse: for each checkpoint (colour: "
        "epoch) the mean (error bar: std) and the variance of the K leading canonical "
        "correlations between model 1's and model 2's test representations, against NC1 = "
        "Tr(Sigma_W Sigma_B^+)/K of model 1's train representation. Grey band: the NC1 range of "
        f"checkpoints whose linear-probe train error is below {100 * (1 - tpt):g} % (black "
        "rings), the paper's terminal phase. "
        + ("; ".join(notes) + ". " if notes else "")
        + "Paper: CIFAR-10/100, ResNet-50, epochs up to ~400. "
        + setting_sentence(config)
    )
    add_caption(fig, caption)
    return (
        fig,
        rows[
            rows["metric"].isin(["nc1", "cca_leading_mean", "cca_leading_var", "linear_accuracy"])
        ],
        caption,
    )


def fig3(table: pd.DataFrame, config: dict):
    """Over training: K-dim IB accuracy; ETF signatures in the K-dim IB space (solid) and
    in the full representation (dashed)."""
    set_style()
    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    pairs = sel.pairs(rows)
    nrow = max(len(pairs), 1)
    fig, axes = plt.subplots(nrow, 4, figsize=(15, 3.1 * nrow + 0.4), squeeze=False)
    finals = []
    for i, p in enumerate(pairs):
        run = p["run"]
        k = sel.ib_dims(rows, run, p["final_step"])
        ax = axes[i, 0]
        for representation, style, name in (
            (sel.IB, dict(color=SOLID, ls="-"), f"K-dim IB ({k:.0f}D)"),
            (sel.RANKED, dict(color="0.4", ls=":"), f"ranked ({p['d']}D)"),
            (sel.RAW, dict(color=DASHED, ls="--"), f"raw ({p['d']}D)"),
        ):
            s = sel.series(rows, run, "linear_accuracy", model=1, representation=representation)
            ax.plot(s["epoch"], 100 * s["value"], marker="o", ms=3, label=name, **style)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{_label(config, p)}: accuracy", fontsize=9)
        ax.legend(fontsize=7)
        for j, (metric, title, ylabel) in enumerate(
            (
                ("etf_norm_cv", "class-mean norms", "std/mean of norms"),
                ("etf_angle_std_deg", "pairwise angles", "std of angles (deg)"),
                ("etf_mean_cosine", "mean pairwise cosine", "mean cosine"),
            ),
            start=1,
        ):
            ax = axes[i, j]
            ib = sel.series(rows, run, metric, split="train", model=1, representation=sel.IB)
            full = sel.series(rows, run, metric, split="train", model=1, representation=sel.RAW)
            ax.plot(ib["epoch"], ib["value"], color=SOLID, marker="o", ms=3, label="K-dim IB")
            ax.plot(
                full["epoch"],
                full["value"],
                color=DASHED,
                ls="--",
                marker="o",
                ms=3,
                label=f"full ({p['d']}D)",
            )
            if metric == "etf_mean_cosine":
                kk = int(k) if not math.isnan(k) else 0
                ax.axhline(-1 / max(kk - 1, 1), color="k", lw=0.8, ls=":", label="-1/(K-1)")
            ax.set_title(f"{_label(config, p)}: {title}", fontsize=9)
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
            if len(ib) and len(full):
                finals.append(
                    f"{DATASET_NAMES.get(p['dataset'], p['dataset'])} {metric.removeprefix('etf_')}"
                    f" {ib['value'].iloc[-1]:.3g} (IB) vs {full['value'].iloc[-1]:.3g} (full)"
                )
        for ax in axes[i]:
            ax.set_xlabel("epoch")
    fig.tight_layout()
    caption = (
        "Figure 3. ETF signatures in the K-dim IB representation (solid) vs the full "
        "representation (dashed), over training. Column 1: linear test accuracy of model 1's "
        "K-dim IB, ranked and raw representations. Columns 2-4, model 1's train class means "
        "mu_k centred on their mean: std/mean of their norms, std of their pairwise angles, "
        "mean pairwise cosine (simplex ETF: -1/(K-1), dotted). K-dim IB: T = A z, z the "
        "rank-transformed representation, A the Gaussian IB of model 1 about model 2 (train "
        "split), alpha_i in the beta -> infinity limit. Last checkpoint: "
        + "; ".join(finals)
        + ". "
        "Paper: the IB and full-space angle spreads differ by 5-7 degrees. "
        + setting_sentence(config)
    )
    add_caption(fig, caption)
    used = rows[
        rows["metric"].isin(
            ["linear_accuracy", "etf_norm_cv", "etf_angle_std_deg", "etf_mean_cosine"]
        )
    ]
    return fig, used, caption


def fig4(table: pd.DataFrame, config: dict):
    """A: zero-shot accuracy vs IB dimensions; B: in-domain K-dim IB scalings; C: zero-shot
    K'-dim IB scalings (relative to their mean)."""
    set_style()
    zs = sel.pair_rows(table, sel.ZERO_SHOT, sel.TARGET)
    own = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    zero_shot = config["ib_supcon"].get("zero_shot") or {}
    notes = []
    # A and C show the zero-shot pair: switched off, they say so and why
    off = disabled_reason(config, STUDY, sel.ZERO_SHOT)
    if off:
        not_drawn_panel(axes[0], "A", off, width=40)
        not_drawn_panel(axes[2], "C", off, width=40)
    ax = axes[0]
    kprime, drawn = math.nan, False
    for p in sel.pairs(zs):
        drawn = True
        run, step = p["run"], p["final_step"]
        sweep = sel.series(zs, run, "linear_accuracy", model=1, representation=sel.IB)
        ax.plot(sweep["dims"], 100 * sweep["value"], marker="o", color=SOLID, label="IB (K' dims)")
        for representation, color, ls in ((sel.RAW, DASHED, "--"), (sel.RANKED, "0.4", ":")):
            v = sel.value(zs, run, step, "linear_accuracy", model=1, representation=representation)
            ax.axhline(100 * v, color=color, ls=ls, label=f"{representation} ({p['d']}D)")
        kprime = sel.value(zs, run, step, "kprime", representation=sel.IB)
        k = sel.num_classes(config, p["eval_dataset"])
        if k:
            ax.axvline(k, color="k", lw=0.8, ls=":", label=f"K = {k}")
        if not math.isnan(kprime):
            ax.axvline(kprime, color=SOLID, lw=1.2, ls="-.", label=f"K' = {kprime:.0f}")
        ax.set_xscale("log")
        ax.set_title(
            f"A: zero-shot {DATASET_NAMES.get(p['eval_dataset'], p['eval_dataset'])} "
            f"(for {zero_shot.get('target', {}).get('paper', '?')}) from "
            f"{DATASET_NAMES.get(p['dataset'], p['dataset'])} "
            f"(for {zero_shot.get('source', {}).get('paper', '?')})",
            fontsize=8,
        )
        notes.append(f"K' = {kprime:.0f}" if not math.isnan(kprime) else "no K' in the sweep")
    if not off and drawn:
        ax.set_xlabel("number of IB dimensions K'")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    elif not off:  # enabled, but no pair finished (e.g. a run diverged)
        notes.append(not_drawn_panel(ax, "A", "the table has no zero-shot pair rows", width=40))

    def scalings(ax, rows, pairs, title, dims_of):
        for p in pairs:
            step = p["final_step"]
            dims = dims_of(rows, p)
            if dims is None or math.isnan(dims):
                continue
            alpha = sel.components(rows, p["run"], step, "ib_alpha_relative", dims=dims)
            ax.plot(
                np.arange(1, len(alpha) + 1),
                alpha,
                marker="o",
                ms=4,
                label=f"{_label(config, p)}, {len(alpha)} dims",
            )
            inside = np.mean((alpha >= 0.9) & (alpha <= 1.1)) if len(alpha) else math.nan
            notes.append(
                f"{title.split(':')[0]} {p['dataset']}: {100 * inside:.0f} % of alpha_i "
                "in [0.9, 1.1]"
            )
        ax.axhspan(0.9, 1.1, color="0.88", zorder=0, label="0.9-1.1")
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_xlabel("IB dimension i (ascending lambda_i)")
        ax.set_ylabel("alpha_i / mean alpha")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)

    scalings(
        axes[1],
        own,
        sel.pairs(own),
        "B: in-domain K-dim IB",
        lambda rows, p: sel.ib_dims(rows, p["run"], p["final_step"]),
    )
    if not off:
        scalings(
            axes[2],
            zs,
            sel.pairs(zs),
            "C: zero-shot K'-dim IB",
            lambda rows, p: sel.value(
                rows, p["run"], p["final_step"], "kprime", representation=sel.IB
            ),
        )
    fig.tight_layout()
    tolerance = config["ib_supcon"]["analysis"].get("kprime_tolerance", 0.01)
    caption = (
        "Figure 4. Zero-shot transfer and IB feature scalings. "
        + (f"A and C are not drawn: {off}; their claims are not testable. " if off else "")
        + "A: linear test accuracy of the "
        "K'-dim Gaussian IB representation of the target images (IB of model 1 about model 2, "
        "fitted on the target's train split), raw and ranked for reference; K' = the fewest "
        f"dimensions of the sweep within {100 * tolerance:g} percentage points of the sweep's "
        "best "
        "(paper: K' ~ 70 for CIFAR-10 from ImageNet32). B, C: alpha_i / mean(alpha_i) of the "
        "IB projection, sqrt((1 - lambda_i) / lambda_i) (the beta -> infinity limit; v_i "
        "scaled to v_i' Sigma_x v_i = 1), last "
        "checkpoint (paper: mostly within 0.9-1.1, grey). "
        + "; ".join(notes)
        + ". "
        + setting_sentence(config)
    )
    add_caption(fig, caption)
    keep = ["linear_accuracy", "kprime", "ib_alpha_relative"]
    return fig, pd.concat([zs[zs["metric"].isin(keep)], own[own["metric"] == keep[2]]]), caption
