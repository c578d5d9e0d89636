"""The view of the prepared data a run trains and is scored on.

- "full": the prepared train/test splits as they are.
- "subset": a balanced random subset of N train images, a different subset per seed
  (fig4); the test split is the full one.
- "superclass": pretraining on superclasses of the classes in `groups`, on a pool of
  train/test images; fine-tuning on the original classes of the same groups, on a
  second pool that never overlaps the first (fig5). Pools are the first rows in file
  order ("first_n", the paper's MNIST protocol; sizes are totals) or per-class seeded
  slices ("per_class", the CIFAR-10 protocol; sizes are per class).

Every function returns (images, labels, index) with `index` the rows in the prepared
split, so a run records exactly which images it used.
"""

from __future__ import annotations

import numpy as np

from ncrepro.data import balanced_subset, disjoint_pools


def _selected(raw, rows: np.ndarray, labels: np.ndarray | None = None):
    labels = raw.labels[rows] if labels is None else labels
    return raw.images[rows], labels.astype(np.int64), rows.astype(np.int64)


def _grouped(raw, groups):
    """Rows whose class is in one of `groups`, their group (superclass) and class index
    among the grouped classes (0..len-1, in group order)."""
    classes = [c for group in groups for c in group]
    group_of = {c: g for g, group in enumerate(groups) for c in group}
    fine_of = {c: i for i, c in enumerate(classes)}
    rows = np.flatnonzero(np.isin(raw.labels, classes))
    coarse = np.array([group_of[int(c)] for c in raw.labels[rows]], dtype=np.int64)
    fine = np.array([fine_of[int(c)] for c in raw.labels[rows]], dtype=np.int64)
    return rows, coarse, fine


def _pools(view: dict, split: str, raw):
    """(pretrain rows, finetune rows) of the grouped classes in `split`."""
    rows, coarse, fine = _grouped(raw, view["groups"])
    sizes = view["pools"][split]  # [pretrain, finetune]
    mode = view["pools"].get("mode", "per_class")
    if mode == "first_n":
        chosen = disjoint_pools(fine, sizes, seed=None, mode="first_n")
    else:
        chosen = disjoint_pools(fine, sizes, seed=view["pools"].get("seed", 0))
    return [(rows[c], coarse[c], fine[c]) for c in chosen]


def num_classes(view: dict, base_classes: int, task: str = "pretrain") -> int:
    if view["kind"] != "superclass":
        return base_classes
    if task == "pretrain":
        return len(view["groups"])
    return sum(len(g) for g in view["groups"])


def apply_view(view: dict, split: str, raw, task: str = "pretrain"):
    """The images/labels of `split` that a run with this view uses for `task`
    ("pretrain": training and NC metrics; "finetune": the probe's own pool)."""
    kind = view["kind"]
    if kind == "full":
        return _selected(raw, np.arange(len(raw.labels)))
    if kind == "subset":
        if split == "test":
            return _selected(raw, np.arange(len(raw.labels)))
        return _selected(raw, balanced_subset(raw.labels, view["n_train"], view["seed"]))
    if kind == "superclass":
        (pre_rows, pre_coarse, _), (ft_rows, _, ft_fine) = _pools(view, split, raw)
        if task == "pretrain":
            return _selected(raw, pre_rows, pre_coarse)
        return _selected(raw, ft_rows, ft_fine)
    raise ValueError(f"unknown view kind {kind!r}")
