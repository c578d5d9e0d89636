"""Views of a split as index arrays: balanced subsets, superclass relabelings, disjoint pools."""

from __future__ import annotations

import numpy as np


def balanced_subset(labels, n_total: int, seed: int) -> np.ndarray:
    """Sorted indices of n_total/K samples per class, a different subset per seed."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if n_total % len(classes):
        raise ValueError(f"subset size {n_total} is not divisible by {len(classes)} classes")
    per_class = n_total // len(classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        if len(rows) < per_class:
            raise ValueError(f"class {c} has {len(rows)} samples, {per_class} requested")
        chosen.append(rng.choice(rows, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def relabel(labels, groups: list[list[int]]):
    """(index, new_labels): class c in groups[g] gets label g; other classes are dropped."""
    labels = np.asarray(labels)
    mapping = np.full(labels.max() + 1, -1, dtype=np.int64)
    for g, members in enumerate(groups):
        if (mapping[members] >= 0).any():
            raise ValueError(f"a class appears in two superclasses: {groups}")
        mapping[members] = g
    new = mapping[labels]
    index = np.flatnonzero(new >= 0)
    return index, new[index]


def disjoint_pools(labels, sizes_per_class: list[int], seed: int | None, mode: str = "random"):
    """Index arrays of non-overlapping pools, pool p taking sizes_per_class[p] per class.

    mode "random": per class, consecutive slices of one seeded permutation.
    mode "first_n": consecutive slices of the rows in file order, sizes counted in
    total rows (the paper's MNIST protocol: first 1000, then another 500).
    """
    labels = np.asarray(labels)
    if mode == "first_n":
        bounds = np.cumsum([0, *sizes_per_class])
        if bounds[-1] > len(labels):
            raise ValueError(f"pools need {bounds[-1]} rows, the split has {len(labels)}")
        return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    rng = np.random.default_rng(seed)
    pools = [[] for _ in sizes_per_class]
    bounds = np.cumsum([0, *sizes_per_class])
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        if len(rows) < bounds[-1]:
            raise ValueError(f"class {c} has {len(rows)} samples, pools need {bounds[-1]}")
        for p in range(len(sizes_per_class)):
            pools[p].append(rows[bounds[p] : bounds[p + 1]])
    return [np.sort(np.concatenate(p)) for p in pools]
