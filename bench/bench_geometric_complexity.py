"""Benchmark: exact geometric complexity (GC) vs each unbiased estimator, on a VGG-13
embedding of 32x32 inputs (ncrepro.metrics.geometric; Munn, Dherin & Gonzalvo 2024, Fig. 2).

    uv run python bench/bench_geometric_complexity.py            # reduced: width 1/4 (d = 128)
    uv run python bench/bench_geometric_complexity.py --full     # VGG-13, full width, d = 512

Exact GC needs the full per-sample input Jacobian (d VJPs per sample). Each estimator is
run at a sampling fraction that keeps 1/20 of that work ("batch": 1/20 of the samples,
"outputs": d/20 output coordinates, "projections": d/20 Gaussian projections per sample),
`--repeats` times with fresh draws; "entries" keeps 5 % of the Jacobian entries but still
needs the whole Jacobian (it is a statistical check, not a saving). Printed per
estimator: mean time, the exact/estimator time ratio (the baseline is timed in the same
run), the mean relative error of one estimate and the relative error of the mean. The
aim (issue 12): an estimator at least 20x cheaper than exact within 5 % error.

The network is a freshly initialised VGG-13 (batch norm, eval mode, its statistics set by
a few forward passes on the same inputs), the inputs synth images normalized per channel:
GC and its estimators only need a differentiable map, not a trained one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ncrepro.data import synth
from ncrepro.metrics import geometric as G
from ncrepro.models import build_model
from ncrepro.train.device_data import Normalizer

ESTIMATORS = ("batch", "outputs", "projections", "entries")


def setup(width: float, samples: int, seed: int):
    images, _ = synth.generate(10, 2, max(1, samples // 10 + 1), seed)
    images = images[:samples]
    x = Normalizer.fit(images, "channel")(torch.from_numpy(images))
    torch.manual_seed(seed)
    model = build_model("vgg13_bn", num_classes=10, in_channels=3, image_size=32, width=width)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return G.model_map(model, "features"), x, model.feature_dim


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-width VGG-13 (d = 512)")
    parser.add_argument("--width", type=float, default=None, help="channel width (default 1/4)")
    parser.add_argument("--samples", type=int, default=32, help="inputs in the batch")
    parser.add_argument("--fraction", type=float, default=0.05, help="kept share of the work")
    parser.add_argument("--repeats", type=int, default=5, help="draws per estimator")
    parser.add_argument("--chunk", type=int, default=16, help="samples per Jacobian chunk")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width = 1.0 if args.full else (args.width or 0.25)
    fn, x, d = setup(width, args.samples, args.seed)
    print(
        f"VGG-13 (BN, eval) width {width}: embedding d = {d}, {args.samples} inputs 3x32x32, "
        f"{args.threads} thread(s), fraction {args.fraction}, {args.repeats} draws each"
    )
    G.gc_exact(fn, x[:2], chunk=args.chunk)  # warm-up: first-call costs are not the method's
    exact_s, exact = timed(lambda: G.gc_exact(fn, x, chunk=args.chunk))
    print(f"{'exact':12s} {exact_s:8.2f} s   GC = {exact:.6g}  ({d} VJPs per sample)")
    print(f"{'estimator':12s} {'time s':>8s} {'speed-up':>9s} {'err/draw':>9s} {'err(mean)':>9s}")
    gen = torch.Generator().manual_seed(args.seed)
    results = {}
    for name in ESTIMATORS:
        times, values = [], []
        for _ in range(args.repeats):
            t, v = timed(
                lambda n=name: G.gc_estimate(fn, x, n, args.fraction, gen, chunk=args.chunk)
            )
            times.append(t)
            values.append(v)
        values = np.array(values)
        per_draw = float(np.mean(np.abs(values - exact)) / exact)
        of_mean = abs(float(values.mean()) - exact) / exact
        ratio = exact_s / float(np.mean(times))
        results[name] = (ratio, per_draw)
        print(
            f"{name:12s} {np.mean(times):8.2f} {ratio:8.1f}x "
            f"{100 * per_draw:8.2f}% {100 * of_mean:8.2f}%"
        )
    good = [n for n, (r, e) in results.items() if r >= 20 and e <= 0.05]
    print(
        "estimators >= 20x cheaper within 5 % (one draw): "
        + (", ".join(good) if good else "none at this size")
    )


if __name__ == "__main__":
    main()
