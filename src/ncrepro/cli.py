"""Command line: one subcommand per pipeline stage (the Snakemake rules call these).

User mistakes (bad config, missing dataset, corrupt checkpoint) print one clear
`error:` line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _json(text: str):
    return json.loads(text)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cmd_prepare_data(args) -> None:
    from ncrepro.data import prepare

    manifest = prepare(args.source, args.params, args.root, args.download, Path(args.out))
    _log(f"prepared {args.source} -> {args.out}: {json.dumps(manifest['splits'])[:300]}")


def cmd_train(args) -> None:
    from ncrepro.train import run_training

    run_training(
        args.spec,
        args.run,
        Path(args.data),
        Path(args.out),
        Path(args.scratch),
        device=args.device,
        threads=args.threads,
        code_version=args.code_version,
        log=_log,
    )


def cmd_features(args) -> None:
    from ncrepro.features import extract_run

    extract_run(
        Path(args.run_dir),
        Path(args.data),
        Path(args.out),
        device=args.device,
        threads=args.threads,
        log=_log,
    )


def cmd_finetune(args) -> None:
    from ncrepro.probes.stage import run_finetune

    frame = run_finetune(
        Path(args.run_dir),
        Path(args.data),
        args.step,
        args.lr,
        Path(args.out),
        device=args.device,
        threads=args.threads,
    )
    _log(
        f"fine-tune probe of {args.run_dir} step {args.step} lr {args.lr}: "
        f"{frame.to_dict('records')[0]['value']:.4f} test accuracy"
    )


def cmd_linear_probe(args) -> None:
    from ncrepro.probes.stage import run_linear

    frame = run_linear(
        Path(args.run_dir),
        Path(args.data),
        Path(args.out),
        device=args.device,
        threads=args.threads,
    )
    _log(f"linear probe of {args.run_dir}: {frame['value'].round(4).tolist()}")


def cmd_metrics(args) -> None:
    from ncrepro.evaluate import evaluate_run

    frame = evaluate_run(
        Path(args.features),
        Path(args.run_dir),
        Path(args.out),
        kmeans_n_init=args.kmeans_n_init,
        code_version=args.code_version,
    )
    _log(f"metrics of {args.run_dir}: {len(frame)} rows -> {args.out}")


def cmd_aggregate(args) -> None:
    import pandas as pd

    from ncrepro.aggregate import aggregate_study
    from ncrepro.provenance import atomic_path, write_provenance

    sheet = pd.DataFrame(args.sheet)
    table = aggregate_study(args.study, sheet, [Path(p) for p in args.metrics], Path(args.runs_dir))
    table["code_version"] = args.code_version
    tmp = atomic_path(Path(args.out))
    table.to_parquet(tmp, index=False)
    tmp.replace(args.out)
    write_provenance(
        Path(args.out),
        inputs=[Path(p) for p in args.metrics],
        rows=table,
        runs_dir=Path(args.runs_dir),
        caption=f"{args.study}: every metric of every checkpoint of every run",
        outputs=[Path(args.out)],
    )
    _log(f"{args.study}: {len(table)} rows from {table['run'].nunique()} runs -> {args.out}")


def cmd_figure(args) -> None:
    import importlib

    import pandas as pd

    from ncrepro.aggregate import aggregate_study
    from ncrepro.figures import save_figure
    from ncrepro.provenance import write_provenance

    module = importlib.import_module(f"ncrepro.figures.{args.study}")
    if args.table:  # studies without runs render from their table
        inputs = [Path(args.table)]
        table = pd.read_parquet(args.table)
    else:  # the same join as the study table, restricted to this figure's runs
        inputs = [Path(p) for p in args.metrics]
        sheet = pd.DataFrame(args.sheet)
        table = aggregate_study(args.study, sheet, inputs, Path(args.runs_dir))
    fig, rows, caption = module.FIGURES[args.fig](table, args.config)
    out = Path(args.out)
    png = save_figure(fig, out)
    write_provenance(
        out,
        inputs=inputs,
        rows=rows,
        runs_dir=Path(args.runs_dir),
        caption=caption,
        outputs=[out, png],
    )
    _log(f"{args.study} {args.fig}: {len(rows)} rows -> {out} (+ .png, .provenance.json)")


def cmd_ufm_solve(args) -> None:
    from ncrepro.class_encoding import run_study, write_parquet
    from ncrepro.provenance import write_provenance

    table = run_study(args.block)
    write_parquet(table, args.out)
    write_provenance(
        Path(args.out),
        inputs=[],
        rows=table,
        caption="class_encoding: global UFM minimisers vs closed forms",
        outputs=[Path(args.out)],
        extra={"config": args.block},
    )
    has = table["theory"].notna()
    worst = table.loc[has, "residual"].abs().max()
    _log(f"class_encoding: {len(table)} rows, max |value - theory| {worst:.3g} -> {args.out}")


def cmd_ufm_table(args) -> None:
    import pandas as pd

    from ncrepro.class_encoding import encoding_cell_sources
    from ncrepro.figures.class_encoding import write_table
    from ncrepro.provenance import write_provenance

    long = pd.read_parquet(args.table)
    rows = write_table(long, args.out_csv, args.out_md)
    write_provenance(
        Path(args.out_csv),
        inputs=[Path(args.table)],
        rows=rows,
        caption="class_encoding encoding table: numerics vs theory",
        outputs=[Path(args.out_csv), Path(args.out_md)],
        cells=encoding_cell_sources(long, rows),
    )
    _log(f"encoding table: {len(rows)} rows -> {args.out_csv}, {args.out_md}")


def cmd_audit(args) -> int:
    from ncrepro.audit import audit, cell_sources

    if args.cell:
        row, column = int(args.cell[0]), args.cell[1]
        for source in cell_sources(args.file, row, column):
            print("  ".join(f"{k}={v}" for k, v in source.items()))
        return 0
    result = audit(args.file)
    print("\n".join(result.lines))
    if result.mismatches:
        print(
            f"audit FAILED: {len(result.mismatches)} file(s) changed or missing since "
            f"they were recorded: {', '.join(result.mismatches)}",
            file=sys.stderr,
        )
        return 1
    print(f"audit ok: {result.checked} files verified")
    return 0


def cmd_check_config(args) -> None:
    from ncrepro.config import load_config, validate_config

    validate_config(load_config(*args.files))
    print("configuration is valid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncrepro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="load a dataset and write train/test npz + manifest")
    p.add_argument("--source", required=True)
    p.add_argument("--params", type=_json, default={})
    p.add_argument("--root", required=True)
    p.add_argument("--download", type=lambda s: s.lower() in ("1", "true", "yes"), default=False)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare_data)

    p = sub.add_parser("train", help="train one run")
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scratch", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--code-version", default="unknown")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("features", help="penultimate features of every checkpoint of a run")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("finetune", help="fine-tuning probe of one checkpoint at one LR")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--step", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("linear-probe", help="linear probe on frozen features, every checkpoint")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_linear_probe)

    p = sub.add_parser("metrics", help="NC metrics of every checkpoint of a run")
    p.add_argument("--features", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--kmeans-n-init", type=int, default=4)
    p.add_argument("--code-version", default="unknown")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("aggregate", help="one tidy Parquet table per study")
    p.add_argument("--study", required=True)
    p.add_argument("--sheet", type=_json, required=True)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--code-version", default="unknown")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("figure", help="render one figure (PDF + PNG + provenance)")
    p.add_argument("--study", required=True)
    p.add_argument("--fig", required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics", nargs="+", help="metric files of the figure's runs")
    source.add_argument("--table", help="the study table (studies without runs)")
    p.add_argument("--sheet", type=_json, default=[])
    p.add_argument("--config", type=_json, required=True)
    p.add_argument("--runs-dir", default="results/runs")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("ufm-solve", help="class_encoding: solve every UFM experiment")
    p.add_argument("--block", type=_json, required=True, help="the class_encoding config")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_ufm_solve)

    p = sub.add_parser("ufm-table", help="class_encoding: the encoding table (CSV + Markdown)")
    p.add_argument("--table", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=cmd_ufm_table)

    p = sub.add_parser("audit", help="verify a figure/table's provenance back to data files")
    p.add_argument("file")
    p.add_argument(
        "--cell",
        nargs=2,
        metavar=("ROW", "COLUMN"),
        help="list the raw values one table cell aggregates",
    )
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("check-config", help="validate config files (merged in order)")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_check_config)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is the whole story for the user (no traceback)."""
    from ncrepro.audit import AuditError
    from ncrepro.config import ConfigError
    from ncrepro.data import CorruptDataError, DatasetMissingError
    from ncrepro.errors import CheckpointError

    errors: list[type[BaseException]] = [
        ConfigError,
        CheckpointError,
        DatasetMissingError,
        CorruptDataError,
        FileNotFoundError,
        AuditError,
    ]
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    from ncrepro.errors import Interrupted

    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Interrupted as exc:  # SIGTERM (preemption, time limit): state saved, rerun resumes
        print(f"interrupted: {exc}; rerun to resume", file=sys.stderr, flush=True)
        return 143
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
