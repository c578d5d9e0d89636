"""ncrepro.data: real loaders on format-exact files written here (no downloads), synth,
digits, prepare/load_prepared, and the index views."""

import gzip
import hashlib
import json
import pickle

import numpy as np
import pytest
import scipy.io

from ncrepro.data import (
    DATASETS,
    CorruptDataError,
    DatasetMissingError,
    RawSplit,
    balanced_subset,
    disjoint_pools,
    load_prepared,
    load_split,
    prepare,
    relabel,
    superclass_groups,
)
from ncrepro.data import synth as synth_module
from ncrepro.data.registry import CIFAR100_COARSE_NAMES, CIFAR100_NAMES


def pixels(rng, shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


# -- MNIST / Fashion-MNIST -------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, rng, compress=False, sizes=(("train", 7), ("t10k", 5))):
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in sizes:
        images = pixels(rng, (n, 28, 28))
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for suffix, array, magic in (
            ("images-idx3-ubyte", images, 2051),
            ("labels-idx1-ubyte", labels, 2049),
        ):
            payload = idx_bytes(array, magic)
            name = f"{prefix}-{suffix}"
            if compress:
                name, payload = f"{name}.gz", gzip.compress(payload)
            (folder / name).write_bytes(payload)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_plain_and_gz(tmp_path, name, folder, compress):
    data = write_mnist(tmp_path / folder / "raw", np.random.default_rng(1), compress)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        loaded = load_split(name, split, root=tmp_path)
        assert loaded.images.dtype == np.uint8 and loaded.images.shape[1:] == (1, 28, 28)
        np.testing.assert_array_equal(loaded.images[:, 0], data[prefix][0])
        assert loaded.labels.dtype == np.int64
        np.testing.assert_array_equal(loaded.labels, data[prefix][1])
        np.testing.assert_array_equal(loaded.index, np.arange(len(loaded)))
    assert loaded.class_names == list(DATASETS[name].class_names)


def test_mnist_wrong_magic_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28)), 2049))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2), 2049))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic number 2049"):
        load_split("mnist", "train", root=tmp_path)


def test_mnist_truncated_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, np.random.default_rng(2))
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptDataError, match="train-images-idx3-ubyte.*truncated"):
        load_split("mnist", "train", root=tmp_path)
    write_mnist(raw, np.random.default_rng(2), compress=True)
    for f in raw.glob("*-ubyte"):
        f.unlink()
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:15])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        load_split("mnist", "test", root=tmp_path)


