"""The lpc metric set: what the metrics stage computes at every checkpoint of every lpc run
(from the feature files: penultimate features z, labels, logits), with the shared
library's functions.

Per split (train and test, un-augmented images):
  accuracy, loss                         network logits (bias-free classifier)
  nc1, nc1_per_dim                       NC1 = (1/K) Tr(Σ_W Σ_B⁺) and NC1 / d (Appendix E:
                                         "within-class variation", comparable across d)
  nc2_equinorm, nc2_equiangularity, nc2_max_angle   of the centred class means
  separation_ratio                       eq. (8), averaged over samples
  norm_cv, norm_cv_class_means           CV of ‖z_i‖ (the code's), of ‖μ_c‖
  abs_cv                                 CV of |z| over all entries (Table 4)
  entropy                                Kozachenko-Leonenko, per dimension (splits in
                                         `entropy_splits`)
  binarity_{score,peak_distance,std}_{mean,min,std}   per-dimension 2-GMM summaries
                                         (splits in `binarity_splits`, d <= binarity_max_dim)

Conventions (recorded in every row): grouping of samples into classes ("true_labels",
ours; "predicted_labels", the LPC code's for NC1/NC2 — its separation ratio groups by true
labels) for every class-mean metric here; sigma_w (pooled /
class_averaged) and global_mean (class_means / samples) for NC1 and NC2; train features
are of the clean (un-augmented) train images — the LPC code evaluates the augmented
ones; the features stage extracts clean images only.
"""

from __future__ import annotations

import numpy as np

from ncrepro.metrics.binarity import abs_cv, binarity
from ncrepro.metrics.classification import accuracy, cross_entropy
from ncrepro.metrics.collapse import nc1, nc2
from ncrepro.metrics.compute import SplitData
from ncrepro.metrics.conventions import check_choice
from ncrepro.metrics.entropy import kozachenko_leonenko
from ncrepro.metrics.separation import class_separation_ratio, norm_cv
from ncrepro.metrics.stats import ClassStats

SPLITS = ("train", "test")
BINARITY_KEYS = ("score", "peak_distance", "std")


def compute(
    train,
    test,
    num_classes: int,
    *,
    seed: int,
    grouping: str = "true_labels",
    sigma_w: str = "pooled",
    global_mean: str = "class_means",
    entropy_k: int = 20,
    entropy_splits=("test",),
    binarity_splits=("train",),
    binarity_max_dim: int = 256,
) -> list[dict]:
    """Rows {split, metric, value, **conventions} of one checkpoint (see the module)."""
    check_choice("grouping", grouping)
    check_choice("sigma_w", sigma_w)
    check_choice("global_mean", global_mean)
    rows: list[dict] = []
    base = {"grouping": grouping, "train_images": "clean"}

    def add(split, metric, value, conventions=None):
        rows.append(
            {"split": split, "metric": metric, "value": float(value), **base, **(conventions or {})}
        )

    for split, raw in (("train", train), ("test", test)):
        data = SplitData.coerce(raw)
        z = np.asarray(data.features)
        labels = np.asarray(data.labels)
        logits = data.network_logits()
        if logits is not None:
            add(split, "accuracy", accuracy(logits, labels), accuracy.conventions())
            add(split, "loss", cross_entropy(logits, labels), cross_entropy.conventions())
        if not np.isfinite(z).all():  # a diverged checkpoint: no geometry to measure
            continue
        groups = labels if grouping == "true_labels" else np.argmax(logits, axis=1)
        scatter = "per_class" if sigma_w == "class_averaged" else "pooled"
        stats = ClassStats.from_features(z, groups, num_classes, scatter=scatter)
        if grouping == "predicted_labels":
            stats = stats.present_only()  # a class nobody is predicted as has no mean
        nc1_kw = {"sigma_w": sigma_w, "global_mean": global_mean}
        value = nc1(stats, **nc1_kw)
        add(split, "nc1", value, nc1.conventions(**nc1_kw))
        add(
            split,
            "nc1_per_dim",
            value / z.shape[1],
            {**nc1.conventions(**nc1_kw), "dim": z.shape[1]},
        )
        mu_g = stats.global_mean(global_mean)
        for key, v in nc2(stats.means, mu_g).items():
            add(split, f"nc2_{key}", v, {"global_mean": global_mean, **nc2.conventions()})
        add(
            split,
            "separation_ratio",
            class_separation_ratio(z, groups),
            class_separation_ratio.conventions(),
        )
        add(split, "norm_cv", norm_cv(z), norm_cv.conventions())
        add(
            split,
            "norm_cv_class_means",
            norm_cv(z, groups, over="class_means"),
            norm_cv.conventions(over="class_means"),
        )
        add(split, "abs_cv", abs_cv(z), abs_cv.conventions())
        if split in entropy_splits:
            kl = {"k": entropy_k}
            add(
                split,
                "entropy",
                kozachenko_leonenko(z, **kl),
                kozachenko_leonenko.conventions(**kl),
            )
        if split in binarity_splits and z.shape[1] <= binarity_max_dim:
            out = binarity(z, seed=seed)
            conventions = binarity.conventions(seed=seed)
            for key in BINARITY_KEYS:
                for stat in ("mean", "min", "std"):
                    add(split, f"binarity_{key}_{stat}", out[f"{key}_{stat}"], conventions)
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in keys} for row in rows]
