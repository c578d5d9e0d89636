"""Few-shot probe library (ncrepro.probes.fewshot): the ridge solver against scikit-learn,
seeded task draws, separable tasks, diverged features."""

from __future__ import annotations

import numpy as np
import pytest

from ncrepro.probes.fewshot import draw_tasks, fewshot_scores, ridge_weights, task_scores


def test_ridge_weights_match_sklearn_without_intercept():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 7)) + 1.0
    y = rng.integers(0, 3, 10)
    w = ridge_weights(x, y, 3, ridge=0.05)
    lam = 0.05 * np.mean(np.sum(x**2, axis=1))
    reference = Ridge(alpha=lam, fit_intercept=False).fit(x, np.eye(3)[y]).coef_.T
    np.testing.assert_allclose(w, reference, rtol=1e-8, atol=1e-10)
    # primal normal equations (X^T X + lam I)^-1 X^T Y give the same W
    primal = np.linalg.solve(x.T @ x + lam * np.eye(7), x.T @ np.eye(3)[y])
    np.testing.assert_allclose(w, primal, rtol=1e-8, atol=1e-10)
    # scale-free: scaling the features does not change the predictions
    np.testing.assert_allclose((10 * x) @ ridge_weights(10 * x, y, 3, 0.05), x @ w, rtol=1e-8)
    with pytest.raises(ValueError, match="ridge"):
        ridge_weights(np.zeros((3, 2)), [0, 1, 0], 2, 0.1)


def test_draw_tasks_seeded_disjoint_class_major():
    labels = np.repeat(np.arange(6), 10)
    tasks = draw_tasks(labels, tasks=20, ways=3, shots=2, queries=4, seed=5)
    again = draw_tasks(labels, tasks=20, ways=3, shots=2, queries=4, seed=5)
    other = draw_tasks(labels, tasks=20, ways=3, shots=2, queries=4, seed=6)
    for (c, s, q), (c2, s2, q2) in zip(tasks, again, strict=True):
        assert (c == c2).all() and (s == s2).all() and (q == q2).all()
    assert any(
        (a[0] != b[0]).any() or (a[1] != b[1]).any() for a, b in zip(tasks, other, strict=True)
    )
    for classes, support, query in tasks:
        assert len(set(classes)) == 3 and len(support) == 6 and len(query) == 12
        assert not set(support) & set(query)
        assert labels[support].tolist() == np.repeat(classes, 2).tolist()  # class-major
        assert labels[query].tolist() == np.repeat(classes, 4).tolist()
    with pytest.raises(ValueError, match="fewer images"):
        draw_tasks(labels, tasks=1, ways=3, shots=5, queries=6, seed=0)
    with pytest.raises(ValueError, match="need 7 classes"):
        draw_tasks(labels, tasks=1, ways=7, shots=1, queries=1, seed=0)


def test_separable_classes_are_solved_and_collapsed():
    rng = np.random.default_rng(2)
    k, per = 6, 20
    centres = np.eye(k) * 10
    labels = np.repeat(np.arange(k), per)
    features = centres[labels] + 0.01 * rng.normal(size=(k * per, k))
    settings = {"tasks": 10, "ways": 5, "shots": 5, "queries": 10, "ridge": 0.01, "seed": 0}
    scores = fewshot_scores(features, labels, settings)
    assert scores["accuracy"] == 1.0 and scores["accuracy_std"] == 0.0
    assert scores["cdnv"] < 1e-5 and scores["tasks"] == 10
    # noise as large as the class separation: chance-like accuracy, large CDNV
    noisy = centres[labels] + 30 * rng.normal(size=(k * per, k))
    worse = fewshot_scores(noisy, labels, settings)
    assert worse["accuracy"] < 0.6 and worse["cdnv"] > 1.0
    # one task by hand: CDNV of the task's images
    task = draw_tasks(labels, tasks=1, ways=2, shots=1, queries=1, seed=0)[0]
    accuracy, value = task_scores(features, labels, task, ridge=0.01)
    assert accuracy == 1.0 and value >= 0


def test_diverged_features_give_nan():
    labels = np.repeat(np.arange(3), 4)
    features = np.full((12, 2), np.nan)
    settings = {"tasks": 2, "ways": 2, "shots": 1, "queries": 1, "ridge": 0.1}
    scores = fewshot_scores(features, labels, settings)
    assert np.isnan(scores["accuracy"]) and np.isnan(scores["cdnv"])