# -- CIFAR ---------------------------------------------------------------------------


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar10_pickles(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [n.encode() for n in DATASETS["cifar10"].class_names]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    batches = []
    for i in range(1, 6):
        data = pixels(rng, (4, 3072))
        labels = rng.integers(0, 10, 4).tolist()
        write_pickle(folder / f"data_batch_{i}", {b"data": data, b"labels": labels})
        batches.append((data, labels))
    test = pixels(rng, (3, 3072))
    write_pickle(folder / "test_batch", {b"data": test, b"labels": [1, 2, 9]})

    train = load_split("cifar10", "train", root=tmp_path)
    expected = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(train.images, expected)
    assert train.labels.tolist() == sum((b[1] for b in batches), [])
    assert train.class_names == list(DATASETS["cifar10"].class_names)
    # rows are channel planes (R 0..1023, G, B), each plane row-major
    assert train.images[0, 0, 0, 1] == batches[0][0][0, 1]
    assert train.images[0, 0, 1, 0] == batches[0][0][0, 32]
    assert train.images[0, 1, 0, 0] == batches[0][0][0, 1024]
    assert train.images[0, 2, 31, 31] == batches[0][0][0, 3071]
    loaded_test = load_split("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(loaded_test.images, test.reshape(-1, 3, 32, 32))
    assert loaded_test.labels.tolist() == [1, 2, 9]


def test_cifar10_corrupt_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "batches.meta", {b"label_names": [b"x"] * 10})
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    good = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="test_batch"):
        load_split("cifar10", "test", root=tmp_path)
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(CorruptDataError, match="test_batch.*N×3072"):
        load_split("cifar10", "test", root=tmp_path)


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(4)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = [n.encode() for n in CIFAR100_NAMES]
    coarse = [n.encode() for n in CIFAR100_COARSE_NAMES]
    write_pickle(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": coarse})
    for split, n in (("train", 6), ("test", 3)):
        data = pixels(rng, (n, 3072))
        record = {
            b"data": data,
            b"fine_labels": rng.integers(0, 100, n).tolist(),
            b"coarse_labels": rng.integers(0, 20, n).tolist(),
            b"filenames": [b"x.png"] * n,
        }
        write_pickle(folder / split, record)
        loaded = load_split("cifar100", split, root=tmp_path)
        np.testing.assert_array_equal(loaded.images, data.reshape(-1, 3, 32, 32))
        assert loaded.labels.tolist() == record[b"fine_labels"]
        assert loaded.class_names == list(CIFAR100_NAMES) and len(loaded.class_names) == 100
        by_coarse = load_split("cifar100", split, root=tmp_path, label_type="coarse")
        assert by_coarse.labels.tolist() == record[b"coarse_labels"]
        assert by_coarse.class_names[19] == "vehicles_2" and by_coarse.num_classes == 20
    with pytest.raises(ValueError, match="label_type"):
        load_split("cifar100", "train", root=tmp_path, label_type="medium")


# -- SVHN ----------------------------------------------------------------------------


def test_svhn_mat_labels_and_subsampling(tmp_path):
    rng = np.random.default_rng(5)
    n = 50
    x = pixels(rng, (32, 32, 3, n))  # H×W×C×N as in the .mat files
    digits = np.arange(n) % 10
    y = np.where(digits == 0, 10, digits).reshape(n, 1).astype(np.uint8)  # 0 stored as 10
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x[..., :20], "y": y[:20]})
    split = load_split("svhn", "train", root=tmp_path)
    np.testing.assert_array_equal(split.images, np.transpose(x, (3, 2, 0, 1)))
    assert split.images[7, 2, 3, 4] == x[3, 4, 2, 7]  # [n, c, h, w] == X[h, w, c, n]
    assert split.labels.tolist() == digits.tolist()

    params = {"n_train_per_class": 3, "n_test_per_class": 2, "seed": 1}
    sub = load_split("svhn", "train", root=tmp_path, **params)
    assert np.bincount(sub.labels).tolist() == [3] * 10
    np.testing.assert_array_equal(sub.images, split.images[sub.index])
    np.testing.assert_array_equal(sub.labels, split.labels[sub.index])
    same = load_split("svhn", "train", root=tmp_path, **params)
    np.testing.assert_array_equal(same.index, sub.index)
    other = load_split("svhn", "train", root=tmp_path, **{**params, "seed": 2})
    assert not np.array_equal(other.index, sub.index)
    assert (
        np.bincount(load_split("svhn", "test", root=tmp_path, **params).labels).tolist() == [2] * 10
    )
    with pytest.raises(ValueError, match="n_train_per_class=6"):
        load_split("svhn", "train", root=tmp_path, n_train_per_class=6)


def test_svhn_garbage_mat(tmp_path):
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 but not really" * 3)
    with pytest.raises(ValueError, match="test_32x32.mat"):
        load_split("svhn", "test", root=tmp_path)


# -- STL-10 --------------------------------------------------------------------------


def test_stl10_column_major_binaries(tmp_path):
    rng = np.random.default_rng(6)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    images = pixels(rng, (3, 3, 96, 96))  # N×C×H×W as we want them back
    # on disk each channel is column-major: write W before H
    images.transpose(0, 1, 3, 2).tofile(folder / "train_X.bin")
    np.array([1, 10, 4], np.uint8).tofile(folder / "train_y.bin")
    names = list(DATASETS["stl10"].class_names)
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    split = load_split("stl10", "train", root=tmp_path)
    np.testing.assert_array_equal(split.images, images)
    raw = np.fromfile(folder / "train_X.bin", np.uint8)
    assert split.images[0, 0, 1, 0] == raw[1]  # column-major: row index varies fastest
    assert split.images[0, 0, 0, 1] == raw[96]
    assert split.labels.tolist() == [0, 9, 3] and split.class_names == names
    (folder / "train_X.bin").write_bytes(raw[:-5].tobytes())
    with pytest.raises(CorruptDataError, match="train_X.bin.*multiple of 3×96×96"):
        load_split("stl10", "train", root=tmp_path)


