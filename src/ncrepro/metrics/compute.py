"""All metrics of one checkpoint as rows {split, metric, value, **conventions}."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .classification import accuracy, cross_entropy
from .collapse import (
    cdnv,
    nc1,
    nc2,
    nc2_weights,
    nc3,
    nc4,
    variance_ratio_from_stats,
    weak_test_variance,
)
from .conventions import check_choice
from .stats import ClassStats, MeanSpan


@dataclass
class SplitData:
    """Features of one split and, optionally, the network's outputs and classifier.

    features N×d; labels (N,) int; logits N×K (the network's own, bias included);
    W K×d and b (K,) the last linear layer (logits = h Wᵀ + b when logits are absent).
    """

    features: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None = None
    W: np.ndarray | None = None
    b: np.ndarray | None = None

    @classmethod
    def coerce(cls, data) -> SplitData:
        """From a SplitData or a mapping with keys features, labels and optionally logits,
        W / classifier_weight, b / classifier_bias (the feature-file names); other keys are
        ignored."""
        if isinstance(data, SplitData):
            return data
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a mapping or SplitData, got {type(data).__name__}")

        def first(*names):
            return next((data[n] for n in names if data.get(n) is not None), None)

        return cls(
            features=data["features"],
            labels=data["labels"],
            logits=data.get("logits"),
            W=first("W", "classifier_weight"),
            b=first("b", "classifier_bias"),
        )

    def network_logits(self) -> np.ndarray | None:
        if self.logits is not None:
            return np.asarray(self.logits)
        if self.W is not None:
            z = np.asarray(self.features, np.float64) @ np.asarray(self.W, np.float64).T
            return z if self.b is None else z + np.asarray(self.b, np.float64)
        return None


def compute_all(
    train,
    test,
    num_classes: int,
    *,
    seed: int,
    kmeans_n_init: int = 4,
    sigma_w: str = "pooled",
    global_mean: str = "class_means",
    grouping: str = "true_labels",
    only_present: bool = False,
    centers: Mapping[str, np.ndarray] | None = None,
    means_from: str | None = None,
) -> list[dict]:
    """Metric rows of one checkpoint: a list of {split, metric, value, **conventions}.

    train / test: `SplitData` or mappings (see `SplitData.coerce`).
    Rows for "train": train_variance, nc1, nc2_{equinorm,equiangularity,max_angle},
    nc2_w_* and nc3 (if W), nc4 (if logits or W), cdnv, accuracy and loss (if logits or W).
    Rows for "test": strong_test_variance, weak_test_variance, nc1, cdnv, accuracy, loss.

    Conventions (defaults first): seed = k-means random_state (required); kmeans_n_init=4;
    sigma_w "pooled" | "class_averaged" (NC1); global_mean "class_means" | "samples"
    (NC1, NC2, NC3; the variance ratios always use the mean of class means, as in Hui et
    al.); grouping "true_labels" | "predicted_labels" (argmax of the network's logits, the
    LPC code's choice) for every class-mean metric; only_present=False (True: drop
    classes without samples instead of raising); centers: optional {"train": K×d,
    "test": K×d} external class means for the variance ratios (e.g. the final
    checkpoint's, the paper's literal reading), labelled by ``means_from``.
    Each row carries exactly the conventions that apply to its metric; every row has the
    same keys (None where a convention does not apply), so the rows form a table.
    """
    centers = dict(centers or {})
    rows: list[dict] = []
    for split, raw in (("train", train), ("test", test)):
        rows += split_rows(
            split,
            raw,
            num_classes,
            seed=seed,
            kmeans_n_init=kmeans_n_init,
            sigma_w=sigma_w,
            global_mean=global_mean,
            grouping=grouping,
            only_present=only_present,
            centers=centers.get(split),
            means_from=means_from,
        )
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in keys} for row in rows]


def split_rows(
    split: str,
    data,
    num_classes: int,
    *,
    seed: int | None = None,
    kmeans_n_init: int = 4,
    sigma_w: str = "pooled",
    global_mean: str = "class_means",
    grouping: str = "true_labels",
    only_present: bool = False,
    centers: np.ndarray | None = None,
    means_from: str | None = None,
) -> list[dict]:
    """The rows of `compute_all` for one split ("train" or "test"; see there), all from
    one `ClassStats`; centers: this split's external K×d centres or None.  seed (k-means)
    is needed for "test" only.  Rows may lack keys that other rows have."""
    check_choice("sigma_w", sigma_w)
    check_choice("global_mean", global_mean)
    check_choice("grouping", grouping)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not one of ('train', 'test')")
    if split == "test" and seed is None:
        raise ValueError("the test split's weak_test_variance needs seed= (k-means)")
    rows: list[dict] = []

    def add(metric, value, conventions):
        rows.append({"split": split, "metric": metric, "value": float(value), **conventions})

    data = SplitData.coerce(data)
    h, labels = data.features, np.asarray(data.labels)
    logits = data.network_logits()
    if grouping == "predicted_labels":
        if logits is None:
            raise ValueError('grouping="predicted_labels" needs logits or W')
        groups = np.argmax(logits, axis=1)
    else:
        groups = labels
    # Pooled NC1 and NC4 from one pass in the span of the class means (`MeanSpan`)
    # where that is cheaper than the d×d scatter; the same numbers up to rounding.
    use_span = sigma_w == "pooled" and MeanSpan.pays_off(num_classes, np.shape(h)[1])
    scatter = {"class_averaged": "per_class", "pooled": "none" if use_span else "pooled"}
    stats = ClassStats.from_features(h, groups, num_classes, scatter=scatter[sigma_w])
    if only_present:
        stats = stats.present_only()
    span = MeanSpan.from_features(stats, h, groups) if use_span and stats.present.all() else None
    grouped = {"grouping": grouping, "only_present": only_present}

    ratio_kw = {"centers": centers, "means_from": None if centers is None else means_from}
    ratio = variance_ratio_from_stats(stats, **ratio_kw)
    ratio_conv = variance_ratio_from_stats.conventions(**ratio_kw, only_present=only_present)
    add(
        "train_variance" if split == "train" else "strong_test_variance",
        ratio,
        {**grouped, **ratio_conv},
    )
    if split == "test":
        kmeans_kw = {"seed": seed, "n_init": kmeans_n_init}
        weak = weak_test_variance(h, stats.num_classes, **kmeans_kw)
        add("weak_test_variance", weak, weak_test_variance.conventions(**kmeans_kw))

    nc1_kw = {"sigma_w": sigma_w, "global_mean": global_mean}
    add("nc1", nc1(stats, **nc1_kw, span=span), {**grouped, **nc1.conventions(**nc1_kw)})
    if split == "train":
        mu_g = stats.global_mean(global_mean)
        means_conv = {**grouped, "global_mean": global_mean}
        for key, value in nc2(stats.means, mu_g).items():
            add(f"nc2_{key}", value, {**means_conv, **nc2.conventions()})
        if data.W is not None:
            weight = np.asarray(data.W)[stats.classes]
            for key, value in nc2_weights(weight).items():
                add(f"nc2_w_{key}", value, nc2_weights.conventions())
            add("nc3", nc3(weight, stats.means, mu_g), means_conv)
        if logits is not None:
            nearest = None if span is None else span.nearest
            value = nc4(h, logits, stats.means, classes=stats.classes, nearest=nearest)
            add("nc4", value, {**grouped, **nc4.conventions()})
    add("cdnv", cdnv(stats), {**grouped, **cdnv.conventions()})
    if logits is not None:
        add("accuracy", accuracy(logits, labels), accuracy.conventions())
        add("loss", cross_entropy(logits, labels), cross_entropy.conventions())
    return rows
