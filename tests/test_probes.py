"""Transfer probes (ncrepro.probes), Lemma 1 of Hui et al. (2022), and figures 4-5.

Lemma 1: if a representation maps every input of a balanced 2k-class task onto one
of two points (its binary superclass), then *every* classifier of the representation
has accuracy <= 1/k. On an exactly balanced test set the bound is exact (each of the
two points can be assigned one label, worth 1/(2k) of the test set each); on an i.i.d.
test set it holds up to binomial sampling error. Controls with non-collapsed features
show that the same probes clear 1/k by far, so these tests can fail.
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ncrepro.figures import save_figure
from ncrepro.models import build_model
from ncrepro.probes import (
    extract_features,
    finetune_probe,
    linear_probe,
    lr_sweep,
    select_best,
    sweep_rows,
)
from ncrepro.studies.nc_limits.transfer_figures import FIGURES, best_finetune
from ncrepro.train.device_data import Normalizer

D = 16  # feature dimension of the constructed representations


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: one intra-op thread is ~30x faster than two on a busy 2-core box."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------- task data
def superclass_of(labels, k: int, kind: str) -> np.ndarray:
    labels = np.asarray(labels)
    return labels % 2 if kind == "parity" else (labels >= k).astype(np.int64)


def balanced_labels(num_classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(num_classes), per_class).astype(np.int64)


def class_images(labels, seed: int) -> np.ndarray:
    """1x8x8 uint8 images whose class is plainly visible: pixel `label` is 255 on a
    background of noise in [0, 60)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), 1, 8, 8)).astype(np.uint8)
    images.reshape(len(labels), -1)[np.arange(len(labels)), labels] = 255
    return images


def collapsed_features(labels, k, kind, mu) -> np.ndarray:
    return mu[superclass_of(labels, k, kind)]


class CollapsedNet(nn.Module):
    """A perfectly test-collapsed binary 'pretrained' model: its penultimate layer
    reads the class from the image and outputs the superclass point mu[F(y)]. The
    backbone has no parameters, so fine-tuning can only train the new head."""

    def __init__(self, mu: np.ndarray, superclass: np.ndarray):
        super().__init__()
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
        self.register_buffer("superclass", torch.tensor(superclass, dtype=torch.long))
        self.classifier = nn.Linear(mu.shape[1], 2)

    @property
    def feature_dim(self) -> int:
        return self.mu.shape[1]

    def penultimate(self, x):
        label = x.flatten(1)[:, : len(self.superclass)].argmax(1)
        return self.mu[self.superclass[label]]

    def forward(self, x):
        return self.classifier(self.penultimate(x))


def binomial_slack(k: int, n: int) -> float:
    return 3 * math.sqrt((1 / k) * (1 - 1 / k) / n)


SKLEARN = {
    "knn": lambda: __import__("sklearn.neighbors").neighbors.KNeighborsClassifier(5),
    "tree": lambda: __import__("sklearn.tree").tree.DecisionTreeClassifier(random_state=0),
    "forest": lambda: __import__("sklearn.ensemble").ensemble.RandomForestClassifier(
        n_estimators=10, random_state=0
    ),
}


# ---------------------------------------------------------------------------- Lemma 1
@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("kind", ["parity", "halves"])
def test_lemma1_collapsed_features_cap_every_probe_at_one_over_k(k, kind):
    K, bound = 2 * k, 1 / k
    rng = np.random.default_rng(k)
    mu = rng.normal(size=(2, D))
    y_train, y_test = balanced_labels(K, 20), balanced_labels(K, 30)
    h_train = collapsed_features(y_train, k, kind, mu)
    h_test = collapsed_features(y_test, k, kind, mu)
    accs = {}

    # every function f: {mu_0, mu_1} -> [2k] (the lemma's quantifier, exhaustively)
    s_test = superclass_of(y_test, k, kind)
    best_f = max(
        np.mean(np.where(s_test == 0, f0, f1) == y_test)
        for f0, f1 in itertools.product(range(K), repeat=2)
    )
    assert best_f == pytest.approx(bound)  # the bound is attained, never exceeded

    for method in ("logistic", "ridge"):
        r = linear_probe(h_train, y_train, h_test, y_test, num_classes=K, method=method)
        accs[f"linear_{method}"] = r["accuracy"]
    for name, make in SKLEARN.items():
        accs[name] = float(np.mean(make().fit(h_train, y_train).predict(h_test) == y_test))

    # fine-tune-style: a frozen collapsed backbone reading real images, new head trained
    superclass = superclass_of(np.arange(K), k, kind)
    net = CollapsedNet(mu, superclass)
    x_train, x_test = class_images(y_train, 0), class_images(y_test, 1)
    ft = finetune_probe(
        net,
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=K,
        lr=0.1,
        steps=80,
        batch_size=32,
        seed=0,
        normalizer=Normalizer.fit(x_train, "none"),
    )
    assert ft["status"] == "completed"
    accs["finetune"] = ft["accuracy"]
    # the backbone really is collapsed on these images
    feats = extract_features(net, x_test, normalizer=Normalizer.fit(x_train, "none"))
    assert np.allclose(feats, h_test, atol=1e-6)

    for name, acc in accs.items():
        assert acc <= bound + 1e-12, (name, acc, bound)
    # probes that learn the superclass reach the bound exactly: they do work
    assert accs["linear_logistic"] == pytest.approx(bound)
    assert accs["finetune"] == pytest.approx(bound)

    # i.i.d. (not exactly balanced) test draw: <= 1/k within binomial sampling error
    y_iid = rng.integers(0, K, size=400)
    h_iid = collapsed_features(y_iid, k, kind, mu)
    r = linear_probe(h_train, y_train, h_iid, y_iid, num_classes=K)
    assert r["accuracy"] <= bound + binomial_slack(k, len(y_iid))