# -- missing data --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,folder",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("stl10", "stl10_binary"),
        ("svhn", ""),
    ],
)
def test_missing_dataset_names_folder_files_and_fix(tmp_path, name, folder):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetMissingError) as info:
        load_split(name, "train", root=root)
    message = str(info.value)
    assert f"'{root / folder if folder else root}'" in message
    for file in DATASETS[name].files["train"]:
        assert file in message
    assert "--config 'data={download: true}'" in message
    assert "place the files there" in message and name in message
    assert not root.exists()  # nothing fetched, nothing created


def test_missing_error_shows_relative_root_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DatasetMissingError, match=r"'data/stl10_binary' \(data.root = 'data'; absolute path "
    ):
        load_split("stl10", "test", root="data")


def test_failed_download_is_a_missing_dataset_error(tmp_path, monkeypatch):
    from ncrepro.data import real

    def offline(name, root):
        raise OSError("network is unreachable")

    monkeypatch.setattr(real, "_download", offline)
    with pytest.raises(DatasetMissingError, match="network is unreachable"):
        load_split("cifar10", "train", root=tmp_path, download=True)


def test_download_then_parse(tmp_path, monkeypatch):
    from ncrepro.data import real

    calls = []

    def fake_download(name, root):  # stands in for torchvision's downloader
        calls.append(name)
        write_mnist(root / "MNIST" / "raw", np.random.default_rng(7), compress=True)

    monkeypatch.setattr(real, "_download", fake_download)
    assert len(load_split("mnist", "test", root=tmp_path, download=True)) == 5
    assert calls == ["mnist"]
    assert len(load_split("mnist", "train", root=tmp_path, download=True)) == 7
    assert calls == ["mnist"]  # files present: no second download


