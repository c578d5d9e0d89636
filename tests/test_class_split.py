"""Few-shot data: the class_split view (source/target classes), the class-stratified
re-split of a pooled dataset, CIFAR-FS from CIFAR-100 and the mini-ImageNet loader (on
files the test writes)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ncrepro.data import load_split
from ncrepro.data.errors import CorruptDataError, DatasetMissingError
from ncrepro.data.registry import CIFAR100_COARSE_NAMES, CIFAR100_NAMES, RawSplit
from ncrepro.data.views import apply_view, num_classes, per_class_holdout, view_slug

VIEW = {"kind": "class_split", "source": [4, 1], "target": [0, 2, 3]}


def _raw(labels):
    labels = np.asarray(labels)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None] * np.ones(
        (1, 1, 2, 2), np.uint8
    )
    return RawSplit(images, labels, [f"c{i}" for i in range(5)])


def test_class_split_view_relabels_source_and_target():
    raw = _raw([0, 1, 2, 3, 4, 4, 1, 0, 2, 3])
    images, labels, index = apply_view(VIEW, "train", raw)
    assert index.tolist() == [1, 4, 5, 6]  # rows of classes 4 and 1, in file order
    assert labels.tolist() == [1, 0, 0, 1]  # 4 -> 0, 1 -> 1 (the listed order)
    assert images[:, 0, 0, 0].tolist() == [1, 4, 5, 6]
    _, target_labels, target_index = apply_view(VIEW, "test", raw, task="target")
    assert target_index.tolist() == [0, 2, 3, 7, 8, 9]
    assert target_labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert num_classes(VIEW, 5) == 2 and num_classes(VIEW, 5, task="target") == 3
    assert view_slug(VIEW) == "-src2"


def test_class_split_view_errors():
    raw = _raw([0, 1, 2, 3])
    with pytest.raises(ValueError, match="disjoint"):
        apply_view({"kind": "class_split", "source": [0, 1], "target": [1, 2]}, "train", raw)
    with pytest.raises(ValueError, match=r"classes \[4\] have no samples"):
        apply_view(VIEW, "train", raw)
    with pytest.raises(ValueError, match="tasks 'pretrain' and 'target'"):
        apply_view(
            {"kind": "class_split", "source": [0], "target": [1]}, "train", raw, task="finetune"
        )


def test_per_class_holdout_is_stratified_and_seeded():
    labels = np.repeat(np.arange(4), 20)
    held = per_class_holdout(labels, 0.1, seed=3)
    assert np.bincount(labels[held]).tolist() == [2, 2, 2, 2]
    assert (held == per_class_holdout(labels, 0.1, seed=3)).all()
    assert (held != per_class_holdout(labels, 0.1, seed=4)).any()
    assert (np.diff(held) > 0).all()
    with pytest.raises(ValueError, match="test_fraction"):
        per_class_holdout(labels, 1.0, seed=0)


def _write_cifar100(root, rng, n_train=20, n_test=10, classes=4):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    meta = {
        b"fine_label_names": [n.encode() for n in CIFAR100_NAMES],
        b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE_NAMES],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n * classes, 3072), dtype=np.uint8)
        fine = np.repeat(np.arange(classes), n).tolist()
        record = {b"data": data, b"fine_labels": fine, b"coarse_labels": [0] * len(fine)}
        (folder / split).write_bytes(pickle.dumps(record, protocol=2))
        out[split] = (data, fine)
    return out


def test_cifar_fs_resplit_pools_both_splits(tmp_path):
    written = _write_cifar100(tmp_path, np.random.default_rng(0))
    params = {"resplit_test_fraction": 0.1, "seed": 0}
    train = load_split("cifar100", "train", root=tmp_path, **params)
    test = load_split("cifar100", "test", root=tmp_path, **params)
    assert np.bincount(train.labels).tolist() == [27] * 4  # 30 per class, 90/10
    assert np.bincount(test.labels).tolist() == [3] * 4
    assert not set(train.index) & set(test.index)
    pooled = np.concatenate([written["train"][0], written["test"][0]]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(test.images, pooled[test.index])
    assert sorted([*train.index, *test.index]) == list(range(120))


def _write_miniimagenet(root, per_class=10, size=6):
    from PIL import Image

    folder = root / "mini-imagenet"
    (folder / "images").mkdir(parents=True)
    classes = {"train": ["n02", "n01"], "val": ["n05"], "test": ["n04", "n03"]}
    colour = 0
    for split, wnids in classes.items():
        lines = ["filename,label"]
        for wnid in wnids:
            for i in range(per_class):
                name = f"{wnid}_{i:03d}.jpg"
                Image.new("RGB", (size, size), (colour, 0, 0)).save(folder / "images" / name)
                lines.append(f"{name},{wnid}")
            colour += 40
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_miniimagenet_loader(tmp_path):
    _write_miniimagenet(tmp_path)
    train = load_split("miniimagenet", "train", root=tmp_path, image_size=4)
    test = load_split("miniimagenet", "test", root=tmp_path, image_size=4)
    # CSV by CSV, each CSV's classes sorted: train n01, n02; val n05; test n03, n04
    assert train.class_names == ["n01", "n02", "n05", "n03", "n04"]
    assert np.bincount(train.labels).tolist() == [9] * 5
    assert np.bincount(test.labels).tolist() == [1] * 5
    assert train.images.shape[1:] == (3, 4, 4) and train.images.dtype == np.uint8
    # class n01 was written second in train.csv (red 40), n03 second in test.csv (red 160)
    assert set(train.images[train.labels == 0][:, 0].ravel()) == {40}
    assert set(train.images[train.labels == 3][:, 0].ravel()) == {160}
    only = load_split("miniimagenet", "train", root=tmp_path, csv_splits=["test"], image_size=4)
    assert only.class_names == ["n03", "n04"]


def test_miniimagenet_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetMissingError, match="mini-imagenet"):
        load_split("miniimagenet", "train", root=tmp_path)
    folder = _write_miniimagenet(tmp_path, per_class=2)
    (folder / "val.csv").write_text("name,wnid\nx.jpg,n05\n")
    with pytest.raises(CorruptDataError, match="val.csv"):
        load_split("miniimagenet", "train", root=tmp_path)
    (folder / "val.csv").write_text("filename,label\nmissing.jpg,n05\nmissing2.jpg,n05\n")
    with pytest.raises(DatasetMissingError, match="missing"):
        load_split("miniimagenet", "train", root=tmp_path)
    (folder / "images" / "missing.jpg").write_bytes(b"not an image")
    (folder / "images" / "missing2.jpg").write_bytes(b"not an image")
    with pytest.raises(CorruptDataError, match="missing"):
        load_split("miniimagenet", "train", root=tmp_path)
