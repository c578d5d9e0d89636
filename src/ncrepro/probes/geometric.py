"""Per-run probes that need the model (not only its feature files): geometric complexity
at every checkpoint ("geometric") and Figure 2's estimator study ("gc_sampling") of Munn,
Dherin & Gonzalvo (2024). Registered in `ncrepro.probes.registry.PROBES`.

Both measure on the run's own train split (task "pretrain" of its view), un-augmented,
normalized as in training, model in eval mode (`ncrepro.metrics.geometric`).
"""

from __future__ import annotations

import numpy as np

SPLIT = "train"


def gc_sample_rows(n: int, samples, seed: int) -> np.ndarray:
    """Rows of the train split GC is measured on: all of them (`samples` "all" or >= n),
    or a seeded sorted sample of `samples` rows (the same for every checkpoint and for
    every run of the same data)."""
    if samples == "all" or int(samples) >= n:
        return np.arange(n)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
    return np.sort(rng.choice(n, size=int(samples), replace=False))


def _inputs(context, rows: np.ndarray):
    """The normalized inputs x of train rows `rows` (on the context's device)."""
    import torch

    images = context.view(SPLIT)[0][rows]
    return context.normalizer(
        torch.from_numpy(np.ascontiguousarray(images)).to(context.torch_device)
    )


def _estimate(fn, x, settings: dict, seed: int) -> float:
    """GC of `fn` with the estimator of `settings` (exact, or one estimator with its
    `fraction`; "projections" takes `projections` = k draws per sample instead)."""
    import torch

    from ncrepro.metrics import geometric

    estimator = settings.get("estimator", "exact")
    chunk = settings.get("chunk", geometric.DEFAULT_CHUNK)
    if estimator == "exact":
        return geometric.gc_exact(fn, x, chunk=chunk)
    generator = torch.Generator().manual_seed(int(seed))
    if estimator == "projections" and "projections" in settings:
        return geometric.gc_projections(
            fn, x, 1.0, generator, chunk=chunk, draws=settings["projections"]
        )
    return geometric.gc_estimate(fn, x, estimator, settings["fraction"], generator, chunk=chunk)


def estimator_columns(settings: dict, n_samples: int) -> dict:
    """The conventions recorded beside every GC value."""
    estimator = settings.get("estimator", "exact")
    return {
        "estimator": estimator,
        "gc_projections": settings.get("projections") if estimator == "projections" else None,
        "gc_fraction": settings.get("fraction")
        if estimator not in ("exact", "projections")
        else None,
        "gc_samples": int(n_samples),
        "gc_seed": int(settings.get("seed", 0)),
        "gc_input": "normalized",
        "gc_mode": "eval",
    }


def geometric_probe(context, settings: dict, log=print) -> list[dict]:
    """The registered "geometric" probe. At every checkpoint, on the train split:

    - `gc`: embedding GC (penultimate features), `logit_gc`: GC of the logits, both with
      the estimator of `settings` (estimator, projections / fraction, samples, chunk,
      seed: the sample of rows and the estimator's draws, the same at every checkpoint);
    - `mean_inverse_sq_distance`: Avg_{i≠j} 1/‖μ_i − μ_j‖² of the train class means (all
      train rows), and `geometric_collapse` = K · gc · that (eq. 6 without ρ).

    Rows carry K (`num_classes`) and the train samples per class (`per_class`, their
    minimum) for the bound of Prop. 4.3."""
    from ncrepro.metrics import geometric
    from ncrepro.probes.finetune import extract_features

    images, labels, _ = context.view(SPLIT)
    k = context.num_classes()
    rows = gc_sample_rows(len(labels), settings.get("samples", "all"), settings.get("seed", 0))
    x = _inputs(context, rows)
    base = {
        "run": context.run,
        "split": SPLIT,
        "probe": "geometric",
        "num_classes": k,
        "per_class": int(np.bincount(labels, minlength=k).min()),
        **estimator_columns(settings, len(rows)),
    }
    out = []
    for entry in context.checkpoints():
        step = entry["step"]
        model = context.model_at(step)
        seed = int(settings.get("seed", 0))
        gc = _estimate(geometric.model_map(model, "features"), x, settings, seed)
        logit_gc = _estimate(geometric.model_map(model, "logits"), x, settings, seed + 1)
        feats = extract_features(
            model, images, normalizer=context.normalizer, device=context.torch_device
        )
        means = geometric.class_means(feats, labels, k)
        inverse = geometric.mean_inverse_sq_distance(means)
        values = {
            "gc": gc,
            "logit_gc": logit_gc,
            "mean_inverse_sq_distance": inverse,
            "geometric_collapse": geometric.geometric_collapse(gc, means),
        }
        out += [{**base, "step": step, "metric": m, "value": float(v)} for m, v in values.items()]
        log(
            f"step {step}: GC {gc:.4g}, logit GC {logit_gc:.4g}, "
            f"geometric collapse {values['geometric_collapse']:.4g}"
        )
    return out


def gc_sampling_probe(context, settings: dict, log=print) -> list[dict]:
    """The registered "gc_sampling" probe (Figure 2): at the final checkpoint, on a seeded
    sample of `samples` train rows (the "batch"), the exact embedding GC and `draws` draws
    of every estimator at every fraction in `fractions` ({estimator: [fractions]}), all
    from one pass of exact per-sample Jacobians (`geometric.estimator_draws`).

    Rows: metric "gc", estimator "exact" (one row) or the estimator's name with its
    `gc_fraction` and `gc_draw`; split train; probe "gc_sampling"."""
    from ncrepro.metrics import geometric

    labels = context.view(SPLIT)[1]
    rows = gc_sample_rows(len(labels), settings["samples"], settings.get("seed", 0))
    x = _inputs(context, rows)
    step = max(entry["step"] for entry in context.checkpoints())
    model = context.model_at(step)
    exact, draws = geometric.estimator_draws(
        geometric.model_map(model, "features"),
        x,
        settings["fractions"],
        draws=settings["draws"],
        seed=settings.get("seed", 0),
        chunk=settings.get("chunk", geometric.DEFAULT_CHUNK),
    )
    base = {
        "run": context.run,
        "step": step,
        "split": SPLIT,
        "metric": "gc",
        "probe": "gc_sampling",
        "gc_samples": len(rows),
        "gc_seed": int(settings.get("seed", 0)),
        "gc_input": "normalized",
        "gc_mode": "eval",
    }
    out = [{**base, "estimator": "exact", "gc_fraction": 1.0, "gc_draw": 0, "value": exact}]
    for d in draws:
        out.append(
            {
                **base,
                "estimator": d["estimator"],
                "gc_fraction": float(d["fraction"]),
                "gc_draw": int(d["draw"]),
                "value": float(d["value"]),
            }
        )
    log(f"step {step}: exact GC {exact:.5g} on {len(rows)} samples; {len(draws)} estimator draws")
    return out
