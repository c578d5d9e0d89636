"""Benchmark: the NC metric suite of one checkpoint against one float64 XᵀX of its features.

    uv run python bench/bench_metrics.py [--repeats 5] [--threads 1] [--quick]

The suite is `ncrepro.metrics.compute.split_rows("train", ...)` (the train half of
`compute_all`, what the metrics stage runs per checkpoint) on what a feature file holds:
float32 features N×d, labels, the network's float32 logits N×K and its classifier W, b.
It builds one `ClassStats` and computes TrainVariance, NC1, NC2 (class means and W),
NC3, NC4, CDNV, accuracy and loss.  (The test split adds WeakTestVariance, whose k-means
is not part of this comparison.)  Where `MeanSpan.pays_off` (K − 1 < d/4: all sizes
below), the suite builds no d×d scatter: NC1 = (1/K) Σ_k v_kᵀ Σ_W v_k / λ_k reads Σ_W only
on the span of the centred class means, and one pass projects each sample's deviation
from its class mean onto that span (O(N·d·(K−1)) instead of XᵀX's O(N·d²/2)); the same
coordinates give NC4's nearest class means.

The floor is one float64 XᵀX of the same N×d features, already float64 and C-contiguous,
as ``x.T @ x``: numpy sees both operands are the same buffer and calls BLAS syrk (half
the flops of a general product; the fastest way numpy has); the d×d pooled Σ_W needs at
least this product.  Checks, on every configuration: NC1 and NC4 of the suite equal those
of the d×d pooled scatter and of the direct NCC assignment to 1e-12 relative (printed:
"value err"), and ClassStats' pooled scatter N·Σ_W equals XᵀX − Σ_c n_c μ_c μ_cᵀ (1e-10).

Floor, suite and each part are timed in turn inside every repeat, so that load from
other processes hits them alike; printed are medians over repeats, of wall-clock times
and of the per-repeat ratios ("ratio"), and the median ratio of the process CPU times
("cpu"), which other processes on the machine disturb much less.  The BLAS thread count
is set explicitly (--threads, default 1: on a 2-core machine shared with other jobs a
2-thread BLAS waits for its second thread at every call, and ran XᵀX 2-5x slower than
one thread here).  Parts: ClassStats, MeanSpan (the projection pass), NC1, NC2 (means and
W), NC3, NC4 and the other metrics (TrainVariance, CDNV, accuracy, loss), each timed on
its own.  Growth: the same
measurements over N at d = 512 and over d at N = 50 000 (K = 10).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg.blas  # noqa: F401  (load scipy's BLAS too, so that the limit covers it)
from threadpoolctl import threadpool_info, threadpool_limits

from ncrepro.metrics import (
    ClassStats,
    accuracy,
    cdnv,
    cross_entropy,
    nc1,
    nc2,
    nc2_weights,
    nc3,
    nc4,
    variance_ratio_from_stats,
)
from ncrepro.metrics.compute import SplitData, split_rows
from ncrepro.metrics.stats import MeanSpan

PARTS = ("ClassStats", "MeanSpan", "NC1", "NC2", "NC3", "NC4", "other")
FULL = {
    "main": [(50000, 512, 10), (50000, 512, 100), (50000, 2048, 10), (50000, 2048, 100)],
    "growth in N (d=512, K=10)": [(12500, 512, 10), (25000, 512, 10), (50000, 512, 10)],
    "growth in d (N=50000, K=10)": [(50000, d, 10) for d in (256, 512, 1024, 2048)],
}
QUICK = {
    "main": [(2000, 32, 5), (2000, 32, 20), (2000, 64, 5), (2000, 64, 20)],
    "growth in N (d=32, K=5)": [(500, 32, 5), (1000, 32, 5), (2000, 32, 5)],
    "growth in d (N=2000, K=5)": [(2000, d, 5) for d in (16, 32, 64)],
}


def checkpoint(n: int, dim: int, k: int, seed: int = 0) -> SplitData:
    """Float32 features of K Gaussian classes around a ReLU-like common offset, with a
    classifier near the class means (logits of order 10, accuracy and NC4 below 1)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = 3.0 * rng.standard_normal((k, dim), dtype=np.float32)
    features = rng.standard_normal((n, dim), dtype=np.float32)
    features *= 4.0
    features += centres[labels] + 10.0
    w = (centres + rng.standard_normal((k, dim), dtype=np.float32)) / dim
    b = rng.standard_normal(k, dtype=np.float32)
    logits = features @ w.T + b
    return SplitData(features, labels, logits, w, b)


def suite(data: SplitData, k: int) -> list[dict]:
    return split_rows("train", data, k)


