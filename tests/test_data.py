"""Data: real loaders on format-exact files written here, synth, digits, prepare, views."""

import gzip
import json
import pickle

import numpy as np
import pytest
import scipy.io

from ncrepro.data import (
    DatasetMissingError,
    balanced_subset,
    disjoint_pools,
    load_prepared,
    load_split,
    prepare,
    relabel,
)

RNG = np.random.default_rng(0)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx(tmp_path, name, folder, compress):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", 7), ("t10k", 5)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n, dtype=np.uint8)
        for suffix, array, magic in (
            ("images-idx3-ubyte", images, 2051),
            ("labels-idx1-ubyte", labels, 2049),
        ):
            payload = idx_bytes(array, magic)
            path = raw / f"{prefix}-{suffix}"
            if compress:
                path = path.with_name(path.name + ".gz")
                payload = gzip.compress(payload)
            path.write_bytes(payload)
        data[prefix] = (images, labels)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        loaded = load_split(name, split, root=tmp_path)
        np.testing.assert_array_equal(loaded.images[:, 0], data[prefix][0])
        np.testing.assert_array_equal(loaded.labels, data[prefix][1])
        assert loaded.images.shape[1:] == (1, 28, 28) and loaded.labels.dtype == np.int64


def test_mnist_corrupt_magic(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28)), 2049))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2), 2049))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic number 2049"):
        load_split("mnist", "train", root=tmp_path)


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj))


