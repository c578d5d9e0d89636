"""mini-ImageNet (Vinyals et al. 2016; the class split of Ravi & Larochelle 2017) from a
data root: the usual images + split-CSV layout, never downloaded.

Layout under data.root (`FOLDER`):

    mini-imagenet/images/<file>.jpg        every image (84×84 RGB in the usual release)
    mini-imagenet/train.csv, val.csv, test.csv   header "filename,label"; label = WordNet id

The three CSVs list 64 / 16 / 20 disjoint classes of 600 images each. The loader pools
the CSVs named in `csv_splits` (default all three) and numbers the classes CSV by CSV
(train, val, test), each CSV's classes in sorted WordNet-id order: with the default, the
64 meta-train classes are 0-63, the 16 meta-val classes 64-79 and the 20 meta-test
classes 80-99. It then re-splits every class: a seeded `test_fraction` of its images
(`ncrepro.data.views.per_class_holdout`) is the prepared "test" split, the rest "train".
Images are converted to RGB and resized to `image_size` (bilinear) if they are not that
size already.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ncrepro.data.errors import corrupt, dataset_missing
from ncrepro.data.views import per_class_holdout

FOLDER = "mini-imagenet"
CSV_SPLITS = ("train", "val", "test")


def read_split_csv(path: Path) -> list[tuple[str, str]]:
    """(filename, label) rows of one split CSV (header "filename,label")."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise corrupt(path, f"unreadable ({exc})") from None
    if not rows or [c.strip() for c in rows[0][:2]] != ["filename", "label"]:
        raise corrupt(path, 'the first line must be the header "filename,label"')
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise corrupt(path, f"line {number} is not 'filename,label'")
        out.append((row[0].strip(), row[1].strip()))
    return out


def _image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise
    except (OSError, UnidentifiedImageError) as exc:
        raise corrupt(path, f"not a readable image ({exc})") from None


def load_miniimagenet(
    split: str,
    root: str | Path,
    download: bool = False,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    csv_splits: list[str] | tuple[str, ...] = CSV_SPLITS,
    image_size: int = 84,
):
    """(images uint8 N×3×S×S, labels int64, class names (WordNet ids), index): `split`
    ("train" or "test") of the pooled, re-split CSVs; `index` = the row in the pooled
    list (CSV by CSV, file order)."""
    root = Path(root)
    folder = root / FOLDER
    unknown = sorted(set(csv_splits) - set(CSV_SPLITS))
    if unknown or not csv_splits:
        raise ValueError(f"miniimagenet csv_splits must be among {CSV_SPLITS}, got {csv_splits}")
    expected = [f"{s}.csv" for s in csv_splits] + ["images/"]
    missing = [f for f in expected if not (folder / f.rstrip("/")).exists()]
    if missing:
        reason = "mini-ImageNet is not downloadable here: place the files by hand"
        if download:
            reason += " (data.download does not apply to it)"
        raise dataset_missing("miniimagenet", folder, expected, root, reason)
    files, wnids, names = [], [], []
    for s in csv_splits:
        rows = read_split_csv(folder / f"{s}.csv")
        classes = sorted({label for _, label in rows})
        if set(classes) & set(names):
            raise corrupt(folder / f"{s}.csv", "shares classes with another split CSV")
        names += classes
        files += [name for name, _ in rows]
        wnids += [label for _, label in rows]
    number = {name: i for i, name in enumerate(names)}
    labels = np.array([number[w] for w in wnids], dtype=np.int64)
    held = np.zeros(len(labels), bool)
    held[per_class_holdout(labels, test_fraction, seed)] = True
    index = np.flatnonzero(held if split == "test" else ~held).astype(np.int64)
    images = np.empty((len(index), 3, image_size, image_size), np.uint8)
    for i, row in enumerate(index):
        path = folder / "images" / files[row]
        if not path.is_file():
            raise dataset_missing("miniimagenet", folder / "images", [files[row]], root)
        images[i] = _image(path, image_size)
    return images, labels[index], names, index