@pytest.mark.parametrize(
    "name,expected",
    [
        ("mnist", [("MNIST", {"train": True}), ("MNIST", {"train": False})]),
        ("fashion_mnist", [("FashionMNIST", {"train": True}), ("FashionMNIST", {"train": False})]),
        ("cifar10", [("CIFAR10", {"train": True})]),
        ("cifar100", [("CIFAR100", {"train": True})]),
        ("svhn", [("SVHN", {"split": "train"}), ("SVHN", {"split": "test"})]),
        ("stl10", [("STL10", {"split": "train"})]),
    ],
)
def test_download_calls_torchvision(tmp_path, monkeypatch, name, expected):
    """download=True asks torchvision's dataset class (faked here: no network, and no
    slow torchvision import) to fetch into data.root."""
    import sys
    import types

    calls = []

    def fake(cls_name):
        def construct(root, **kwargs):
            assert kwargs.pop("download") is True
            calls.append((cls_name, kwargs))
            assert root == str(tmp_path)

        return construct

    datasets = types.ModuleType("torchvision.datasets")
    for cls_name in ("MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "SVHN", "STL10"):
        setattr(datasets, cls_name, fake(cls_name))
    package = types.ModuleType("torchvision")
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    with pytest.raises(DatasetMissingError, match="still missing after the download"):
        load_split(name, "train", root=tmp_path, download=True)
    assert calls == expected


def test_unknown_names_and_params():
    with pytest.raises(ValueError, match="unknown dataset 'cifar99'"):
        load_split("cifar99", "train")
    with pytest.raises(ValueError, match="split must be"):
        load_split("digits", "val")
    with pytest.raises(ValueError, match="does not take param.*n_classes"):
        load_split("synth", "train", n_classes=3)


# -- synth ---------------------------------------------------------------------------


SMALL = dict(num_classes=6, num_superclasses=2, n_train_per_class=10, n_test_per_class=4)


def test_synth_deterministic_shapes_balanced():
    a = load_split("synth", "train", seed=3, **SMALL)
    b = load_split("synth", "train", seed=3, **SMALL)
    c = load_split("synth", "train", seed=4, **SMALL)
    test = load_split("synth", "test", seed=3, **SMALL)
    assert a.images.shape == (60, 3, 32, 32) and a.images.dtype == np.uint8
    assert a.labels.dtype == np.int64 and a.class_names == [f"class{i}" for i in range(6)]
    assert a.images.tobytes() == b.images.tobytes()
    assert a.images.tobytes() != c.images.tobytes()
    assert np.bincount(a.labels).tolist() == [10] * 6
    assert np.bincount(test.labels).tolist() == [4] * 6
    assert a.labels[:6].tolist() == list(range(6))  # interleaved: file-order prefixes balanced
    assert not np.array_equal(a.images[:24], test.images)  # different sample streams
    assert 60 < a.images.mean() < 195 and a.images.std() > 25  # not washed out or saturated
    assert ((a.images == 0) | (a.images == 255)).mean() < 0.05


def test_synth_bytes_are_pinned():
    """Same bytes on every machine: PCG64 + element-wise float64 arithmetic only."""
    images, labels = synth_module.generate(num_classes=3, n_per_class=2, seed=11)
    assert hashlib.sha256(images.tobytes()).hexdigest()[:16] == SYNTH_DIGEST
    assert labels.tolist() == [0, 1, 2, 0, 1, 2]


SYNTH_DIGEST = "d896d4bd09d38b17"


def test_synth_superclasses_share_structure():
    """Sibling classes (same superclass) are closer than classes of other superclasses."""
    assert superclass_groups(10, 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert superclass_groups(5, 2) == [[0, 1, 2], [3, 4]]
    split = load_split("synth", "train", n_train_per_class=60, difficulty=0.0, shift=0)
    means = np.stack([split.images[split.labels == c].mean(0).ravel() for c in range(10)])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    sup = np.arange(10) // 5
    same = dist[(sup[:, None] == sup[None]) & ~np.eye(10, dtype=bool)].mean()
    other = dist[sup[:, None] != sup[None]].mean()
    assert same < other


def test_synth_is_fast():
    import time

    t0 = time.process_time()  # CPU time: robust to a busy machine
    load_split("synth", "train", n_train_per_class=500)
    assert time.process_time() - t0 < 3  # budget 2 s (about 0.5 s on an idle core)


# -- digits --------------------------------------------------------------------------


DIGIT0 = [  # scikit-learn digits image 0 (values 0..16), a "0"
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
]
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_stratified_split():
    """Checked against scikit-learn's known data (importing sklearn.datasets is slow)."""
    train, test = load_split("digits", "train"), load_split("digits", "test")
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == np.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    assert len(train) + len(test) == 1797 and abs(len(test) - 0.3 * 1797) < 5
    assert set(train.index.tolist()).isdisjoint(test.index.tolist())
    both = np.concatenate([train.labels, test.labels])
    assert np.bincount(both).tolist() == DIGIT_COUNTS
    assert np.abs(np.bincount(test.labels) / DIGIT_COUNTS - 0.3).max() < 0.01  # stratified
    split = train if 0 in train.index else test
    row = int(np.flatnonzero(split.index == 0)[0])
    expected = np.rint(np.array(DIGIT0) * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(split.images[row, 0], expected)
    assert split.labels[row] == 0
    again = load_split("digits", "test")
    np.testing.assert_array_equal(again.index, test.index)
    assert abs(len(load_split("digits", "test", test_fraction=0.5)) - 1797 / 2) < 5
    other_seed = load_split("digits", "test", seed=1)
    assert not np.array_equal(other_seed.index, test.index)


# -- prepare / load_prepared ----------------------------------------------------------


def test_prepare_manifest_and_tamper_detection(tmp_path):
    params = {"num_classes": 4, "n_train_per_class": 5, "n_test_per_class": 3, "seed": 0}
    out = tmp_path / "prepared"
    manifest = prepare("synth", params, "data", False, out)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["dataset"] == "synth" and manifest["params"] == params
    assert manifest["format_version"] == 1
    assert manifest["source"]["kind"] == "generated"
    assert manifest["superclasses"] == [[0, 1], [2, 3]]
    train = manifest["splits"]["train"]
    assert train["per_class"] == [5, 5, 5, 5] and manifest["splits"]["test"]["n"] == 12
    assert train["shape"] == [20, 3, 32, 32] and train["dtype"] == "uint8"
    assert train["sha256"] == hashlib.sha256((out / "train.npz").read_bytes()).hexdigest()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    split = load_prepared(out, "train")
    direct = load_split("synth", "train", **params)
    assert isinstance(split, RawSplit) and split.class_names == direct.class_names
    np.testing.assert_array_equal(split.images, direct.images)
    np.testing.assert_array_equal(split.labels, direct.labels)
    assert split.labels.dtype == np.int64 and split.index.dtype == np.int64

    again = prepare("synth", params, "data", False, tmp_path / "again")
    assert again["splits"] == manifest["splits"]  # same data -> same bytes

    with open(out / "test.npz", "r+b") as f:
        f.seek(200)
        f.write(b"\x00tampered")
    with pytest.raises(ValueError, match=r"test\.npz.*sha256 does not match"):
        load_prepared(out, "test")
    (out / "train.npz").unlink()
    with pytest.raises(FileNotFoundError, match="train.npz"):
        load_prepared(out, "train")


def test_prepare_real_dataset_records_root_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_mnist(tmp_path / "data" / "FashionMNIST" / "raw", np.random.default_rng(8))
    manifest = prepare("fashion_mnist", {}, "data", False, tmp_path / "out")
    assert manifest["source"] == {
        "kind": "root",
        "root": "data",
        "folder": "data/FashionMNIST/raw",
    }
    assert str(tmp_path) not in (tmp_path / "out" / "manifest.json").read_text()
    assert manifest["splits"]["test"]["shape"] == [5, 1, 28, 28]
    loaded = load_prepared(tmp_path / "out", "test")
    np.testing.assert_array_equal(loaded.index, np.arange(5))


def test_prepare_missing_dataset_writes_nothing(tmp_path):
    with pytest.raises(DatasetMissingError):
        prepare("cifar10", {}, str(tmp_path / "data"), False, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- views ---------------------------------------------------------------------------


def test_balanced_subset():
    labels = np.repeat(np.arange(4), 25)[np.random.default_rng(0).permutation(100)]
    a, b = balanced_subset(labels, 40, seed=0), balanced_subset(labels, 40, seed=1)
    assert np.bincount(labels[a]).tolist() == [10] * 4
    assert (np.diff(a) > 0).all() and a.dtype == np.int64
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, balanced_subset(labels, 40, seed=0))
    with pytest.raises(ValueError, match="not divisible"):
        balanced_subset(labels, 42, seed=0)
    with pytest.raises(ValueError, match="class 0 has 25 samples, 26 requested"):
        balanced_subset(labels, 104, seed=0)


def test_relabel():
    labels = np.array([0, 1, 2, 3, 4, 2, 0, 4])
    index, new = relabel(labels, [[0, 2], [4]])
    assert index.tolist() == [0, 2, 4, 5, 6, 7]
    assert new.tolist() == [0, 0, 1, 0, 0, 1]
    index, new = relabel(labels, [[7], [1]])  # ids beyond the labels present are fine
    assert index.tolist() == [1] and new.tolist() == [1]
    with pytest.raises(ValueError, match="more than one group"):
        relabel(labels, [[0, 1], [1, 2]])


def test_disjoint_pools():
    labels = np.repeat(np.arange(4), 25)[np.random.default_rng(1).permutation(100)]
    pools = disjoint_pools(labels, [10, 5, 8], seed=2)
    assert [len(p) for p in pools] == [40, 20, 32]
    for p, size in zip(pools, (10, 5, 8), strict=True):
        assert np.bincount(labels[p]).tolist() == [size] * 4
    for i in range(3):
        for j in range(i + 1, 3):
            assert not set(pools[i]) & set(pools[j])
    same = disjoint_pools(labels, [10, 5, 8], seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(pools, same, strict=True))
    other = disjoint_pools(labels, [10, 5, 8], seed=3)
    assert not np.array_equal(pools[0], other[0])
    with pytest.raises(ValueError, match="has 25 samples, the pools need 26"):
        disjoint_pools(labels, [20, 6], seed=0)

    first = disjoint_pools(labels, [30, 20], seed=None, mode="first_n")
    assert first[0].tolist() == list(range(30)) and first[1].tolist() == list(range(30, 50))
    with pytest.raises(ValueError, match="pools need 120 rows"):
        disjoint_pools(labels, [100, 20], seed=None, mode="first_n")
