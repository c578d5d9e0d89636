"""class_encoding (Massion, Makhlouf & Massart) figures, from results/tables/class_encoding.parquet.

fig1        Figure 1 of the paper: centring an orthogonal frame gives a simplex ETF (3-D).
transition  Theorem III.1: ||b*|| and the SSETF beta of the optimal class means vs lambda_b.
encodings   the encoding table (NC1, NC2, NC3, NC3' numerics vs theory) as a rendered table;
            ``write_table`` writes the same table as CSV and Markdown.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncrepro import ufm
from ncrepro.figures import add_caption, compact_number, set_style
from ncrepro.studies import TableOutput
from ncrepro.studies.class_encoding.solve import (
    TABLE_METRICS,
    encoding_cell_sources,
    encoding_table,
)

OF_COLOR = "#1f77b4"  # blue, as in the paper's Figure 1
ETF_COLOR = "#2ca02c"  # green
MEAN_COLOR = "#111111"
THEORY_COLOR = "#444444"
POINT_COLOR = "#d62728"
RESIDUAL_TOL = 1e-6  # |numerics - theory| counted as agreement in the encoding table


def _preset(config: dict) -> str:
    return str(config.get("preset", "?"))


# ---------------------------------------------------------------------------- fig1


def _arrow(ax, vec, color, *, origin=(0.0, 0.0, 0.0), lw=2.0, ls="-", alpha=1.0):
    ax.quiver(
        *origin,
        *vec,
        color=color,
        lw=lw,
        linestyle=ls,
        alpha=alpha,
        arrow_length_ratio=0.12,
    )


def _setup_3d(ax, title: str) -> None:
    lim = (-0.75, 1.05)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_zlim(*lim)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=28, azim=-120)
    ax.set_xlabel("$x_1$", labelpad=-8)
    ax.set_ylabel("$x_2$", labelpad=-8)
    ax.set_zlabel("$x_3$", labelpad=-8)
    ticks = [-0.5, 0, 0.5, 1]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_zticks(ticks)
    ax.tick_params(labelsize=6, pad=-3)
    ax.set_title(title, fontsize=9, pad=0)


def fig_frames(table: pd.DataFrame, config: dict):
    """fig1: an orthogonal frame (d = K = 3, P = I, alpha = 1) and its centring into a simplex
    ETF; right panel: the shifted simplex ETFs I - beta J between the two (Definition III.1).

    Needs no solver output: the rows used are the plotted vectors themselves."""
    set_style()
    K = 3
    M = np.eye(K)  # OF: alpha P with alpha = 1, P = I
    g = M.mean(axis=1)  # global mean (1/3) 1
    Mc = ufm.centered_means(M)  # = M (I - J): simplex ETF
    norms = np.linalg.norm(Mc, axis=0)
    cos = (Mc.T @ Mc) / np.outer(norms, norms)
    angle = float(np.degrees(np.arccos(cos[0, 1])))
    _, beta_c, res_c = ufm.fit_ssetf(Mc, return_residual=True)

    fig = plt.figure(figsize=(9.0, 4.4))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    _setup_3d(ax, "(a) centring an OF gives a simplex ETF")
    for k in range(K):
        _arrow(ax, M[:, k], OF_COLOR)
        _arrow(ax, Mc[:, k], ETF_COLOR)
        # the centred vector is the segment from the global mean to the OF vector
        ax.plot(*np.stack([g, M[:, k]], axis=1), color=ETF_COLOR, lw=0.9, ls=":")
        ax.text(*(1.08 * M[:, k]), f"$e_{k + 1}$", color=OF_COLOR, fontsize=9)
        ha, dz = (("left", -0.1), ("right", -0.1), ("right", 0.1))[k]
        ax.text(*(Mc[:, k] + [0, 0, dz]), f"  $e_{k + 1}-g$  ", color=ETF_COLOR, fontsize=8, ha=ha)
    _arrow(ax, g, MEAN_COLOR, lw=1.2, ls="--")
    ax.scatter(*g, color=MEAN_COLOR, s=25, depthshade=False)
    ax.text(*(g + np.array([0.05, 0.05, 0.08])), r"$g=\frac{1}{3}\mathbf{1}$", fontsize=8)
    tri = np.concatenate([Mc, Mc[:, :1]], axis=1)
    ax.plot(*tri, color=ETF_COLOR, lw=0.6, alpha=0.5)
    handles = [
        plt.Line2D([], [], color=OF_COLOR, lw=2, label=r"OF $M=I_3$"),
        plt.Line2D(
            [], [], color=MEAN_COLOR, lw=1.2, ls="--", marker="o", ms=4, label="global mean $g$"
        ),
        plt.Line2D([], [], color=ETF_COLOR, lw=2, label=r"centred $M_c=M(I-J)$: simplex ETF"),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=True)

    ax2 = fig.add_subplot(1, 2, 2, projection="3d")
    _setup_3d(ax2, r"(b) SSETFs $I-\beta J$ interpolate OF and ETF")
    betas = [0.0, 0.5, 1.0]
    cmap = plt.get_cmap("viridis")
    shade = {0.0: OF_COLOR, 0.5: cmap(0.55), 1.0: ETF_COLOR}
    rows = []
    for beta in betas:
        S = ufm.ssetf_matrix(1.0, beta, K)
        for k in range(K):
            _arrow(ax2, S[:, k], shade[beta], lw=1.8)
        tri = np.concatenate([S, S[:, :1]], axis=1)
        ax2.plot(*tri, color=shade[beta], lw=0.8, alpha=0.8)
        for k in range(K):
            rows.append(_vector_row("ssetf", k, S[:, k], beta))
    for beta in betas:
        ax2.plot([], [], color=shade[beta], lw=2, label=rf"$\beta={beta:g}$")
    ax2.plot(
        *np.stack([-0.6 * np.ones(3) / np.sqrt(3), np.ones(3) / np.sqrt(3)], axis=1),
        color=MEAN_COLOR,
        lw=0.8,
        ls="--",
        label=r"axis $\mathbf{1}$",
    )
    ax2.legend(loc="upper right", fontsize=7, frameon=True, title="shift", title_fontsize=7)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.02, top=0.93, wspace=0.02)

    for k in range(K):
        rows.append(_vector_row("orthogonal_frame", k, M[:, k], 0.0))
        rows.append(_vector_row("centred_simplex_etf", k, Mc[:, k], 1.0))
    rows.append(_vector_row("global_mean", -1, g, float("nan")))
    caption = (
        "Figure 1. Centring an orthogonal frame (blue; the standard basis of R^3, i.e. "
        "Definition II.2 with d = K = 3, P = I_3, alpha = 1) about its global mean "
        "g = (1/3)1 (black) gives a simplex ETF (green, Definition II.1): the centred vectors "
        f"e_k - g have equal norms {norms[0]:.4f} (= sqrt(2/3)) and pairwise angles "
        f"{angle:.2f} degrees (cos = -1/(K-1)); the SSETF fit of the centred vectors gives "
        f"beta = {beta_c:.3g} with residual {res_c:.1e}. Dotted: e_k - g drawn from g. "
        "(b) The shifted simplex ETFs I - beta 11^T/K (Definition III.1) interpolate between "
        "the OF (beta = 0) and the simplex ETF (beta = 1) by sliding along 1; Theorem III.1's "
        "bias regularisation lambda_b moves the optimal class means along this path "
        "(see the transition figure). Illustration, no solver output."
    )
    add_caption(fig, caption)
    return fig, pd.DataFrame.from_records(rows), caption


def _vector_row(frame: str, k: int, vec, beta: float) -> dict:
    return {
        "experiment": "fig1",
        "metric": frame,
        "k": int(k),
        "beta": float(beta),
        "x": float(vec[0]),
        "y": float(vec[1]),
        "z": float(vec[2]),
        "value": float(np.linalg.norm(vec)),
    }


# ---------------------------------------------------------------------------- transition


def _transition_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["experiment"] == "transition"]


def theory_curves(K: int, n: int, lw: float, lh: float, lambda_b: np.ndarray) -> pd.DataFrame:
    """Dense closed-form curves (Theorem III.1): ||b*||, beta of Hbar*, alpha of Hbar*."""
    recs = []
    for lb in lambda_b:
        alpha, beta = ufm.theory_ssetf(K, n, lw, lh, float(lb))
        b = ufm.theory_bias(K, n, lw, lh, float(lb))
        recs.append(
            {
                "lambda_b": lb,
                "bias_norm": float(np.linalg.norm(b)),
                "ssetf_beta": beta,
                "ssetf_alpha": alpha,
            }
        )
    return pd.DataFrame.from_records(recs)


def fig_transition(table: pd.DataFrame, config: dict):
    """transition: ||b*|| and the fitted SSETF beta of Hbar* vs lambda_b (Theorem III.1)."""
    set_style()
    rows = _transition_rows(table)
    if rows.empty:
        raise ValueError("class_encoding table has no 'transition' rows")
    first = rows.iloc[0]
    K, n, d = int(first["K"]), int(first["n"]), int(first["d"])
    lw, lh = float(first["lambda_w"]), float(first["lambda_h"])
    c = ufm.c_constant(K, n, lw, lh)
    crit = ufm.critical_lambda_b(K, n, lw, lh)
    lbs = np.sort(rows["lambda_b"].unique())
    lbs = lbs[lbs > 0]
    lo, hi = lbs.min() / 1.6, lbs.max() * 1.6
    dense = np.unique(np.concatenate([np.geomspace(lo, hi, 600), [crit]]))
    curves = theory_curves(K, n, lw, lh, dense)

    used = rows[rows["metric"].isin(["bias_norm", "ssetf_beta"])]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    panels = [
        ("bias_norm", r"$\|b^*\|$", "(a) optimal bias, eq. (5)", "log"),
        (
            "ssetf_beta",
            r"$\beta$ of $\bar H^*$ (SSETF fit)",
            "(b) shift of the class means",
            "linear",
        ),
    ]
    for ax, (metric, ylabel, title, yscale) in zip(axes, panels, strict=True):
        pts = used[used["metric"] == metric].sort_values("lambda_b")
        ax.plot(
            curves["lambda_b"],
            curves[metric],
            color=THEORY_COLOR,
            lw=1.6,
            zorder=1,
            label="theory (closed form)",
        )
        ax.scatter(
            pts["lambda_b"],
            pts["value"],
            s=22,
            color=POINT_COLOR,
            zorder=3,
            edgecolor="white",
            linewidth=0.5,
            label="global UFM solver",
        )
        ax.axvline(crit, color="#7f7f7f", ls="--", lw=1.0, zorder=0)
        ax.set_xscale("log")
        ax.set_yscale(yscale)
        ax.set_xlabel(r"bias regularisation $\lambda_b$")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_xlim(lo, hi)
    # the two branches of eq. (5), continued past the switch
    ax = axes[0]
    ax.plot(
        dense,
        1 / (1 + dense) / np.sqrt(K),
        color=THEORY_COLOR,
        lw=0.8,
        ls=":",
        zorder=0,
        label=r"branches $\frac{1}{(1+\lambda_b)\sqrt{K}}$, "
        r"$\frac{c}{\lambda_b\sqrt{K}}$",
    )
    ax.plot(dense, c / dense / np.sqrt(K), color=THEORY_COLOR, lw=0.8, ls=":", zorder=0)
    bmin = float(curves["bias_norm"].min())
    ax.set_ylim(bmin / 2, 1.5 / np.sqrt(K))
    ax.legend(loc="upper right", fontsize=7, frameon=True)
    axes[1].set_ylim(-0.05, 1.1)
    axes[1].axhline(1.0, color=ETF_COLOR, lw=0.7, ls=":")
    axes[1].axhline(0.0, color=OF_COLOR, lw=0.7, ls=":")
    axes[1].text(
        hi / 1.15, 1.02, "simplex ETF", ha="right", va="bottom", fontsize=7, color=ETF_COLOR
    )
    axes[1].text(
        hi / 1.15, 0.02, "orthogonal frame", ha="right", va="bottom", fontsize=7, color=OF_COLOR
    )
    axes[1].legend(loc="center right", fontsize=7, frameon=True)
    for ax in axes:
        ymin, ymax = ax.get_ylim()
        ypos = math.sqrt(ymin * ymax) if ax.get_yscale() == "log" else ymin + 0.4 * (ymax - ymin)
        ax.text(
            crit / 1.15,
            ypos,
            rf"$\lambda_b=\frac{{c}}{{1-c}}={crit:.4g}$",
            rotation=90,
            va="center",
            ha="right",
            fontsize=7.5,
            color="#555555",
        )
    fig.tight_layout()

    has = rows["theory"].notna()
    res = rows.loc[has, "residual"].abs()
    by_metric = rows[has].assign(a=res).groupby("metric")["a"].max()
    gd = rows[rows["metric"] == "gd_objective_gap"]
    gd_text = (
        f"Gradient descent from a random start reaches the same optimum at lambda_b = "
        f"{', '.join(f'{v:.3g}' for v in gd['lambda_b'])} (max relative objective gap "
        f"{compact_number(gd['value'].abs().max())}). "
        if len(gd)
        else ""
    )
    caption = (
        "Transition (Theorem III.1). One-hot labels, balanced classes: "
        f"K = {K}, n = {n} per class, d = {d}, lambda_W = {lw:g}, lambda_H = {lh:g}, so "
        f"c = K sqrt(n lambda_W lambda_H) = {c:.4g} and the critical bias regularisation is "
        f"lambda_b = c/(1-c) = {crit:.4g} (dashed; solved exactly there). Points: global "
        f"minimisers of the UFM ({len(lbs)} values of lambda_b); lines: closed forms. "
        "(a) ||b*|| = min(1/(1+lambda_b), c/lambda_b)/sqrt(K) (eq. (5)). "
        "(b) beta of the shifted simplex ETF fitted to the optimal class means: beta = 1 "
        "(simplex ETF) up to the critical value, then 1 - sqrt(1 - c/(lambda_b (1-c))) "
        "(from the Gram matrix of eq. (4)), tending to 0 (orthogonal frame). "
        f"Max |numerics - theory| over all {int(has.sum())} transition rows with a closed "
        f"form: {compact_number(res.max())} "
        f"(||b*||: {compact_number(by_metric.get('bias_norm', np.nan))}; "
        f"beta: {compact_number(by_metric.get('ssetf_beta', np.nan))}, limited by the "
        "square-root conditioning of the fit at beta = 1). "
        f"{gd_text}Preset '{_preset(config)}'."
    )
    add_caption(fig, caption)
    return fig, used, caption


# ---------------------------------------------------------------------------- encodings

# metrics shown in the rendered table (all of TABLE_METRICS go to CSV / Markdown)
SHOWN = [
    ("nc1", "NC1"),
    ("nc2_equinorm", "NC2\nequinorm"),
    ("nc2_equiangularity", "NC2\nequiangular."),
    ("ssetf_fit_residual", "H̄ SSETF\nfit resid."),
    ("nc3", "NC3\n(centred)"),
    ("nc3_uncentered", "NC3\n(H̄, eq. 3)"),
    ("nc3_prime", "NC3′"),
    ("kappa", "κ"),
    ("nc3_prime_weighted", "NC3′ with\ndiag(n_k)"),
    ("encoding_ssetf_beta", "β of the\nencoding Ȳ"),
]
_AGREE, _NO_THEORY, _DISAGREE = "#d9f0d3", "#f0f0f0", "#f4a582"


def _cell(value: float, theory: float) -> tuple[str, str]:
    text = f"{compact_number(value)}\n[{compact_number(theory)}]"
    if not np.isfinite(theory):
        return text, _NO_THEORY
    ok = np.isfinite(value) and abs(value - theory) <= RESIDUAL_TOL * max(1.0, abs(theory))
    return text, _AGREE if ok else _DISAGREE


def fig_encodings(table: pd.DataFrame, config: dict):
    """encodings: the encoding table rendered with matplotlib (numerics [theory])."""
    set_style()
    enc = encoding_table(table)
    if enc.empty:
        raise ValueError("class_encoding table has no 'encodings' rows")
    header = ["Encoding", "Class sizes", *[label for _, label in SHOWN]]
    cells, colors = [], []
    for _, r in enc.iterrows():
        row = [r["encoding"], r["class_sizes"].replace(",", ", ")]
        shade = ["white", "white"]
        for metric, _ in SHOWN:
            text, color = _cell(r[f"{metric}_value"], r[f"{metric}_theory"])
            row.append(text)
            shade.append(color)
        cells.append(row)
        colors.append(shade)

    n_rows = len(cells)
    fig = plt.figure(figsize=(12.5, 0.52 * n_rows + 1.3))
    ax = fig.add_axes((0.0, 0.03, 1.0, 0.97))
    ax.axis("off")
    widths = [0.17, 0.085] + [(1 - 0.255) / len(SHOWN)] * len(SHOWN)
    tab = ax.table(
        cellText=cells,
        colLabels=header,
        cellColours=colors,
        colWidths=widths,
        cellLoc="center",
        loc="upper center",
        bbox=(0.0, 0.0, 1.0, 1.0),
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(7.5)
    for (i, j), cell in tab.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        if i == 0:
            cell.set_facecolor("#dddddd")
            cell.set_text_props(weight="bold", fontsize=7.5)
        elif j == 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.03
    lb = float(enc["lambda_b"].iloc[0])
    first = table[table["experiment"] == "encodings"].iloc[0]
    K, d = int(first["K"]), int(first["d"])
    lw, lh = float(first["lambda_w"]), float(first["lambda_h"])
    bal = enc[enc["balanced"]]
    n = int(bal["class_sizes"].iloc[0].split(",")[0]) if len(bal) else None
    crit = ufm.critical_lambda_b(K, n, lw, lh) if n else float("nan")
    rows = table[
        (table["experiment"] == "encodings") & table["metric"].isin([m for m, _ in TABLE_METRICS])
    ]
    has = rows["theory"].notna()
    ls = enc[enc["encoding_key"] == "label_smoothing"].drop_duplicates("delta")
    ls_text = "; ".join(
        f"delta = {r.delta:g}: fitted {r.encoding_ssetf_beta_value:.4g}, -delta/(1-delta) = "
        f"{r.encoding_ssetf_beta_theory:.4g}, printed +delta/(1-delta) = "
        f"{r.encoding_beta_paper:.4g}"
        for r in ls.itertuples()
    )
    caption = (
        "Encoding table (Section IV). Global UFM minimisers for each encoding and class sizes, "
        f"K = {K}, d = {d}, lambda_W = {lw:g}, lambda_H = {lh:g}, lambda_b = {lb:g}"
        + (f" (above the one-hot critical value c/(1-c) = {crit:.4g}, n = {n})" if n else "")
        + ". Each cell: numerics [theory]; green: agrees to 1e-6, orange: disagrees, grey: "
        "no theorem applies. NC1 (Papyan) = 0 for every encoding and class sizes (Theorem "
        "IV.1). NC2 (centred means equinorm / equiangular, SSETF fit of H̄*) holds when H̄* is "
        "an SSETF (Corollary IV.2): one-hot, label smoothing and rotated one-hot, balanced; "
        "it fails for the random encoding and for imbalanced classes. NC3 against centred "
        "means is not 0 even for one-hot beyond the critical lambda_b: Theorem III.1's "
        "self-duality W*^T = kappa H̄* is with the uncentred means (column 'eq. 3'); rotating "
        "the labels breaks it (Proposition IV.3, theory from Q). NC3' = 0 with kappa = "
        "sqrt(n lambda_H/lambda_W) for every balanced encoding (Theorem IV.4); for unequal "
        "class sizes the identity lambda_W W^T W = lambda_H H̄ diag(n_k) H̄^T from its proof "
        "still holds. Label smoothing is an SSETF with beta = -delta/(1-delta), "
        f"not the printed +delta/(1-delta) ({ls_text}). "
        f"Max |numerics - theory| over the {int(has.sum())} table entries with a theory: "
        f"{compact_number(rows.loc[has, 'residual'].abs().max())}. Preset '{_preset(config)}'."
    )
    add_caption(fig, caption)
    return fig, rows, caption


def encodings_table(table: pd.DataFrame, config: dict) -> TableOutput:
    """The encoding table (CSV at full precision; Markdown with value and theory columns)."""
    wide = encoding_table(table)
    md_cols = ["encoding", "class_sizes", "lambda_b"]
    for metric, _ in TABLE_METRICS:
        md_cols += [f"{metric}_value", f"{metric}_theory"]
    md_cols.append("encoding_beta_paper")
    return TableOutput(
        frame=wide,
        title="class_encoding: encoding table",
        note=(
            "`<metric>_value`: global UFM minimiser; `<metric>_theory`: closed form "
            "(— where no theorem applies). `encoding_beta_paper`: the beta printed in the "
            "paper for label smoothing (+delta/(1-delta)); the definition gives "
            "-delta/(1-delta)."
        ),
        markdown_columns=md_cols,
        rows=table[table["experiment"] == "encodings"],
        cells=encoding_cell_sources(table, wide),
    )
