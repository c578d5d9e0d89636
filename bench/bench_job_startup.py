"""Benchmark: the fixed start-up cost every Snakemake job pays, as ratios.

    uv run python bench/bench_job_startup.py [--repeats 3]

Each pipeline job is a fresh `python -m ncrepro <stage>` process, so import time is
paid once per job (120 jobs in the quick preset). Measured here, in fresh processes,
best of N:

- baseline: importing the models the way they were built first, through torchvision;
- the models as they are now (a checked copy of torchvision's parts, no torchvision);
- a torch-free stage (metrics): the CLI and the metric library without torch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES = {
    "torchvision + models (baseline)": "import torchvision, ncrepro.models",
    "models (no torchvision)": "import ncrepro.models",
    "metrics stage (no torch)": "import ncrepro.cli, ncrepro.stages.metrics",
}


def best_time(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {name: best_time(code, args.repeats) for name, code in CASES.items()}
    base = results["torchvision + models (baseline)"]
    for name, seconds in results.items():
        print(f"{name:34s} {seconds:7.2f} s   {base / seconds:5.1f}x faster than baseline")


if __name__ == "__main__":
    main()
