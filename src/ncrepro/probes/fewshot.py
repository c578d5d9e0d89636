"""Few-shot transfer probe on frozen embeddings (Munn, Dherin & Gonzalvo 2024, fig4 and
fig10; the protocol of Galanti et al. 2022): from each checkpoint of a run trained on the
source classes of a class_split view, `tasks` random `ways`-way tasks drawn from its
target classes; each task fits a ridge regression on `shots` labelled embeddings per
class and scores `queries` further images per class.

Ridge regression by the normal equations, one-hot targets Y, no intercept, on the raw
penultimate embeddings X (support set, n = ways·shots rows):

    W = (XᵀX + λI)⁻¹ XᵀY = Xᵀ(XXᵀ + λI)⁻¹ Y,   prediction argmax(x W),

with λ = `ridge` · mean_i ‖x_i‖² (relative to the support features' scale, so that runs
whose embeddings differ in scale — an L2 sweep — get the same regularization; the paper's
λ was lost). The dual form (n×n) is used, the same W.

Target CDNV: the CDNV (Galanti et al.; `ncrepro.metrics.cdnv`, mean over the unordered
class pairs) of the task's own images (support and query) in embedding space.

The task draws (classes, support and query images) depend only on `seed`, the pool's
labels and the settings: every checkpoint and every run with the same data scores the
same tasks, so the curves are comparable.
"""

from __future__ import annotations

import numpy as np

TASK = "target"


def draw_tasks(labels, *, tasks: int, ways: int, shots: int, queries: int, seed: int):
    """`tasks` tasks as (classes, support rows (ways·shots), query rows (ways·queries)),
    rows into `labels`; support and query are class-major (class 0's rows first)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < ways:
        raise ValueError(f"{ways}-way tasks need {ways} classes; the pool has {len(classes)}")
    by_class = {int(c): np.flatnonzero(labels == c) for c in classes}
    short = {c: len(r) for c, r in by_class.items() if len(r) < shots + queries}
    if short:
        raise ValueError(
            f"{shots} shots + {queries} queries per class; classes {short} have fewer images"
        )
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
    out = []
    for _ in range(tasks):
        chosen = np.sort(rng.choice(classes, size=ways, replace=False))
        picks = [rng.choice(by_class[int(c)], size=shots + queries, replace=False) for c in chosen]
        support = np.concatenate([p[:shots] for p in picks])
        query = np.concatenate([p[shots:] for p in picks])
        out.append((chosen, support, query))
    return out


def ridge_weights(x, y, num_classes: int, ridge: float) -> np.ndarray:
    """W (d×C) of ridge regression on one-hot targets, λ = ridge · mean_i ‖x_i‖²."""
    x = np.asarray(x, np.float64)
    targets = np.eye(num_classes)[np.asarray(y)]
    lam = ridge * float(np.mean(np.sum(x**2, axis=1)))
    if not lam > 0:
        raise ValueError(f"ridge must be > 0 and the features non-zero (λ = {lam})")
    gram = x @ x.T + lam * np.eye(len(x))
    return x.T @ np.linalg.solve(gram, targets)


def task_scores(features, labels, task, *, ridge: float) -> tuple[float, float]:
    """(query accuracy, CDNV of the task's images) of one task on embeddings `features`."""
    from ncrepro.metrics import ClassStats, cdnv

    chosen, support, query = task
    relabel = {int(c): i for i, c in enumerate(chosen)}
    ys = np.array([relabel[int(c)] for c in labels[support]])
    yq = np.array([relabel[int(c)] for c in labels[query]])
    w = ridge_weights(features[support], ys, len(chosen), ridge)
    accuracy = float(np.mean((np.asarray(features[query], np.float64) @ w).argmax(1) == yq))
    rows = np.concatenate([support, query])
    y = np.concatenate([ys, yq])
    stats = ClassStats.from_features(
        np.asarray(features[rows], np.float64), y, len(chosen), scatter="none"
    )
    return accuracy, cdnv(stats)


def fewshot_scores(features, labels, settings: dict) -> dict:
    """Mean and std over the tasks of the query accuracy and the target CDNV."""
    tasks = draw_tasks(
        labels,
        tasks=settings["tasks"],
        ways=settings["ways"],
        shots=settings["shots"],
        queries=settings["queries"],
        seed=settings.get("seed", 0),
    )
    if not np.isfinite(features).all():
        nan = float("nan")
        return {
            "accuracy": nan,
            "accuracy_std": nan,
            "cdnv": nan,
            "cdnv_std": nan,
            "tasks": len(tasks),
        }
    scores = np.array([task_scores(features, labels, t, ridge=settings["ridge"]) for t in tasks])
    return {
        "accuracy": float(scores[:, 0].mean()),
        "accuracy_std": float(scores[:, 0].std()),
        "cdnv": float(scores[:, 1].mean()),
        "cdnv_std": float(scores[:, 1].std()),
        "tasks": len(tasks),
    }


def fewshot_probe(context, settings: dict, log=print) -> list[dict]:
    """The registered "fewshot" probe: at every checkpoint, `fewshot_scores` on the frozen
    penultimate embeddings of the target classes of split `settings["split"]` (default
    "test"). Rows: `fewshot_accuracy` and `target_cdnv` (means over the tasks; their std
    in `task_std`), with the protocol in columns."""
    from ncrepro.probes.finetune import extract_features

    split = settings.get("split", "test")
    images, labels, _ = context.view(split, task=TASK)
    base = {
        "run": context.run,
        "split": split,
        "probe": "fewshot",
        "fewshot_tasks": settings["tasks"],
        "fewshot_ways": settings["ways"],
        "fewshot_shots": settings["shots"],
        "fewshot_queries": settings["queries"],
        "fewshot_ridge": settings["ridge"],
        "fewshot_ridge_scale": "mean_sq_norm",
        "fewshot_seed": settings.get("seed", 0),
    }
    out = []
    for entry in context.checkpoints():
        model = context.model_at(entry["step"])
        feats = extract_features(
            model, images, normalizer=context.normalizer, device=context.torch_device
        )
        s = fewshot_scores(feats, labels, settings)
        for metric, mean, std in (
            ("fewshot_accuracy", s["accuracy"], s["accuracy_std"]),
            ("target_cdnv", s["cdnv"], s["cdnv_std"]),
        ):
            out.append(
                {**base, "step": entry["step"], "metric": metric, "value": mean, "task_std": std}
            )
        log(
            f"step {entry['step']}: {settings['ways']}-way {settings['shots']}-shot accuracy "
            f"{s['accuracy']:.4f}, target CDNV {s['cdnv']:.4g}"
        )
    return out
