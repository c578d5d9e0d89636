"""Figure rendering helpers shared by every study: style, saving, provenance."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ncrepro.atomic import atomic_output  # noqa: E402

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

# Display names of datasets and architectures (captions, titles, tables).
DATASET_NAMES = {
    "digits": "digits",
    "synth10": "synth",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "svhn": "SVHN",
    "stl10": "STL-10",
}
ARCH_NAMES = {
    "resnet18": "ResNet18",
    "resnet50": "ResNet50",
    "densenet121": "DenseNet121",
    "densenet201": "DenseNet201",
    "vgg11_bn": "VGG11-BN",
    "vgg13_bn": "VGG13-BN",
    "vgg16_bn": "VGG16-BN",
    "mlp": "MLP",
}


def dataset_label(key: str, config: dict | None) -> str:
    """Display name of a dataset, with what it stands in for (quick preset)."""
    name = DATASET_NAMES.get(key, key)
    stands_in = (config or {}).get("datasets", {}).get(key, {}).get("stands_in_for")
    return f"{name} (for {stands_in})" if stands_in else name


def compact_number(x: float) -> str:
    """Compact number: 0, 3 significant digits, exponent for tiny/huge values."""
    if x is None or not np.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    return f"{x:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": 10})


def add_caption(fig, caption: str) -> None:
    """Caption below the axes, wrapped to the figure's width (saved with bbox 'tight')."""
    import textwrap

    width_chars = max(50, int(fig.get_size_inches()[0] * 17))
    text = "\n".join(textwrap.wrap(caption, width_chars))
    fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=7.5)


def not_drawn_panel(ax, what: str, reason: str, width: int = 60) -> str:
    """Write on `ax` (no ticks, no data) that `what` is not drawn and why (e.g. the part
    of the study it shows is switched off, `ncrepro.claims.disabled_reason`); return
    the sentence for the caption."""
    import textwrap

    sentence = f"{what} is not drawn: {reason}"
    text = "\n".join(textwrap.wrap(sentence, width))
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])
    return sentence


def disabled_figure(table, title: str, reason: str):
    """`(figure, no rows, caption)` of a figure whose experiments are switched off: says
    so (every figure stays a target, so the report and `ncrepro audit` find one file)."""
    fig, ax = plt.subplots(figsize=(5.6, 1.6))
    ax.axis("off")
    caption = f"{not_drawn_panel(ax, title, reason)}. Its claims are not testable in this run."
    add_caption(fig, caption)
    return fig, table.iloc[0:0], caption


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
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight")
    plt.close(fig)
    return png_path