def parts(data: SplitData, k: int) -> dict:
    """The suite's pieces one by one, each a closure timed on its own, as the suite runs
    them: where `MeanSpan.pays_off`, ClassStats without the d×d scatter, then the MeanSpan
    pass (NC1's scatter on the span of the means and NC4's NCC predictions)."""
    box = {}
    use_span = MeanSpan.pays_off(k, data.features.shape[1])

    def stats():
        scatter = "none" if use_span else "pooled"
        box["stats"] = ClassStats.from_features(data.features, data.labels, k, scatter=scatter)

    def span():
        box["span"] = MeanSpan.from_features(box["stats"], data.features, data.labels)

    def means():
        s = box["stats"]
        return nc2(s.means, s.global_mean()), nc2_weights(data.W)

    def other():
        s = box["stats"]
        return (
            variance_ratio_from_stats(s),
            cdnv(s),
            accuracy(data.logits, data.labels),
            cross_entropy(data.logits, data.labels),
        )

    def nearest():
        return box["span"].nearest if use_span else None

    return {
        "ClassStats": stats,
        "MeanSpan": span if use_span else lambda: box.setdefault("span", None),
        "NC1": lambda: nc1(box["stats"], span=box["span"]),
        "NC2": means,
        "NC3": lambda: nc3(data.W, box["stats"].means, box["stats"].global_mean()),
        "NC4": lambda: nc4(data.features, data.logits, box["stats"].means, nearest=nearest()),
        "other": other,
    }


def check_values(data: SplitData, k: int) -> float:
    """Largest relative difference between the suite's NC1 and NC4 and those of the d×d
    pooled scatter and the direct NCC assignment (the computation without `MeanSpan`);
    the other rows do not depend on the path."""
    rows = {r["metric"]: r["value"] for r in suite(data, k)}
    stats = ClassStats.from_features(data.features, data.labels, k)
    ref = {"nc1": nc1(stats), "nc4": nc4(data.features, data.logits, stats.means)}
    err = max(abs(rows[m] - v) / max(abs(v), 1e-300) for m, v in ref.items())
    assert err <= 1e-12, f"suite differs from the d×d computation by {err:.2e} (relative)"
    return err


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(n: int, dim: int, k: int, repeats: int) -> dict:
    data = checkpoint(n, dim, k)
    x = np.asarray(data.features, np.float64)  # the floor's input, converted untimed
    pieces = parts(data, k)
    times = {name: [] for name in ("floor", "suite", *PARTS)}
    for _ in range(repeats):
        times["floor"].append(timed(lambda: x.T @ x))
        times["suite"].append(timed(lambda: suite(data, k)))
        for name in PARTS:
            times[name].append(timed(pieces[name]))
    times = {name: np.array(t) for name, t in times.items()}  # repeats × (wall, cpu)
    # Σ_W of the suite's ClassStats against the floor's product (same work, same numbers)
    stats = ClassStats.from_features(data.features, data.labels, k)
    gram = x.T @ x
    ref = gram - (stats.means * stats.counts[:, None]).T @ stats.means
    err = np.abs(stats.pooled_scatter - ref).max() / np.abs(ref).max()
    assert err < 1e-10, f"pooled scatter differs from XᵀX − Σ n μμᵀ by {err:.2e}"
    ratio, cpu = np.median(times["suite"] / times["floor"], axis=0)
    return {name: float(np.median(t[:, 0])) for name, t in times.items()} | {
        "ratio": ratio,
        "cpu": cpu,
        "value_err": check_values(data, k),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = parser.parse_args(argv)
    groups = QUICK if args.quick else FULL
    with threadpool_limits(limits=args.threads, user_api="blas"):
        blas = sorted(
            {f"{i['prefix']} {i['version']}: {i['num_threads']} threads" for i in threadpool_info()}
        )
        print(f"BLAS {'; '.join(blas)}; medians of {args.repeats} repeats")
        done: dict[tuple, dict] = {}
        for title, configs in groups.items():
            print(f"\n{title}")
            print(
                f"{'N':>6} {'d':>5} {'K':>4} {'floor s':>8} {'suite s':>8} {'ratio':>6} {'cpu':>6}"
                + "".join(f"{p:>11}" for p in PARTS)
                + f"{'value err':>10}"
            )
            for config in configs:
                if config not in done:
                    done[config] = measure(*config, args.repeats)
                r = done[config]
                print(
                    f"{config[0]:6d} {config[1]:5d} {config[2]:4d} {r['floor']:8.3f} "
                    f"{r['suite']:8.3f} {r['ratio']:6.2f} {r['cpu']:6.2f}"
                    + "".join(f"{r[p]:11.4f}" for p in PARTS)
                    + f"{r['value_err']:10.1e}"
                )


if __name__ == "__main__":
    main()
