"""Figure rendering helpers shared by every study: style, saving, provenance."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ncrepro.provenance import atomic_path, write_provenance  # noqa: E402, F401

PALETTE = {
    "train_variance": "#6a3d9a",  # purple, as in the paper
    "strong_test_variance": "#111111",  # black
    "weak_test_variance": "#e08214",
}
LABELS = {
    "train_variance": "TrainVariance",
    "strong_test_variance": "StrongTestVariance",
    "weak_test_variance": "WeakTestVariance",
}


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": 10})


def add_caption(fig, caption: str) -> None:
    """Caption below the axes, wrapped to the figure's width (saved with bbox 'tight')."""
    import textwrap

    width_chars = max(50, int(fig.get_size_inches()[0] * 17))
    text = "\n".join(textwrap.wrap(caption, width_chars))
    fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=7.5)


def plain_log_ticks(ax) -> None:
    """Log axes labelled 10, 100, 0.5 ... instead of 10^1, 5x10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    formatter = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(formatter)
        axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def save_figure(fig, pdf_path: Path) -> Path:
    """Write PDF and PNG (same stem) atomically; return the PNG path."""
    pdf_path = Path(pdf_path)
    png_path = pdf_path.with_suffix(".png")
    for path in (pdf_path, png_path):
        tmp = atomic_path(path)
        fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight")
        os.replace(tmp, path)
    plt.close(fig)
    return png_path
