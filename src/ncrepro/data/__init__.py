"""Datasets: bundled (`digits`), generated (`synth`) and real (from `data.root`).

`prepare` writes results/data/{dataset}/{train,test}.npz (images uint8 N×C×H×W,
labels int64, index int64 = row numbers in the source split) and manifest.json
(shapes, per-class counts, class names, sha256 of each file).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncrepro.data import synth
from ncrepro.data.loaders import (
    DatasetMissingError,
    load_cifar,
    load_mnist,
    load_stl10,
    load_svhn,
)
from ncrepro.data.views import balanced_subset, disjoint_pools, relabel
from ncrepro.provenance import atomic_write_bytes, atomic_write_json, sha256_file

__all__ = [
    "DATASETS",
    "DatasetMissingError",
    "RawSplit",
    "balanced_subset",
    "disjoint_pools",
    "load_prepared",
    "load_split",
    "prepare",
    "relabel",
]

FORMAT_VERSION = 1
SPLITS = ("train", "test")
DATASETS = {
    "digits": {"bundled": True, "shape": (1, 8, 8), "classes": 10},
    "synth": {"bundled": True, "shape": (3, 32, 32), "classes": None},
    "mnist": {"bundled": False, "shape": (1, 28, 28), "classes": 10},
    "fashion_mnist": {"bundled": False, "shape": (1, 28, 28), "classes": 10},
    "cifar10": {"bundled": False, "shape": (3, 32, 32), "classes": 10},
    "cifar100": {"bundled": False, "shape": (3, 32, 32), "classes": 100},
    "svhn": {"bundled": False, "shape": (3, 32, 32), "classes": 10},
    "stl10": {"bundled": False, "shape": (3, 96, 96), "classes": 10},
}


@dataclass
class RawSplit:
    images: np.ndarray  # uint8 N×C×H×W
    labels: np.ndarray  # int64 N
    class_names: list[str]
    index: np.ndarray | None = None  # int64 N, rows in the source split

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.labels), dtype=np.int64)


def _digits(split: str, test_fraction: float = 0.3, seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    rows = np.arange(len(images))
    train, test = train_test_split(
        rows, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    chosen = np.sort(train if split == "train" else test)
    classes = [str(i) for i in range(10)]
    return images[chosen], digits.target[chosen].astype(np.int64), classes, chosen


def load_split(
    name: str, split: str, *, root: str | Path = "data", download: bool = False, **params
) -> RawSplit:
    """One split of a dataset as uint8 images and int64 labels."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    root = Path(root)
    index = None
    if name == "digits":  # index: rows of scikit-learn's 1797 images
        images, labels, classes, index = _digits(split, **params)
    elif name == "synth":
        p = dict(params)
        n = p.pop("n_train_per_class" if split == "train" else "n_test_per_class", 100)
        p.pop("n_test_per_class" if split == "train" else "n_train_per_class", None)
        stream = synth.TRAIN_STREAM if split == "train" else synth.TEST_STREAM
        images, labels = synth.generate(n_per_class=n, stream=stream, **p)
        classes = [f"class{c}" for c in range(p.get("num_classes", 10))]
    elif name in ("mnist", "fashion_mnist"):
        images, labels, classes = load_mnist(name, split, root, download)
    elif name in ("cifar10", "cifar100"):
        images, labels, classes = load_cifar(name, split, root, download, **params)
    elif name == "svhn":
        images, labels, classes = load_svhn(split, root, download)
    elif name == "stl10":
        images, labels, classes = load_stl10(split, root, download)
    else:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if index is None:
        index = np.arange(len(labels), dtype=np.int64)
    per_class = params.get(f"n_{split}_per_class") if name == "svhn" else None
    if per_class:  # the paper's SVHN protocol: a seeded balanced subsample
        index = balanced_subset(labels, per_class * len(classes), params.get("seed", 0))
        images, labels = images[index], labels[index]
    return RawSplit(np.ascontiguousarray(images), labels, list(classes), index)


def _npz_bytes(split: RawSplit) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, images=split.images, labels=split.labels, index=split.index)
    return buffer.getvalue()


def prepare(name: str, params: dict, root: str, download: bool, out_dir: Path) -> dict:
    """Write train/test npz files and manifest.json into `out_dir`; return the manifest."""
    out_dir = Path(out_dir)
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": name,
        "params": params,
        "source": "bundled" if DATASETS.get(name, {}).get("bundled") else f"data.root = {root}",
        "splits": {},
    }
    for split_name in SPLITS:
        split = load_split(name, split_name, root=root, download=download, **params)
        path = out_dir / f"{split_name}.npz"
        atomic_write_bytes(path, _npz_bytes(split))
        manifest["splits"][split_name] = {
            "file": path.name,
            "n": int(len(split.labels)),
            "shape": list(split.images.shape),
            "dtype": str(split.images.dtype),
            "per_class": np.bincount(split.labels, minlength=len(split.class_names)).tolist(),
            "sha256": sha256_file(path),
        }
        manifest["class_names"] = split.class_names
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def load_prepared(data_dir: str | Path, split: str) -> RawSplit:
    """A prepared split, after checking its sha256 against the manifest."""
    data_dir = Path(data_dir)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    entry = manifest["splits"][split]
    path = data_dir / entry["file"]
    if sha256_file(path) != entry["sha256"]:
        raise ValueError(f"{path} does not match the sha256 in its manifest (modified?)")
    with np.load(path) as f:
        return RawSplit(f["images"], f["labels"], manifest["class_names"], f["index"])
