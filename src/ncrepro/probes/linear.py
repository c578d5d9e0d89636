"""Linear probe on frozen penultimate features.

Default method "logistic": multinomial logistic regression (scikit-learn's
LogisticRegression, lbfgs, L2 penalty with inverse strength `C`) on features
standardized with the train features' per-dimension mean and std (constant
dimensions are left unscaled). This is the usual "linear probing" of
representation learning. Alternative "ridge": the closed-form ridge classifier
on the same standardized features plus an unpenalized bias,
    W = argmin (1/n)‖X W − Y‖² + λ‖W‖²,   Y one-hot,   prediction argmax(X W),
solved by the normal equations (the estimator of Munn et al. 2024's 5-shot probe).

The paper (Hui et al. 2022, §4.2) reports only fine-tuning, noting that linear
probing transfers much worse; the linear probe here serves Lemma 1 checks and as
a cheap extra series.
"""

from __future__ import annotations

import warnings

import numpy as np


def _standardize(train: np.ndarray, test: np.ndarray):
    mean = train.mean(0)
    std = train.std(0)
    std = np.where(std < 1e-12, 1.0, std)
    return (train - mean) / std, (test - mean) / std


def _ridge(x_train, y_train, x_test, num_classes: int, lam: float):
    n = len(x_train)
    x1 = np.hstack([x_train, np.ones((n, 1))])
    targets = np.eye(num_classes)[y_train]
    penalty = lam * np.eye(x1.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not penalized
    w = np.linalg.lstsq(x1.T @ x1 / n + penalty, x1.T @ targets / n, rcond=None)[0]

    def predict(x):
        return (np.hstack([x, np.ones((len(x), 1))]) @ w).argmax(1)

    return predict(x_train), predict(x_test), True


def _logistic(x_train, y_train, x_test, C: float, max_iter: int, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_train)) < 2:  # sklearn refuses a single class: predict it
        return np.full(len(x_train), y_train[0]), np.full(len(x_test), y_train[0]), True
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    converged = bool(np.all(clf.n_iter_ < max_iter))
    return clf.predict(x_train), clf.predict(x_test), converged


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    num_classes: int,
    method: str = "logistic",
    C: float = 1.0,
    ridge: float = 1e-3,
    max_iter: int = 1000,
    standardize: bool = True,
    seed: int = 0,
    return_predictions: bool = False,
) -> dict:
    """Fit a linear classifier on frozen train features, report test accuracy.

    method "logistic" (default; `C`, `max_iter`) or "ridge" (`ridge` = λ above).
    Returns {"status", "method", "accuracy" (test), "train_accuracy", "converged",
    "n_train", "n_test"}, and with `return_predictions` the predicted labels
    "test_predictions" and "train_predictions" (None when diverged). Non-finite features
    (e.g. from a diverged checkpoint) give status "diverged" and NaN accuracies instead
    of an exception.
    """
    x_train = np.asarray(train_features, np.float64)
    x_test = np.asarray(test_features, np.float64)
    y_train = np.asarray(train_labels, np.int64)
    y_test = np.asarray(test_labels, np.int64)
    result = {
        "status": "completed",
        "method": method,
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
    }
    if y_train.size and (y_train.min() < 0 or y_train.max() >= num_classes):
        raise ValueError(f"train labels must lie in [0, {num_classes})")
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        return {
            **result,
            "status": "diverged",
            "accuracy": float("nan"),
            "train_accuracy": float("nan"),
            "converged": False,
            **({"test_predictions": None, "train_predictions": None} if return_predictions else {}),
        }
    if standardize:
        x_train, x_test = _standardize(x_train, x_test)
    if method == "logistic":
        p_train, p_test, converged = _logistic(x_train, y_train, x_test, C, max_iter, seed)
    elif method == "ridge":
        p_train, p_test, converged = _ridge(x_train, y_train, x_test, num_classes, ridge)
    else:
        raise ValueError(f"unknown linear probe method {method!r}")
    predictions = {"test_predictions": p_test, "train_predictions": p_train}
    return {
        **result,
        "accuracy": float(np.mean(p_test == y_test)),
        "train_accuracy": float(np.mean(p_train == y_train)),
        "converged": converged,
        **(predictions if return_predictions else {}),
    }


def linear_probe_checkpoints(context, settings: dict, log=print) -> list[dict]:
    """The registered "linear" probe: at every checkpoint, `linear_probe` on the frozen
    features of the run's `settings["task"]` pool ("finetune": the disjoint
    fine-tuning pool of a superclass view, with the finer labels; "pretrain": the run's
    own train/test splits), scored on its test split. `settings["representation"]`:
    "penultimate" (default: the classifier's input) or "backbone" (the backbone's output,
    before any head: the representation of a SupCon encoder, whose penultimate features
    are its projection head's output); recorded in the rows. Other settings (method, C,
    ridge, max_iter, standardize) pass through to `linear_probe`."""
    from ncrepro.probes.finetune import extract_features

    options = dict(settings)
    task = options.pop("task", "finetune")
    representation = options.pop("representation", "penultimate")
    pools = {s: context.view(s, task=task) for s in ("train", "test")}
    rows = []
    for entry in context.checkpoints():
        model = context.model_at(entry["step"])
        feats = {
            s: extract_features(
                model,
                pools[s][0],
                normalizer=context.normalizer,
                device=context.torch_device,
                representation=representation,
            )
            for s in pools
        }
        result = linear_probe(
            feats["train"],
            pools["train"][1],
            feats["test"],
            pools["test"][1],
            num_classes=context.num_classes(task),
            seed=context.spec["seed"],
            **options,
        )
        log(f"linear probe at step {entry['step']}: {result['accuracy']:.4f} test accuracy")
        rows.append(
            {
                "run": context.run,
                "step": entry["step"],
                "split": "test",
                "metric": "linear_probe_accuracy",
                "value": result["accuracy"],
                "probe": "linear",
                "probe_status": result["status"],
                **({"representation": representation} if representation != "penultimate" else {}),
            }
        )
    return rows
