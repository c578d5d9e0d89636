"""Benchmark: NC1 and TrainVariance from per-class statistics vs a per-sample loop.

    uv run python bench/bench_metrics.py [--n 20000] [--dim 256] [--classes 10]

Both sides compute the same numbers from the same float32 features (checked); the
baseline is the textbook per-sample accumulation of Σ_W and of ‖h − μ_y‖², measured in
the same run. Prints wall times and the speed-up as a ratio (machine-independent enough
to compare across machines; absolute times are not).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ncrepro.metrics import ClassStats, nc1, variance_ratio_from_stats


def per_sample_baseline(features: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float]:
    """NC1 = tr(Σ_W Σ_B⁺)/K and TrainVariance with one Python step per sample."""
    h = features.astype(np.float64)
    means = np.stack([h[labels == c].mean(0) for c in range(k)])
    centre = means.mean(0)
    sw = np.zeros((h.shape[1], h.shape[1]))
    within = 0.0
    for i in range(len(h)):
        r = h[i] - means[labels[i]]
        sw += np.outer(r, r)
        within += r @ r
    sw /= len(h)
    sb = (means - centre).T @ (means - centre) / k
    values, vectors = np.linalg.eigh(sb)
    values, vectors = values[-(k - 1) :], vectors[:, -(k - 1) :]
    pinv = vectors @ np.diag(1 / values) @ vectors.T
    between = np.mean(np.sum((means - centre) ** 2, axis=1))
    return float(np.trace(sw @ pinv) / k), float(within / len(h) / between)


def library(features: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float]:
    stats = ClassStats.from_features(features, labels, k)
    return nc1(stats), variance_ratio_from_stats(stats)


def best_of(fn, repeats: int) -> tuple[float, tuple]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, args.n)
    centres = rng.normal(size=(args.classes, args.dim)) * 3
    # ReLU-like features with a large common offset: the case float32 accumulation gets wrong
    features = (10 + centres[labels] + rng.normal(size=(args.n, args.dim))).astype(np.float32)

    t_base, base = best_of(lambda: per_sample_baseline(features, labels, args.classes), 1)
    t_lib, lib = best_of(lambda: library(features, labels, args.classes), args.repeats)
    assert np.allclose(base, lib, rtol=1e-9), (base, lib)
    print(f"N={args.n} d={args.dim} K={args.classes}: NC1 {lib[0]:.6g}, TrainVariance {lib[1]:.6g}")
    print(f"per-sample baseline      {t_base:8.3f} s   1.0x")
    print(f"per-class statistics     {t_lib:8.3f} s   {t_base / t_lib:.1f}x faster")


if __name__ == "__main__":
    main()