def test_cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    write_pickle(folder / "batches.meta", {b"label_names": names})
    batches = []
    for i in range(1, 6):
        data = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = RNG.integers(0, 10, 4).tolist()
        write_pickle(folder / f"data_batch_{i}", {b"data": data, b"labels": labels})
        batches.append((data, labels))
    test = RNG.integers(0, 256, (3, 3072), dtype=np.uint8)
    write_pickle(folder / "test_batch", {b"data": test, b"labels": [1, 2, 3]})
    train = load_split("cifar10", "train", root=tmp_path)
    expected = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(train.images, expected)
    assert train.labels.tolist() == sum((b[1] for b in batches), [])
    assert train.class_names[0] == "airplane" and len(train.class_names) == 10
    # channel-major rows: the first 1024 bytes are the red plane
    assert train.images[0, 0, 0, 1] == batches[0][0][0, 1]
    assert train.images[0, 1, 0, 0] == batches[0][0][0, 1024]
    assert load_split("cifar10", "test", root=tmp_path).labels.tolist() == [1, 2, 3]


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = [f"f{i}".encode() for i in range(100)]
    coarse = [f"c{i}".encode() for i in range(20)]
    write_pickle(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": coarse})
    data = RNG.integers(0, 256, (5, 3072), dtype=np.uint8)
    write_pickle(
        folder / "train",
        {b"data": data, b"fine_labels": [0, 99, 5, 6, 7], b"coarse_labels": [0, 19, 1, 2, 3]},
    )
    assert load_split("cifar100", "train", root=tmp_path).labels.tolist() == [0, 99, 5, 6, 7]
    coarse_split = load_split("cifar100", "train", root=tmp_path, label_type="coarse")
    assert coarse_split.labels.tolist() == [0, 19, 1, 2, 3]
    assert coarse_split.class_names[19] == "c19"


def test_svhn_mat_and_subsampling(tmp_path):
    n = 40
    x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(n, 1)  # SVHN stores digit 0 as label 10
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    split = load_split("svhn", "train", root=tmp_path)
    np.testing.assert_array_equal(split.images, np.transpose(x, (3, 2, 0, 1)))
    assert split.labels.tolist() == [(i % 10 + 1) % 10 for i in range(n)]
    assert 0 in split.labels and 10 not in split.labels
    sub = load_split("svhn", "train", root=tmp_path, n_train_per_class=2, seed=1)
    assert np.bincount(sub.labels).tolist() == [2] * 10
    np.testing.assert_array_equal(sub.images, split.images[sub.index])


def test_stl10_binaries(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    images = RNG.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)  # N×C×H×W (row-major)
    # STL-10 stores each image column-major: write the transpose of H and W
    images.transpose(0, 1, 3, 2).tofile(folder / "train_X.bin")
    np.array([1, 10, 4], np.uint8).tofile(folder / "train_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"n{i}" for i in range(10)))
    split = load_split("stl10", "train", root=tmp_path)
    np.testing.assert_array_equal(split.images, images)
    assert split.labels.tolist() == [0, 9, 3] and split.class_names[9] == "n9"


def test_missing_dataset_names_folder_and_flag(tmp_path):
    with pytest.raises(DatasetMissingError) as info:
        load_split("cifar10", "train", root=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "data.download" in message


def test_synth_is_deterministic_and_balanced():
    params = dict(num_classes=6, num_superclasses=2, n_train_per_class=10, n_test_per_class=4)
    a = load_split("synth", "train", seed=3, **params)
    b = load_split("synth", "train", seed=3, **params)
    c = load_split("synth", "train", seed=4, **params)
    test = load_split("synth", "test", seed=3, **params)
    assert a.images.shape == (60, 3, 32, 32) and a.images.dtype == np.uint8
    assert a.images.tobytes() == b.images.tobytes()
    assert a.images.tobytes() != c.images.tobytes()
    assert np.bincount(a.labels).tolist() == [10] * 6
    assert np.bincount(test.labels).tolist() == [4] * 6
    assert not np.array_equal(a.images[:24], test.images)  # different sample streams
    assert 40 < a.images.mean() < 215 and a.images.std() > 20  # not saturated


def test_digits():
    train, test = load_split("digits", "train"), load_split("digits", "test")
    assert train.images.shape[1:] == (1, 8, 8) and train.images.max() == 255
    assert len(train.labels) + len(test.labels) == 1797
    assert len(test.labels) == 540  # stratified 30 %
    assert set(train.index.tolist()).isdisjoint(test.index.tolist())
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(train.labels, load_digits().target[train.index])


def test_prepare_manifest_and_tamper_detection(tmp_path):
    params = {"num_classes": 4, "n_train_per_class": 5, "n_test_per_class": 3, "seed": 0}
    manifest = prepare("synth", params, "data", False, tmp_path)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["splits"]["train"]["per_class"] == [5, 5, 5, 5]
    import hashlib

    digest = hashlib.sha256((tmp_path / "train.npz").read_bytes()).hexdigest()
    assert manifest["splits"]["train"]["sha256"] == digest
    split = load_prepared(tmp_path, "train")
    assert split.images.shape == (20, 3, 32, 32)
    with open(tmp_path / "train.npz", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="train.npz does not match the sha256"):
        load_prepared(tmp_path, "train")


def test_views():
    labels = np.repeat(np.arange(4), 25)
    a, b = balanced_subset(labels, 40, seed=0), balanced_subset(labels, 40, seed=1)
    assert np.bincount(labels[a]).tolist() == [10] * 4
    assert not np.array_equal(a, b)
    assert np.array_equal(a, balanced_subset(labels, 40, seed=0))
    with pytest.raises(ValueError, match="not divisible"):
        balanced_subset(labels, 42, seed=0)
    index, new = relabel(labels, [[0, 2], [1]])
    assert set(labels[index]) == {0, 1, 2}
    assert (new == np.where(labels[index] == 1, 1, 0)).all()
    pools = disjoint_pools(labels, [10, 5, 8], seed=2)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not set(pools[i]) & set(pools[j])
    assert [len(p) for p in pools] == [40, 20, 32]
    first = disjoint_pools(labels, [30, 20], seed=None, mode="first_n")
    assert first[0].tolist() == list(range(30)) and first[1].tolist() == list(range(30, 50))
    with pytest.raises(ValueError, match="pools need"):
        disjoint_pools(labels, [20, 10], seed=0)