@pytest.mark.parametrize("k", [2, 5])
def test_non_collapsed_features_clear_one_over_k(k):
    """Control: class-specific means + noise; the same probes must beat 1/k by far."""
    K, bound = 2 * k, 1 / k
    rng = np.random.default_rng(10 + k)
    means = rng.normal(size=(K, D))
    y_train, y_test = balanced_labels(K, 20), balanced_labels(K, 30)
    h_train = means[y_train] + 0.3 * rng.normal(size=(len(y_train), D))
    h_test = means[y_test] + 0.3 * rng.normal(size=(len(y_test), D))
    for method in ("logistic", "ridge"):
        acc = linear_probe(h_train, y_train, h_test, y_test, num_classes=K, method=method)
        assert acc["accuracy"] > bound + 0.3, (method, acc)
    knn = SKLEARN["knn"]().fit(h_train, y_train)
    assert np.mean(knn.predict(h_test) == y_test) > bound + 0.3

    # fine-tuning a real (non-collapsed) MLP on the same kind of images as the
    # collapsed test: the images carry the class, only the collapsed backbone hides it
    torch.manual_seed(0)
    mlp = build_model("mlp", num_classes=2, in_channels=1, image_size=8, hidden=32)
    x_train, x_test = class_images(y_train, 0), class_images(y_test, 1)
    ft = finetune_probe(
        mlp,
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=K,
        lr=0.1,
        steps=150,
        batch_size=32,
        seed=0,
        normalizer="pixel",
    )
    assert ft["status"] == "completed"
    assert ft["accuracy"] > bound + 0.3, ft


# ----------------------------------------------------------------------- probe mechanics
def _tiny_task():
    y_train, y_test = balanced_labels(4, 12), balanced_labels(4, 6)
    return class_images(y_train, 0), y_train, class_images(y_test, 1), y_test


