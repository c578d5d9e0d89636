"""The gc_transfer metric set: what the metrics stage computes from a checkpoint's feature
files (numpy only). GC and everything built on it need the model: the "geometric" probe
(`ncrepro.probes.geometric`)."""

from __future__ import annotations

import numpy as np

from ncrepro.metrics import ClassStats, SplitData, accuracy, cdnv, cross_entropy
from ncrepro.metrics.geometric import ncc_error


def compute(train, test, num_classes: int, *, seed: int) -> list[dict]:
    """Rows {split, metric, value, **conventions} of one checkpoint:

    - cdnv (train, test): Galanti et al.'s class-distance normalized variance, mean over
      unordered class pairs of (Var_i + Var_j)/(2‖μ_i − μ_j‖²), class means of the split;
    - ncc_test_error (test): error of the nearest-class-mean classifier on the test
      features with the train class means (the left side of Prop. 4.3, Figure 3);
    - accuracy and loss (train, test) of the network's own logits (Figure 5).
    `seed` is unused (nothing here is random)."""
    del seed
    rows = []
    data = {split: SplitData.coerce(raw) for split, raw in (("train", train), ("test", test))}
    train_stats = None
    for split, d in data.items():
        labels = np.asarray(d.labels)
        stats = ClassStats.from_features(d.features, labels, num_classes, scatter="none")
        if split == "train":
            train_stats = stats
        rows.append({"split": split, "metric": "cdnv", "value": cdnv(stats), **cdnv.conventions()})
        logits = d.network_logits()
        if logits is not None:
            rows.append({"split": split, "metric": "accuracy", "value": accuracy(logits, labels)})
            rows.append({"split": split, "metric": "loss", "value": cross_entropy(logits, labels)})
    test = data["test"]
    error = ncc_error(test.features, np.asarray(test.labels), train_stats.means)
    rows.append({"split": "test", "metric": "ncc_test_error", "value": error, "ncc_means": "train"})
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: row.get(k) for k in keys} for row in rows]
