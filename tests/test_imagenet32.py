"""ImageNet32 loader (ncrepro.data.imagenet32) on batch files this test writes."""

import pickle

import numpy as np
import pytest

from ncrepro.data import CorruptDataError, DatasetMissingError, load_split, prepare
from ncrepro.data.registry import DATASETS


def write_batches(root, *, npz=False, per_file=100, seed=0):
    """10 train batches and the val batch in the official layout; returns what they hold
    (images N×3×32×32, 0-based labels) per split."""
    rng = np.random.default_rng(seed)
    folder = root / "imagenet32"
    written = {"train": ([], []), "test": ([], [])}
    files = [(f"Imagenet32_train/train_data_batch_{i}", "train") for i in range(1, 11)]
    files.append(("Imagenet32_val/val_data", "test"))
    for offset, (name, split) in enumerate(files):
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = (offset * per_file + np.arange(per_file)) % 1000 + 1  # 1..1000, as in the files
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        batch = {"data": data, "labels": labels.tolist(), "mean": data.mean(0)}
        if npz:
            np.savez(path.with_name(path.name + ".npz"), **batch)
        else:
            path.write_bytes(pickle.dumps(batch))
        written[split][0].append(data.reshape(-1, 3, 32, 32))
        written[split][1].append(labels - 1)
    return {s: (np.concatenate(x), np.concatenate(y)) for s, (x, y) in written.items()}


@pytest.mark.parametrize("npz", [False, True])
def test_batches_read_in_file_order_with_zero_based_labels(tmp_path, npz):
    expected = write_batches(tmp_path, npz=npz)
    for split in ("train", "test"):
        loaded = load_split("imagenet32", split, root=tmp_path)
        np.testing.assert_array_equal(loaded.images, expected[split][0])
        np.testing.assert_array_equal(loaded.labels, expected[split][1])
        assert loaded.images.dtype == np.uint8 and loaded.images.shape[1:] == (3, 32, 32)
        assert loaded.num_classes == 1000 == DATASETS["imagenet32"].num_classes
    # the first image's red plane is the first 1024 bytes of its row (CIFAR's layout)
    train = load_split("imagenet32", "train", root=tmp_path)
    assert train.labels.min() >= 0 and train.labels.max() <= 999


def test_subsample_and_prepare(tmp_path):
    write_batches(tmp_path, per_file=200)  # 2000 train rows: every class twice
    sub = load_split("imagenet32", "train", root=tmp_path, n_train_per_class=2, seed=0)
    assert len(sub) == 2000 and np.bincount(sub.labels, minlength=1000).min() == 2
    with pytest.raises(ValueError, match="has only 2 samples"):
        load_split("imagenet32", "train", root=tmp_path, n_train_per_class=3)
    manifest = prepare("imagenet32", {}, str(tmp_path), False, tmp_path / "prepared")
    assert manifest["splits"]["test"]["n"] == 200
    assert manifest["source"]["folder"] == f"{tmp_path}/imagenet32"


def test_missing_files_name_the_folder_and_how_to_get_them(tmp_path):
    with pytest.raises(DatasetMissingError) as info:
        load_split("imagenet32", "test", root=tmp_path, download=True)
    message = str(info.value)
    assert str(tmp_path / "imagenet32") in message and "Imagenet32_val/val_data" in message
    assert "not downloaded automatically" in message and "cannot fetch" in message
    write_batches(tmp_path)
    (tmp_path / "imagenet32/Imagenet32_train/train_data_batch_7").unlink()
    with pytest.raises(DatasetMissingError, match="missing: Imagenet32_train/train_data_batch_7"):
        load_split("imagenet32", "train", root=tmp_path)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"garbage", "not a readable pickle"),
        (pickle.dumps([1, 2]), "not a dict"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8)}), "no 'labels' entry"),
        (pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [1, 2]}), "N×3072"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1]}), "1 labels for 2"),
        (pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}), "outside 1..1000"),
    ],
)
def test_corrupt_batch_is_a_clear_error(tmp_path, content, match):
    write_batches(tmp_path)
    path = tmp_path / "imagenet32/Imagenet32_val/val_data"
    path.write_bytes(content)
    with pytest.raises(CorruptDataError, match=match) as info:
        load_split("imagenet32", "test", root=tmp_path)
    assert str(path) in str(info.value)
