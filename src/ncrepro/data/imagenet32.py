"""ImageNet32: the downsampled ImageNet of Chrabaszcz, Loshchilov & Hutter (2017), 1000
classes of 32×32 RGB images (1 281 167 train, 50 000 validation = our test split).

Read from data.root in the layout of the official archives (Imagenet32_train.zip,
Imagenet32_val.zip from image-net.org, "Downsampled ImageNet 32x32"), unpacked into
`<data.root>/imagenet32/`:

    imagenet32/Imagenet32_train/train_data_batch_1 ... train_data_batch_10
    imagenet32/Imagenet32_val/val_data

Each batch file is a Python pickle of a dict with "data" (uint8, N×3072, each row the
R, G and B planes of a 32×32 image, row-major: CIFAR's layout), "labels" (N integers
1..1000) and, in the train files, "mean". The npz variant of the archives
(`train_data_batch_1.npz`, ... with the same keys) is read too when a pickle is absent.
Labels become 0..999. The archives hold no class names: classes are named "class0" ...
"class999" by label. There is no automatic download (torchvision has no ImageNet32).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ncrepro.data.errors import DatasetMissingError, corrupt

NAME = "imagenet32"
FOLDER = "imagenet32"
NUM_CLASSES = 1000
CLASS_NAMES = tuple(f"class{i}" for i in range(NUM_CLASSES))
FILES = {
    "train": tuple(f"Imagenet32_train/train_data_batch_{i}" for i in range(1, 11)),
    "test": ("Imagenet32_val/val_data",),
}
HOW_TO_GET = (
    "ImageNet32 is not downloaded automatically: download Imagenet32_train.zip and "
    "Imagenet32_val.zip ('Downsampled ImageNet 32x32', https://image-net.org/download-images, "
    "needs an ImageNet account) and unzip both into this folder"
)


def _present(path: Path) -> Path | None:
    """The pickle, or else its .npz variant, if either exists."""
    if path.is_file():
        return path
    npz = path.with_name(path.name + ".npz")
    return npz if npz.is_file() else None


def _read_batch(path: Path) -> dict:
    """{"data", "labels"} of one batch file (pickle or npz), keys as str."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {"data": f["data"], "labels": f["labels"]}
        except KeyError as exc:
            raise corrupt(path, f"no {exc} array") from None
        except Exception as exc:  # zip / npy format errors
            raise corrupt(path, f"not a readable npz ({type(exc).__name__}: {exc})") from None
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # pickle raises many types on garbage or truncation
        raise corrupt(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise corrupt(path, f"pickle holds a {type(obj).__name__}, not a dict")
    entries = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}
    for key in ("data", "labels"):
        if key not in entries:
            raise corrupt(path, f"no {key!r} entry")
    return entries


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_batch(path)
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"]).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise corrupt(path, f"data is {data.dtype} {data.shape}, not uint8 N×3072")
    if len(labels) != len(data):
        raise corrupt(path, f"{len(labels)} labels for {len(data)} images")
    if not np.issubdtype(labels.dtype, np.integer):
        raise corrupt(path, f"labels are {labels.dtype}, not integers")
    if labels.size and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise corrupt(
            path, f"labels outside 1..{NUM_CLASSES} (found {labels.min()}..{labels.max()})"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64) - 1


def load_imagenet32(split: str, root: Path, download: bool = False):
    """(images uint8 N×3×32×32, labels int64 0..999, class names) of `split`."""
    folder = Path(root) / FOLDER
    expected = FILES[split]
    found = [_present(folder / f) for f in expected]
    if not all(found):
        missing = [f for f, p in zip(expected, found, strict=True) if p is None]
        where = f"'{folder}' (data.root = '{root}'"
        if not folder.is_absolute():
            where += f"; absolute path '{folder.absolute()}'"
        raise DatasetMissingError(
            f"dataset '{NAME}' not found: expected {', '.join(expected)} (pickles, or the "
            f"same names + .npz) in folder {where}); missing: {', '.join(missing)}. Fix: "
            f"{HOW_TO_GET}" + (" (data.download cannot fetch it)." if download else ".")
        )
    parts = [_batch_arrays(path) for path in found]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, list(CLASS_NAMES)