def test_finetune_is_deterministic_and_leaves_the_pretrained_model_alone():
    x_train, y_train, x_test, y_test = _tiny_task()
    torch.manual_seed(1)
    model = build_model("mlp", num_classes=2, in_channels=1, image_size=8, hidden=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kwargs = dict(num_classes=4, lr=0.05, steps=30, batch_size=16, normalizer="pixel")
    rng_state = torch.get_rng_state()
    a = finetune_probe(model, x_train, y_train, x_test, y_test, seed=3, return_model=True, **kwargs)
    assert torch.equal(torch.get_rng_state(), rng_state)  # caller's RNG untouched
    b = finetune_probe(model, x_train, y_train, x_test, y_test, seed=3, return_model=True, **kwargs)
    c = finetune_probe(model, x_train, y_train, x_test, y_test, seed=4, return_model=True, **kwargs)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    net_a, net_b, net_c = a.pop("model"), b.pop("model"), c.pop("model")
    assert a == b and a["status"] == "completed" and a["steps_done"] == 30
    for key, value in net_a.state_dict().items():
        assert torch.equal(value, net_b.state_dict()[key]), key
    assert net_a.classifier.out_features == 4
    assert not torch.equal(net_a.classifier.weight, net_c.classifier.weight)
    for key in ("accuracy", "train_accuracy", "train_loss", "test_loss"):
        assert math.isfinite(a[key])


def test_finetune_divergence_is_a_status_not_an_exception():
    x_train, y_train, x_test, y_test = _tiny_task()
    model = build_model("mlp", num_classes=2, in_channels=1, image_size=8, hidden=32)
    r = finetune_probe(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=4,
        lr=1e8,
        steps=30,
        batch_size=16,
        seed=0,
        normalizer="pixel",
    )
    assert r["status"] == "diverged" and r["steps_done"] < 30
    assert math.isnan(r["accuracy"]) and math.isnan(r["train_loss"])


@pytest.mark.parametrize("classifier", [{"bias": False}, "none"])
def test_finetune_a_model_with_head_or_without_classifier(classifier):
    """The probe's new head reads the embedding (the classifier's input); an encoder
    without classifier gets one; the embedding head is fine-tuned with the rest."""
    x_train, y_train, x_test, y_test = _tiny_task()
    torch.manual_seed(1)
    model = build_model(
        "mlp",
        num_classes=2,
        in_channels=1,
        image_size=8,
        hidden=32,
        head={"kind": "linear", "width": 6},
        classifier=classifier,
    )
    r = finetune_probe(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=4,
        lr=0.05,
        steps=30,
        batch_size=16,
        seed=0,
        normalizer="pixel",
        return_model=True,
    )
    net = r.pop("model")
    assert r["status"] == "completed" and math.isfinite(r["accuracy"])
    assert net.classifier.in_features == 6 and net.classifier.bias is not None
    assert not torch.equal(net.embedding[0].weight, model.embedding[0].weight)
    assert model.classifier is None if classifier == "none" else model.classifier.bias is None


def test_linear_probe_non_finite_features_are_diverged():
    h = np.ones((8, 3))
    h[0, 0] = np.nan
    r = linear_probe(h, np.arange(8) % 2, np.ones((4, 3)), np.arange(4) % 2, num_classes=2)
    assert r["status"] == "diverged" and math.isnan(r["accuracy"])


def test_lr_sweep_best_ignores_divergence_and_breaks_ties_to_the_smaller_lr():
    table = {
        0.001: (0.5, "completed"),
        0.01: (0.8, "completed"),
        0.1: (0.8, "completed"),
        0.25: (0.99, "diverged"),
        0.5: (float("nan"), "completed"),
    }
    calls = []

    def fake_probe(*, lr, seed):
        calls.append((lr, seed))
        acc, status = table[lr]
        return {"accuracy": acc, "status": status, "train_loss": 0.1, "model": object()}

    out = lr_sweep(fake_probe, [0.25, 0.1, 0.01, 0.001, 0.5], seed=7)
    assert calls == [(0.25, 7), (0.1, 7), (0.01, 7), (0.001, 7), (0.5, 7)]
    assert out["best_lr"] == 0.01 and out["best_accuracy"] == 0.8
    assert out["n_diverged"] == 1
    assert [e["lr"] for e in out["sweep"]] == [0.25, 0.1, 0.01, 0.001, 0.5]
    assert all("model" not in e and {"lr", "accuracy", "status"} <= set(e) for e in out["sweep"])
    assert select_best([{"lr": 0.1, "accuracy": 0.9, "status": "diverged"}]) == (
        None,
        pytest.approx(float("nan"), nan_ok=True),
    )
    rows = sweep_rows(out, run="r", step=5, seed=0)
    test_acc = [r for r in rows if r["metric"] == "finetune_accuracy" and r["split"] == "test"]
    assert len(test_acc) == 5 and {r["probe_status"] for r in test_acc} == {"completed", "diverged"}
    frame = pd.DataFrame(rows)
    frame["experiment"] = "transfer"
    best = best_finetune(frame)
    assert best.loc[0, "best"] == 0.8 and best.loc[0, "best_lr"] == 0.01
    assert best.loc[0, "n_diverged"] == 2  # the diverged LR and the NaN one


def test_finetune_sweep_on_a_real_model():
    x_train, y_train, x_test, y_test = _tiny_task()
    model = build_model("mlp", num_classes=2, in_channels=1, image_size=8, hidden=32)
    out = lr_sweep(
        finetune_probe,
        [0.05, 1e8],
        model=model,
        train_images=x_train,
        train_labels=y_train,
        test_images=x_test,
        test_labels=y_test,
        num_classes=4,
        steps=20,
        batch_size=16,
        seed=0,
        normalizer="pixel",
    )
    assert [e["status"] for e in out["sweep"]] == ["completed", "diverged"]
    assert out["best_lr"] == 0.05 and out["best_accuracy"] == out["sweep"][0]["accuracy"]


# ----------------------------------------------------------------------------- figures
SHEET = {"batch_size": 128, "weight_decay": 5e-4, "width": 0.125, "loss": "cross_entropy"}


def synthetic_table() -> pd.DataFrame:
    """A small long table with the fig4 ('train_size') and fig5 ('transfer') contract."""
    rng = np.random.default_rng(0)
    rows = []
    # fig4: two panels, three train sizes, three seeds; one run diverged
    for dataset, arch, lr in (("cifar10", "resnet18", 0.1), ("fashion_mnist", "vgg11_bn", 0.01)):
        for n_train in (1000, 2000, 4000):
            for seed in range(3):
                run = f"{arch}-{dataset}-n{n_train}-s{seed}"
                status = "capped" if n_train == 4000 and seed == 0 else "stopped_on_loss"
                if dataset == "cifar10" and n_train == 1000 and seed == 2:
                    status = "diverged"
                final = 300 + 100 * int(np.log2(n_train / 1000)) + seed
                scale = n_train / 1000
                for step in (50, final):
                    late = step == final
                    values = {
                        ("train", "train_variance"): (0.01 * scale if late else 0.5)
                        * (1 + 0.1 * rng.normal()),
                        ("test", "strong_test_variance"): (2.0 - 0.4 * np.log2(scale))
                        * (1 + 0.05 * rng.normal()),
                        ("test", "accuracy"): 0.6 + 0.08 * np.log2(scale) + 0.01 * rng.normal(),
                        ("train", "accuracy"): 1.0,
                    }
                    for (split, metric), value in values.items():
                        rows.append(
                            dict(
                                experiment="train_size",
                                run=run,
                                dataset=dataset,
                                arch=arch,
                                seed=seed,
                                view="full",
                                n_train=n_train,
                                step=step,
                                split=split,
                                metric=metric,
                                lr=lr,
                                steps=2000,
                                status=status,
                                value=np.nan if status == "diverged" else value,
                                **SHEET,
                            )
                        )
    # fig5: two panels, four checkpoints, three seeds, a 4-LR sweep with one diverging
    lrs = [0.001, 0.01, 0.1, 0.25]
    for dataset, arch, view, n in (
        ("digits", "mlp", "odd_even", 1000),
        ("cifar10", "resnet18", "objects_animals", 20000),
    ):
        for seed in range(3):
            run = f"{arch}-{dataset}-super-s{seed}"
            base = dict(
                experiment="transfer",
                run=run,
                dataset=dataset,
                arch=arch,
                seed=seed,
                view=view,
                n_train=n,
                lr=0.1,
                steps=10000,
                status="completed",
                **SHEET,
            )
            for i, step in enumerate((10, 100, 1000, 10000)):
                variance = 1.5 * 0.45**i * (1 + 0.05 * rng.normal())
                rows.append(
                    {
                        **base,
                        "step": step,
                        "split": "test",
                        "metric": "strong_test_variance",
                        "value": variance,
                    }
                )
                rows.append(
                    {
                        **base,
                        "step": step,
                        "split": "train",
                        "metric": "train_variance",
                        "value": variance / 10,
                    }
                )
                sweep = {
                    "sweep": [
                        {
                            "lr": lr,
                            "accuracy": np.nan
                            if lr == 0.25
                            else 0.9 - 0.05 * i - 0.1 * abs(j - 2) + 0.01 * rng.normal(),
                            "status": "diverged" if lr == 0.25 else "completed",
                            "train_accuracy": 1.0,
                        }
                        for j, lr in enumerate(lrs)
                    ]
                }
                for r in sweep_rows(sweep, run=run, step=step):
                    rows.append({**base, **r})
                if dataset == "digits":
                    rows.append(
                        {
                            **base,
                            "step": step,
                            "split": "test",
                            "probe": "linear",
                            "metric": "linear_probe_accuracy",
                            "value": 0.5 - 0.08 * i,
                        }
                    )
    return pd.DataFrame(rows)


CONFIG = {
    "datasets": {
        "cifar10": {"source": "cifar10"},
        "fashion_mnist": {"source": "fashion_mnist"},
        "digits": {"source": "digits", "stands_in_for": "MNIST"},
    },
    "nc_limits": {"transfer": {"arch_stands_in_for": {"mlp": "MLP 3x1024"}}},
}


def test_figures_render(tmp_path):
    table = synthetic_table()
    fig, rows, caption = FIGURES["fig4"](table, CONFIG)
    assert set(rows["experiment"]) == {"train_size"}
    assert set(zip(rows["metric"], rows["split"], strict=True)) == {
        ("train_variance", "train"),
        ("strong_test_variance", "test"),
        ("accuracy", "test"),
    }
    assert rows.groupby("run")["step"].nunique().max() == 1  # end of training only
    assert "1 diverged" in caption and "Spearman" in caption
    assert save_figure(fig, tmp_path / "fig4.pdf").exists()

    fig, rows, caption = FIGURES["fig5"](table, CONFIG)
    assert set(rows["experiment"]) == {"transfer"}
    assert "24 of 96 fine-tunes diverged" in caption  # one LR of every sweep
    assert "stands in for MNIST" in caption and "MLP stands in for MLP 3x1024" in caption
    assert save_figure(fig, tmp_path / "fig5.pdf").exists()
    assert (tmp_path / "fig5.pdf").exists()


def test_figures_render_without_their_rows(tmp_path):
    empty = synthetic_table().iloc[:0]
    for name, make in FIGURES.items():
        fig, rows, caption = make(empty, {})
        assert rows.empty and caption
        assert save_figure(fig, tmp_path / f"{name}.pdf").exists()
