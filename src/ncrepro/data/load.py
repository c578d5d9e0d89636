"""`load_split`: one split of any registered dataset as a `RawSplit`."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ncrepro.data import imagenet32, real, synth
from ncrepro.data.registry import DATASETS, RawSplit
from ncrepro.data.views import balanced_subset, per_class_holdout

SPLITS = ("train", "test")


def _digits_source() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1797 images, 8×8, values 0..16) and targets, read
    from its data file without importing sklearn.datasets (slow to import)."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():  # layout changed: use the public loader
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(path) as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _digits(split: str, test_fraction: float = 0.3, seed: int = 0):
    """Digits scaled 0..16 -> 0..255; a seeded split stratified by class (per class,
    round(n_c * test_fraction) random rows go to test)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"digits test_fraction must be in (0, 1), not {test_fraction}")
    values, target = _digits_source()
    images = np.rint(values * (255 / 16)).astype(np.uint8)[:, None]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
    test = []
    for c in range(10):
        rows = rng.permutation(np.flatnonzero(target == c))
        test.append(rows[: int(round(len(rows) * test_fraction))])
    is_test = np.zeros(len(target), bool)
    is_test[np.concatenate(test)] = True
    index = np.flatnonzero(is_test if split == "test" else ~is_test).astype(np.int64)
    return images[index], target[index].astype(np.int64), index


def _synth(split: str, **params):
    counts = {s: params.pop(f"n_{s}_per_class", 100) for s in SPLITS}
    images, labels = synth.generate(
        n_per_class=counts[split], stream=synth.STREAMS[split], **params
    )
    return images, labels, [f"class{c}" for c in range(params.get("num_classes", 10))]


def _resplit(name: str, split: str, root: Path, download: bool, params: dict):
    """CIFAR-100's official splits pooled (600 images per class), then per class a seeded
    `resplit_test_fraction` held out as "test" (`per_class_holdout`, seed `seed`): the
    CIFAR-FS protocol (Bertinetto et al. 2019). `index` = row in train followed by test."""
    label_type = params.get("label_type", "fine")
    parts = [real.load_cifar(name, s, root, download, label_type) for s in SPLITS]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    held = np.zeros(len(labels), bool)
    held[per_class_holdout(labels, params["resplit_test_fraction"], params.get("seed", 0))] = True
    index = np.flatnonzero(held if split == "test" else ~held).astype(np.int64)
    return images[index], labels[index], parts[0][2], index


def _check_params(name: str, params: dict) -> None:
    unknown = sorted(set(params) - set(DATASETS[name].params))
    if unknown:
        raise ValueError(
            f"dataset {name!r} does not take param(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(DATASETS[name].params) or 'none'}"
        )


def load_split(
    name: str, split: str, *, root: str | Path = "data", download: bool = False, **params
) -> RawSplit:
    """One split of dataset `name` ("train" or "test") as uint8 images and int64 labels.

    `root` (data.root) is only read for real datasets. For real datasets,
    `n_train_per_class` / `n_test_per_class` (with `seed`) keep a seeded balanced
    subsample of that split (e.g. the SVHN protocol, 4600 / 1500); `index` then
    holds the kept rows of the source split.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    _check_params(name, params)
    root = Path(root)
    index = None
    if name == "digits":
        images, labels, index = _digits(split, **params)
        classes = list(DATASETS[name].class_names)
    elif name == "synth":
        images, labels, classes = _synth(split, **params)
    elif name == "miniimagenet":
        from ncrepro.data.miniimagenet import load_miniimagenet

        images, labels, classes, index = load_miniimagenet(split, root, download, **params)
    elif params.get("resplit_test_fraction"):
        images, labels, classes, index = _resplit(name, split, root, download, params)
    else:
        per_class = params.get(f"n_{split}_per_class")
        if name in ("mnist", "fashion_mnist"):
            images, labels, classes = real.load_mnist(name, split, root, download)
        elif name in ("cifar10", "cifar100"):
            label_type = params.get("label_type", "fine")
            images, labels, classes = real.load_cifar(name, split, root, download, label_type)
        elif name == "svhn":
            images, labels, classes = real.load_svhn(split, root, download)
        elif name == imagenet32.NAME:
            images, labels, classes = imagenet32.load_imagenet32(split, root, download)
        else:
            images, labels, classes = real.load_stl10(split, root, download)
        if per_class:
            counts = np.bincount(labels, minlength=len(classes))
            if counts.min() < per_class:
                raise ValueError(
                    f"{name} {split}: n_{split}_per_class={per_class} but class "
                    f"{classes[int(counts.argmin())]!r} has only {counts.min()} samples"
                )
            index = balanced_subset(labels, per_class * len(classes), params.get("seed", 0))
            images, labels = images[index], labels[index]
    return RawSplit(np.ascontiguousarray(images, dtype=np.uint8), labels, list(classes), index)
