"""Loaders for the real datasets, parsing torchvision's on-disk formats with numpy.

Files are expected under `root` exactly where torchvision puts them; with
`download=True` missing files are fetched with torchvision's dataset classes
(needs internet), then parsed here.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


class DatasetMissingError(FileNotFoundError):
    """A dataset's files are not under the data root (and download is off)."""


def _missing(name: str, folder: Path, expected: list[str]) -> DatasetMissingError:
    return DatasetMissingError(
        f"dataset '{name}' not found: expected {', '.join(expected)} in folder '{folder}'. "
        "Place the files there (torchvision's layout), point data.root at them "
        "(--config data.root=DIR), or set data.download: true "
        "(--config data.download=true) to fetch them."
    )


def _download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    if name in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        for train in (True, False):
            cls(str(root), train=train, download=True)
    elif name in ("cifar10", "cifar100"):
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        cls(str(root), train=True, download=True)
    elif name == "svhn":
        for split in ("train", "test"):
            tvd.SVHN(str(root), split=split, download=True)
    elif name == "stl10":
        tvd.STL10(str(root), split="train", download=True)


def _ensure(name, root: Path, folder: Path, files: list[str], download: bool) -> None:
    if all((folder / f).exists() or (folder / f"{f}.gz").exists() for f in files):
        return
    if not download:
        raise _missing(name, folder, files)
    _download(name, root)
    if not all((folder / f).exists() or (folder / f"{f}.gz").exists() for f in files):
        raise _missing(name, folder, files)


def _corrupt(path: Path, why: str) -> ValueError:
    return ValueError(f"file '{path}' is corrupt or not in the expected format: {why}")


# -- MNIST / Fashion-MNIST: IDX files (big-endian), optionally gzipped ------------------

MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
MNIST_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def read_idx(path: Path, magic: int) -> np.ndarray:
    gz = Path(str(path) + ".gz")
    raw = gzip.open(gz).read() if not path.exists() and gz.exists() else path.read_bytes()
    if len(raw) < 8:
        raise _corrupt(path, "too short")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise _corrupt(path, f"magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise _corrupt(path, f"{data.size} bytes of data for shape {dims}")
    return data.reshape(dims)


def load_mnist(name: str, split: str, root: Path, download: bool):
    folder = root / MNIST_FOLDERS[name] / "raw"
    prefix = "train" if split == "train" else "t10k"
    files = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    _ensure(name, root, folder, files, download)
    images = read_idx(folder / files[0], 2051)[:, None]
    labels = read_idx(folder / files[1], 2049).astype(np.int64)
    if len(images) != len(labels):
        raise _corrupt(folder / files[1], "label count differs from image count")
    return images, labels, MNIST_CLASSES[name]


# -- CIFAR-10 / CIFAR-100: python pickles ------------------------------------------------


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as exc:  # pickle raises many types on garbage
        raise _corrupt(path, str(exc)) from None


def load_cifar(name: str, split: str, root: Path, download: bool, label_type: str = "fine"):
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        _ensure(name, root, folder, [*files, "batches.meta"], download)
        batches = [_unpickle(folder / f) for f in files]
        key = b"labels"
        classes = [c.decode() for c in _unpickle(folder / "batches.meta")[b"label_names"]]
    else:
        folder = root / "cifar-100-python"
        files = ["train" if split == "train" else "test"]
        _ensure(name, root, folder, [*files, "meta"], download)
        batches = [_unpickle(folder / f) for f in files]
        key = b"fine_labels" if label_type == "fine" else b"coarse_labels"
        meta_key = b"fine_label_names" if label_type == "fine" else b"coarse_label_names"
        classes = [c.decode() for c in _unpickle(folder / "meta")[meta_key]]
    try:
        images = np.concatenate([np.asarray(b[b"data"], np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[key], np.int64) for b in batches])
    except KeyError as exc:
        raise _corrupt(folder / files[0], f"missing key {exc}") from None
    return images.reshape(-1, 3, 32, 32), labels, classes


# -- SVHN: MATLAB files, X is H×W×C×N, label 10 means digit 0 ---------------------------


def load_svhn(split: str, root: Path, download: bool):
    from scipy.io import loadmat

    name = f"{split}_32x32.mat"
    _ensure("svhn", root, root, [name], download)
    try:
        mat = loadmat(root / name)
        images = np.transpose(mat["X"], (3, 2, 0, 1)).astype(np.uint8)
        labels = mat["y"].astype(np.int64).reshape(-1) % 10
    except Exception as exc:
        raise _corrupt(root / name, str(exc)) from None
    return np.ascontiguousarray(images), labels, [str(i) for i in range(10)]


# -- STL-10: binary files, column-major 3×96×96, labels 1..10 ---------------------------


def load_stl10(split: str, root: Path, download: bool):
    folder = root / "stl10_binary"
    files = [f"{split}_X.bin", f"{split}_y.bin"]
    _ensure("stl10", root, folder, files, download)
    raw = np.fromfile(folder / files[0], dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise _corrupt(folder / files[0], "size is not a multiple of 3×96×96")
    images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # stored column-major
    labels = np.fromfile(folder / files[1], dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images) or labels.min(initial=0) < 0:
        raise _corrupt(folder / files[1], "labels do not match the images")
    names_file = folder / "class_names.txt"
    classes = names_file.read_text().split() if names_file.exists() else [str(i) for i in range(10)]
    return np.ascontiguousarray(images), labels, classes
