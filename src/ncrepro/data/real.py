"""Real datasets, parsed with numpy from torchvision's on-disk formats under data.root.

Layouts (relative to data.root): MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
(or .gz), FashionMNIST/raw/... likewise, cifar-10-batches-py/{data_batch_1..5,
test_batch,batches.meta}, cifar-100-python/{train,test,meta}, {train,test}_32x32.mat
(SVHN), stl10_binary/{train,test}_{X,y}.bin (+ class_names.txt). With download=True,
missing files are fetched with torchvision's dataset classes, then parsed here.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np

from ncrepro.data.errors import corrupt, dataset_missing
from ncrepro.data.registry import DATASETS


def _exists(path: Path) -> bool:
    return path.is_file() or (path.suffix != ".gz" and Path(f"{path}.gz").is_file())


def _download(name: str, root: Path) -> None:
    """Fetch a dataset with torchvision (needs internet) into root."""
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    if name in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        for train in (True, False):
            cls(str(root), train=train, download=True)
    elif name in ("cifar10", "cifar100"):  # one archive holds both splits
        (tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100)(str(root), train=True, download=True)
    elif name == "svhn":
        for split in ("train", "test"):
            tvd.SVHN(str(root), split=split, download=True)
    elif name == "stl10":  # one archive holds every split
        tvd.STL10(str(root), split="train", download=True)
    else:  # pragma: no cover - registry and this function list the same names
        raise ValueError(f"no downloader for {name!r}")


def ensure_files(name: str, split: str, root: Path, download: bool) -> Path:
    """The dataset's folder, after checking (and if allowed, downloading) its files."""
    info = DATASETS[name]
    folder = root / info.folder if info.folder else root
    expected = list(info.files[split])
    if all(_exists(folder / f) for f in expected):
        return folder
    gz_note = " (or .gz)" if name in ("mnist", "fashion_mnist") else ""
    shown = [f + gz_note for f in expected]
    if not download:
        missing = [f for f in expected if not _exists(folder / f)]
        reason = f"missing: {', '.join(missing)}" if len(missing) < len(expected) else ""
        raise dataset_missing(name, folder, shown, root, reason)
    try:
        _download(name, root)
    except Exception as exc:  # no internet, server down, bad checksum, ...
        raise dataset_missing(
            name, folder, shown, root, f"downloading with torchvision failed ({exc})"
        ) from exc
    if not all(_exists(folder / f) for f in expected):
        raise dataset_missing(name, folder, shown, root, "still missing after the download")
    return folder


# -- MNIST / Fashion-MNIST: IDX files (big-endian header), optionally gzipped -----------


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array of unsigned bytes (magic 2049: 1-d labels, 2051: 3-d images)."""
    gz = Path(f"{path}.gz")
    shown = path if path.is_file() else gz
    try:
        raw = path.read_bytes() if path.is_file() else gzip.decompress(gz.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # truncated or not gzip
        raise corrupt(shown, f"cannot decompress ({exc})") from None
    if len(raw) < 4:
        raise corrupt(shown, f"only {len(raw)} bytes")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise corrupt(shown, f"magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise corrupt(shown, "truncated header")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise corrupt(shown, f"{data.size} data bytes for shape {dims} (truncated?)")
    return data.reshape(dims)


def load_mnist(name: str, split: str, root: Path, download: bool):
    folder = ensure_files(name, split, root, download)
    image_file, label_file = DATASETS[name].files[split]
    images = read_idx(folder / image_file, 2051)
    labels = read_idx(folder / label_file, 2049).astype(np.int64)
    if images.shape[1:] != (28, 28):
        raise corrupt(folder / image_file, f"images are {images.shape[1:]}, not 28×28")
    if len(images) != len(labels):
        raise corrupt(folder / label_file, f"{len(labels)} labels for {len(images)} images")
    if labels.size and labels.max() > 9:
        raise corrupt(folder / label_file, f"label {labels.max()} outside 0..9")
    return images[:, None], labels, list(DATASETS[name].class_names)


# -- CIFAR-10 / CIFAR-100: python pickles, rows of 3072 bytes (R, G, B planes) -----------


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # pickle raises many types on garbage or truncation
        raise corrupt(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise corrupt(path, f"pickle holds a {type(obj).__name__}, not a dict")
    return obj


def _names(path: Path, key: bytes) -> list[str]:
    meta = _unpickle(path)
    if key not in meta:
        raise corrupt(path, f"no {key!r} entry")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def _cifar_batch(path: Path, label_key: bytes, num_classes: int):
    batch = _unpickle(path)
    for key in (b"data", label_key):
        if key not in batch:
            raise corrupt(path, f"no {key!r} entry")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise corrupt(path, f"data is {data.dtype} {data.shape}, not uint8 N×3072")
    if len(labels) != len(data):
        raise corrupt(path, f"{len(labels)} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise corrupt(path, f"labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(name: str, split: str, root: Path, download: bool, label_type: str = "fine"):
    folder = ensure_files(name, split, root, download)
    *batches, meta = DATASETS[name].files[split]
    if name == "cifar10":
        label_key, names = b"labels", _names(folder / meta, b"label_names")
    elif label_type in ("fine", "coarse"):
        label_key = f"{label_type}_labels".encode()
        names = _names(folder / meta, f"{label_type}_label_names".encode())
    else:
        raise ValueError(f"cifar100 label_type must be 'fine' or 'coarse', not {label_type!r}")
    expected = 20 if label_type == "coarse" and name == "cifar100" else DATASETS[name].num_classes
    if len(names) != expected:
        raise corrupt(folder / meta, f"{len(names)} class names, expected {expected}")
    parts = [_cifar_batch(folder / b, label_key, expected) for b in batches]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, names


# -- SVHN: MATLAB files, X is H×W×C×N, y is N×1 with label 10 for digit 0 ----------------


def load_svhn(split: str, root: Path, download: bool):
    from scipy.io import loadmat

    folder = ensure_files("svhn", split, root, download)
    path = folder / DATASETS["svhn"].files[split][0]
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, ... on garbage
        raise corrupt(path, f"not a readable .mat file ({exc})") from None
    if "X" not in mat or "y" not in mat:
        raise corrupt(path, "needs variables X and y")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise corrupt(path, f"X is {x.dtype} {x.shape}, not uint8 32×32×3×N")
    if len(y) != x.shape[3]:
        raise corrupt(path, f"{len(y)} labels for {x.shape[3]} images")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise corrupt(path, "labels outside 1..10")
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))  # N×C×H×W
    return images, y % 10, list(DATASETS["svhn"].class_names)


# -- STL-10: raw bytes, each image 3×96×96 stored column-major; labels 1..10 -------------


def load_stl10(split: str, root: Path, download: bool):
    folder = ensure_files("stl10", split, root, download)
    x_file, y_file = (folder / f for f in DATASETS["stl10"].files[split])
    raw = np.fromfile(x_file, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise corrupt(x_file, f"{raw.size} bytes is not a multiple of 3×96×96")
    images = np.ascontiguousarray(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2))
    labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64)
    if len(labels) != len(images):
        raise corrupt(y_file, f"{len(labels)} labels for {len(images)} images")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise corrupt(y_file, "labels outside 1..10")
    names_file = folder / "class_names.txt"
    names = list(DATASETS["stl10"].class_names)
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(names) != 10:
            raise corrupt(names_file, f"{len(names)} class names, expected 10")
    return images, labels - 1, names
