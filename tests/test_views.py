"""Run views (fig4 subsets, fig5 superclass pools) and the runs the presets imply."""

from types import SimpleNamespace

import numpy as np
import pytest

from ncrepro.config import load_config
from ncrepro.data.views import apply_view, num_classes
from ncrepro.runspec import probe_jobs
from ncrepro.studies import build_run_sheet
from ncrepro.studies.nc_limits.runs import train_size_runs, transfer_runs


def preset_config(repo, preset: str) -> dict:
    """A preset is an overlay on config.yaml (as `--configfile` applies it)."""
    files = [repo / "config.yaml"] + ([repo / preset] if preset != "config.yaml" else [])
    return load_config(*files)


def fake_split(per_class: int, classes: int = 10, shuffle_seed: int = 0):
    """Labels in a shuffled file order (like a real split), images = their row number."""
    labels = np.repeat(np.arange(classes), per_class)
    labels = np.random.default_rng(shuffle_seed).permutation(labels)
    images = np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1)
    return SimpleNamespace(images=images, labels=labels)


def test_subset_is_balanced_and_differs_per_seed():
    raw = fake_split(50)
    picks = []
    for seed in (0, 1, 2):
        images, labels, index = apply_view(
            {"kind": "subset", "n_train": 200, "seed": seed}, "train", raw
        )
        assert np.bincount(labels).tolist() == [20] * 10
        assert np.array_equal(labels, raw.labels[index])
        assert np.array_equal(images[:, 0, 0, 0], index)  # the images are those rows
        picks.append(set(index.tolist()))
    assert picks[0] != picks[1] != picks[2]
    again = apply_view({"kind": "subset", "n_train": 200, "seed": 1}, "train", raw)[2]
    assert set(again.tolist()) == picks[1]
    # the test split is never subsampled
    _, test_labels, test_index = apply_view(
        {"kind": "subset", "n_train": 200, "seed": 0}, "test", raw
    )
    assert np.array_equal(test_index, np.arange(len(raw.labels)))


CIFAR_VIEW = {
    "kind": "superclass",
    "groups": [[0, 1, 8, 9], [2, 3, 6, 7]],
    "pools": {"mode": "per_class", "seed": 0, "train": [2500, 1250], "test": [500, 250]},
}
MNIST_VIEW = {
    "kind": "superclass",
    "groups": [[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]],
    "pools": {"mode": "first_n", "train": [1000, 500], "test": [200, 100]},
}


@pytest.mark.parametrize(
    ("view", "per_class", "sizes"),
    [
        # CIFAR-10: 5000/1000 per class; 2500/500 per class pretraining, 10 000/2000 fine-tuning
        (
            CIFAR_VIEW,
            {"train": 5000, "test": 1000},
            {"train": (20000, 10000), "test": (4000, 2000)},
        ),
        # MNIST-like: first 1000/200 pretraining, another 500/100 fine-tuning
        (MNIST_VIEW, {"train": 600, "test": 100}, {"train": (1000, 500), "test": (200, 100)}),
    ],
)
def test_superclass_pools_never_overlap(view, per_class, sizes):
    for split in ("train", "test"):
        raw = fake_split(per_class[split], shuffle_seed=len(split))
        _, pre_labels, pre = apply_view(view, split, raw, task="pretrain")
        _, fine_labels, fine = apply_view(view, split, raw, task="finetune")
        assert (len(pre), len(fine)) == sizes[split]
        assert not set(pre.tolist()) & set(fine.tolist())
        classes = [c for group in view["groups"] for c in group]
        assert np.isin(raw.labels[pre], classes).all() and np.isin(raw.labels[fine], classes).all()
        # pretraining labels are the superclass; fine-tuning labels the original class
        group_of = {c: g for g, group in enumerate(view["groups"]) for c in group}
        assert pre_labels.tolist() == [group_of[int(c)] for c in raw.labels[pre]]
        assert fine_labels.tolist() == [classes.index(int(c)) for c in raw.labels[fine]]
        if view["pools"]["mode"] == "first_n":  # the first rows of those classes, in file order
            grouped = np.flatnonzero(np.isin(raw.labels, classes))
            assert np.array_equal(pre, grouped[: sizes[split][0]])
            assert np.array_equal(fine, grouped[sizes[split][0] : sum(sizes[split])])
        else:  # balanced per class
            assert set(np.bincount(raw.labels[pre])[classes]) == {len(pre) // len(classes)}
    assert num_classes(view, 10) == 2 and num_classes(view, 10, "finetune") == len(classes)


@pytest.mark.parametrize("preset", ["config.yaml", "presets/smoke.yaml", "presets/paper.yaml"])
def test_preset_transfer_pools_fit_and_never_overlap(repo, preset):
    """Every transfer setting of every preset, on splits with the dataset's class counts."""
    config = preset_config(repo, preset)
    counts = {
        "mnist": (6000, 1000),
        "cifar10": (5000, 1000),
        "digits": (122, 52),
        "synth10": (100, 50),
    }
    settings = transfer_runs(config)
    assert settings
    for spec in (run.spec for run in settings):
        for split, n in zip(("train", "test"), counts[spec["dataset"]["key"]], strict=True):
            raw = fake_split(n)
            pre = apply_view(spec["view"], split, raw, task="pretrain")[2]
            fine = apply_view(spec["view"], split, raw, task="finetune")[2]
            assert len(pre) and len(fine) and not set(pre.tolist()) & set(fine.tolist())


def test_paper_preset_runs_and_probe_jobs(repo):
    config = preset_config(repo, "presets/paper.yaml")
    sizes = [run.spec for run in train_size_runs(config)]
    for dataset, arch in (("cifar10", "resnet18"), ("fashion_mnist", "vgg11_bn")):
        cell = [s for s in sizes if s["dataset"]["key"] == dataset]
        assert all(s["arch"] == arch for s in cell)
        assert sorted((s["view"]["n_train"], s["seed"]) for s in cell) == [
            (n, s) for n in (12500, 25000, 30000, 40000, 50000) for s in range(5)
        ]
    for spec in sizes:  # fig4 runs stop on the loss criterion, final checkpoint only
        assert spec["training"]["stop_loss"] == 1e-6
        assert spec["checkpoint_steps"] == [spec["training"]["steps"]]
    sheet, specs = build_run_sheet(config)
    assert (sheet["experiment"] == "train_size").sum() == 50
    assert sheet.loc[sheet["experiment"] == "train_size", "run"].nunique() == 50
    transfer = [run.spec for run in transfer_runs(config)]
    assert len(transfer) == 10  # 2 settings x 5 seeds
    jobs = probe_jobs(specs)
    lrs = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25]
    assert len(jobs) == sum(len(s["checkpoint_steps"]) for s in transfer) * len(lrs)
    assert len(set(jobs)) == len(jobs)
    assert {lr for _, _, lr in jobs} == set(lrs)
