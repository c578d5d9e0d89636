"""Where the pipeline's time goes: a per-rule table from Snakemake's `benchmark:` files.

    uv run python bench/rule_table.py [results/benchmarks] [--markdown]

Every rule writes results/benchmarks/<rule>/<wildcards>.tsv (one row: wall seconds `s`,
`max_rss` in MB, `cpu_time`, ...). This prints, per rule: jobs, total and mean wall
seconds, the slowest job, total CPU seconds, the largest max RSS, and each rule's share
of the summed job time. A cluster user reads `max_s` and `max_rss_mb` to set the preset's
`resources` (runtime in minutes, mem_mb) per rule; on a laptop, `share` says which rule
to make cheaper. Jobs run in parallel, so the total is core-seconds, not the wall time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def read_benchmarks(root: Path) -> pd.DataFrame:
    """One row per job: rule (the first folder under `root`), job (the rest), and the
    benchmark columns (s, max_rss, cpu_time, ...; '-' where not measured -> NaN)."""
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
        if frame.empty:
            continue
        record = frame.iloc[-1].to_dict()  # a rerun appends nothing; repeats would add rows
        relative = path.relative_to(root)
        record["rule"] = relative.parts[0]
        record["job"] = str(Path(*relative.parts[1:]).with_suffix(""))
        rows.append(record)
    return pd.DataFrame(rows)


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, total_s, mean_s, max_s, cpu_s, max_rss_mb, share (of total_s)."""
    grouped = jobs.groupby("rule")
    table = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "total_s": grouped["s"].sum(),
            "mean_s": grouped["s"].mean(),
            "max_s": grouped["s"].max(),
            "cpu_s": grouped["cpu_time"].sum(min_count=1),
            "max_rss_mb": grouped["max_rss"].max(),
        }
    )
    table["share"] = table["total_s"] / table["total_s"].sum()
    table = table.sort_values("total_s", ascending=False)
    total = pd.DataFrame(
        {
            "jobs": [table["jobs"].sum()],
            "total_s": [table["total_s"].sum()],
            "mean_s": [jobs["s"].mean()],
            "max_s": [table["max_s"].max()],
            "cpu_s": [table["cpu_s"].sum(min_count=1)],
            "max_rss_mb": [table["max_rss_mb"].max()],
            "share": [1.0],
        },
        index=["(all rules)"],
    )
    return pd.concat([table, total]).rename_axis("rule")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="results/benchmarks")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    root = Path(args.root)
    jobs = read_benchmarks(root) if root.is_dir() else pd.DataFrame()
    if jobs.empty:
        print(f"no benchmark files under {root}: run the workflow first", file=sys.stderr)
        return 1
    table = rule_table(jobs).round({"total_s": 1, "mean_s": 2, "max_s": 1, "cpu_s": 1})
    table["max_rss_mb"] = table["max_rss_mb"].round(0)
    table["share"] = (100 * table["share"]).round(1).astype(str) + " %"
    print(table.to_markdown() if args.markdown else table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
