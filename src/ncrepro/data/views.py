"""Views of the prepared data: what a run trains and is scored on.

Index-level building blocks (pure, seeded; each returns row numbers into `labels`):
balanced subsets, superclass relabelings and disjoint pools. On top of them, the view
kinds a run spec names in `spec["view"]` (`apply_view`, `num_classes`, `view_slug`):

- "full": the prepared train/test splits as they are.
- "subset": a balanced random subset of N train images, a different subset per seed
  (nc_limits fig4); the test split is the full one.
- "superclass": pretraining on superclasses of the classes in `groups`, on a pool of
  train/test images; fine-tuning on the original classes of the same groups, on a
  second pool that never overlaps the first (nc_limits fig5). Pools are the first rows
  in file order ("first_n"; sizes are totals) or per-class seeded slices ("per_class";
  sizes are per class).
- "class_split": a source/target split of the classes (few-shot transfer, CIFAR-FS style;
  Munn et al. 2024 fig4): task "pretrain" is the `source` classes, task "target" the
  disjoint `target` classes, each relabelled 0..len-1 in the listed order (both splits).

`apply_view` returns (images, labels, index) with `index` the rows in the prepared split,
so a run records exactly which images it used. A new kind adds a branch to `apply_view`,
`num_classes` and `view_slug`.
"""

from __future__ import annotations

import numpy as np


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))


def _labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError("labels must be a 1-d integer array")
    return labels


def balanced_subset(labels, n_total: int, seed: int) -> np.ndarray:
    """Sorted rows of a seeded subset with n_total / K samples of each of the K classes
    present; a different subset per seed, the same one for the same seed."""
    labels = _labels(labels)
    classes = np.unique(labels)
    if len(classes) == 0 or n_total % len(classes):
        raise ValueError(f"subset size {n_total} is not divisible by {len(classes)} classes")
    per_class = n_total // len(classes)
    rng = _rng(seed)
    chosen = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        if len(rows) < per_class:
            raise ValueError(f"class {c} has {len(rows)} samples, {per_class} requested")
        chosen.append(rng.permutation(rows)[:per_class])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def per_class_holdout(labels, test_fraction: float, seed: int) -> np.ndarray:
    """Sorted rows of a seeded, class-stratified hold-out: per class, round(n_c ·
    test_fraction) rows of a seeded permutation of that class's rows (the re-split of a
    pooled dataset, e.g. CIFAR-FS's 600 images per class, 90/10)."""
    labels = _labels(labels)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    rng = _rng(seed)
    held = [
        rng.permutation(rows)[: int(round(len(rows) * test_fraction))]
        for rows in (np.flatnonzero(labels == c) for c in np.unique(labels))
    ]
    return np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, np.int64)


def relabel(labels, mapping: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(index, new_labels): a sample of class c in mapping[g] gets label g; samples of
    classes in no group are dropped. E.g. superclasses [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]."""
    labels = _labels(labels)
    members = [int(c) for group in mapping for c in group]
    if any(c < 0 for c in members):
        raise ValueError(f"class ids must be >= 0: {mapping}")
    if len(set(members)) != len(members):
        raise ValueError(f"a class appears in more than one group: {mapping}")
    size = max([int(labels.max()) + 1 if labels.size else 0, *(c + 1 for c in members)])
    table = np.full(size, -1, dtype=np.int64)
    for g, group in enumerate(mapping):
        table[np.asarray(group, dtype=np.int64)] = g
    new = table[labels]
    index = np.flatnonzero(new >= 0).astype(np.int64)
    return index, new[index]


def disjoint_pools(
    labels, sizes_per_class: list[int], seed: int | None, mode: str = "random"
) -> list[np.ndarray]:
    """Non-overlapping pools of rows (each sorted), pool p with sizes_per_class[p] per class.

    mode "random": per class, pool 0 takes the first n0 rows of a seeded permutation
    of that class's rows, pool 1 the next n1, and so on.
    mode "first_n": rows in file order, sizes counted in rows of the whole split
    (not per class): pool 0 = the first n0 rows, pool 1 = the next n1 (the MNIST
    protocol "first 1000 train, then another 500"); `seed` is ignored.
    """
    labels = _labels(labels)
    sizes = [int(s) for s in sizes_per_class]
    if any(s < 0 for s in sizes):
        raise ValueError(f"pool sizes must be >= 0: {sizes}")
    bounds = np.cumsum([0, *sizes])
    if mode == "first_n":
        if bounds[-1] > len(labels):
            raise ValueError(f"pools need {bounds[-1]} rows, the split has {len(labels)}")
        return [
            np.arange(a, b, dtype=np.int64) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
    if mode != "random":
        raise ValueError(f"mode must be 'random' or 'first_n', not {mode!r}")
    if seed is None:
        raise ValueError("mode 'random' needs a seed")
    rng = _rng(seed)
    pools: list[list[np.ndarray]] = [[] for _ in sizes]
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        if len(rows) < bounds[-1]:
            raise ValueError(f"class {c} has {len(rows)} samples, the pools need {bounds[-1]}")
        for p in range(len(sizes)):
            pools[p].append(rows[bounds[p] : bounds[p + 1]])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in pools]


FULL = {"kind": "full"}


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


def _class_split(view: dict, labels: np.ndarray, task: str):
    """(rows, labels 0..len-1) of the source ("pretrain") or target ("target") classes."""
    source, target = list(view["source"]), list(view["target"])
    if not source or not target or set(source) & set(target):
        raise ValueError(f"class_split needs non-empty, disjoint source and target: {view}")
    if task not in ("pretrain", "target"):
        raise ValueError(f"a class_split view has tasks 'pretrain' and 'target', not {task!r}")
    classes = source if task == "pretrain" else target
    missing = sorted(set(classes) - set(np.unique(labels).tolist()))
    if missing:
        raise ValueError(f"class_split: classes {missing} have no samples in this split")
    return relabel(labels, [[c] for c in classes])


def num_classes(view: dict, base_classes: int, task: str = "pretrain") -> int:
    """Classes of the task a run with this view trains (`pretrain`) or is probed on."""
    if view["kind"] == "class_split":
        return len(view["source"] if task == "pretrain" else view["target"])
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
    if kind == "class_split":
        rows, labels = _class_split(view, _labels(raw.labels), task)
        return _selected(raw, rows, labels)
    raise ValueError(f"unknown view kind {kind!r}")


def view_slug(view: dict | None) -> str:
    """The part of a run id that names its view ("" for the full splits)."""
    if not view or view["kind"] == "full":
        return ""
    if view["kind"] == "subset":
        return f"-n{view['n_train']}"
    if view["kind"] == "superclass":
        return "-super"
    if view["kind"] == "class_split":
        return f"-src{len(view['source'])}"
    raise ValueError(f"unknown view kind {view['kind']!r}")
