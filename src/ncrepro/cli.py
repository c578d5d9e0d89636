"""Command line: one subcommand per pipeline stage (the Snakemake rules call these).

User mistakes (bad config, missing dataset, corrupt checkpoint) print one clear
`error:` line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# The workflow passes the device through the environment (an execution setting that
# must not rerun jobs when `auto` resolves to the same device).
DEFAULT_DEVICE = os.environ.get("NCREPRO_DEVICE", "auto")
DEVICE_HELP = "auto | cpu | cuda (default: $NCREPRO_DEVICE, else auto)"
DEFAULT_RESUME_EVERY_S = float(os.environ.get("NCREPRO_RESUME_EVERY_S", "300"))


def _json(text: str):
    return json.loads(text)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cmd_prepare_data(args) -> None:
    from ncrepro.data import prepare

    manifest = prepare(args.source, args.params, args.root, args.download, Path(args.out))
    _log(f"prepared {args.source} -> {args.out}: {json.dumps(manifest['splits'])[:300]}")


def cmd_train(args) -> None:
    from ncrepro.stages.train import run_training

    run_training(
        args.spec,
        args.run,
        Path(args.data),
        Path(args.out),
        Path(args.scratch),
        device=args.device,
        threads=args.threads,
        code_version=args.code_version,
        resume_every_s=args.resume_every,
        log=_log,
    )
    if args.features_out:  # fused stages: the next two stages in this process
        args.run_dir, args.out = args.out, args.features_out
        cmd_features(args)
        args.features, args.out = args.features_out, args.metrics_out
        args.options, args.code_version = args.metric_options, args.metrics_code_version
        cmd_metrics(args)
        args.out = args.probes_out
        cmd_probes(args)


def cmd_features(args) -> None:
    from ncrepro.stages.features import extract_run

    extract_run(
        Path(args.run_dir),
        Path(args.data),
        Path(args.out),
        device=args.device,
        threads=args.threads,
        log=_log,
    )


def cmd_finetune(args) -> None:
    from ncrepro.stages.probes import run_finetune

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


def cmd_probes(args) -> None:
    from ncrepro.stages.probes import run_all_probes

    frame = run_all_probes(
        Path(args.run_dir),
        Path(args.data),
        Path(args.out),
        device=args.device,
        threads=args.threads,
        log=_log,
    )
    _log(f"probes of {args.run_dir}: {len(frame)} rows -> {args.out}")


def cmd_probe(args) -> None:
    from ncrepro.stages.probes import run_probe

    frame = run_probe(
        args.name,
        Path(args.run_dir),
        Path(args.data),
        Path(args.out),
        device=args.device,
        threads=args.threads,
        log=_log,
    )
    _log(f"probe {args.name} of {args.run_dir}: {len(frame)} rows -> {args.out}")


def cmd_metrics(args) -> None:
    from ncrepro.stages.metrics import evaluate_run
    from ncrepro.studies import get, load

    metric_set = get(args.study).metrics
    frame = evaluate_run(
        Path(args.features),
        Path(args.run_dir),
        Path(args.out),
        compute=load(metric_set.compute),
        options=args.options,
        code_version=args.code_version,
    )
    _log(f"metrics of {args.run_dir}: {len(frame)} rows -> {args.out}")


def cmd_aggregate(args) -> None:
    from ncrepro.stages.aggregate import write_study_table
    from ncrepro.stages.sheet import read_result_files, read_sheet

    study, _config, sheet = read_sheet(args.sheet)
    results = Path(args.results)
    table = write_study_table(
        study,
        sheet,
        read_result_files(args.sheet, results, sheet["run"]),
        results / "runs" / study,
        Path(args.out),
        code_version=args.code_version,
    )
    _log(f"{study}: {len(table)} rows from {table['run'].nunique()} runs -> {args.out}")


def cmd_compute(args) -> None:
    from ncrepro.stages.study import compute_study_table

    table = compute_study_table(Path(args.sheet), Path(args.out))
    _log(f"{len(table)} rows -> {args.out}")


def cmd_study_stage(args) -> None:
    from ncrepro.stages.study import run_study_stage

    table = run_study_stage(args.name, Path(args.sheet), args.inputs, Path(args.out))
    _log(f"study stage {args.name}: {len(table)} rows -> {args.out}")


def cmd_figure(args) -> None:
    from ncrepro.stages.render import render_figure

    rows = render_figure(
        args.fig,
        Path(args.sheet),
        Path(args.out),
        results=Path(args.results),
        table_path=args.table,
    )
    _log(f"{args.fig}: {len(rows)} rows -> {args.out} (+ .png, .provenance.json)")


def cmd_table(args) -> None:
    from ncrepro.stages.render import render_table

    frame = render_table(
        args.name,
        Path(args.sheet),
        Path(args.table),
        Path(args.out_csv),
        Path(args.out_md),
        results=Path(args.results),
    )
    _log(f"{args.name}: {len(frame)} rows -> {args.out_csv}, {args.out_md}")


def cmd_audit(args) -> int:
    from ncrepro.audit import AuditError, audit, cell_sources

    if args.cell:
        row, column = args.cell
        if not row.isdigit():
            raise AuditError(
                f"--cell ROW COLUMN: ROW is the 0-based row number of the table's CSV "
                f"(an integer), got {row!r}; e.g. --cell 0 {column}"
            )
        row = int(row)
        for source in cell_sources(args.file, row, column):
            print("  ".join(f"{k}={v}" for k, v in source.items()))
        return 0
    result = audit(args.file)
    print("\n".join(result.lines))
    if result.failures:
        failed = "; ".join(f"{path} ({why})" for path, why in result.failures)
        print(
            f"audit FAILED: {len(result.failures)} file(s) not verified: {failed}", file=sys.stderr
        )
        return 1
    print(f"audit ok: {result.checked} files verified")
    return 0


def cmd_check_config(args) -> None:
    from ncrepro.config import load_config, validate_config

    validate_config(load_config(*args.files))
    print("configuration is valid")


def cmd_estimate(args) -> None:
    from ncrepro.estimate import DEFAULT_PRESET, estimate, format_estimate, load_preset, load_rates

    presets = args.preset or [DEFAULT_PRESET]
    result = estimate(load_preset(*presets), load_rates(args.rate, args.rates_file))
    print(json.dumps(result, indent=1) if args.json else format_estimate(result, presets))


def _run_stage_arguments(p: argparse.ArgumentParser) -> None:
    """What every stage of one trained run takes: its folder, its data, its output."""
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--threads", type=int, default=None)


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
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--code-version", default="unknown")
    p.add_argument(
        "--resume-every",
        type=float,
        default=DEFAULT_RESUME_EVERY_S,
        help="seconds between saves of the resume state (default: $NCREPRO_RESUME_EVERY_S, "
        "else 300)",
    )
    fused = p.add_argument_group(
        "fused stages",
        "then extract the features, compute the study's metric set and run the probes",
    )
    fused.add_argument("--features-out", help="the features stage's output folder")
    fused.add_argument("--metrics-out", help="the metrics stage's Parquet")
    fused.add_argument("--study", help="whose metric set")
    fused.add_argument("--metric-options", type=_json, default={})
    fused.add_argument("--features-code-version", default="unknown")
    fused.add_argument("--metrics-code-version", default="unknown")
    fused.add_argument("--probes-out", help="every probe's rows of the run (Parquet)")
    fused.add_argument("--probes-code-version", default="unknown")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("features", help="penultimate features of every checkpoint of a run")
    _run_stage_arguments(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("finetune", help="fine-tuning probe of one checkpoint at one LR")
    _run_stage_arguments(p)
    p.add_argument("--step", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("probes", help="every fine-tuning and registered probe of a run")
    _run_stage_arguments(p)
    p.set_defaults(func=cmd_probes)

    p = sub.add_parser("probe", help="a registered probe of a run (e.g. linear), all checkpoints")
    p.add_argument("--name", required=True, help="the probe's name in ncrepro.probes.registry")
    _run_stage_arguments(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("metrics", help="a study's metric set at every checkpoint of a run")
    p.add_argument("--study", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--options", type=_json, default={}, help="the metric set's options (JSON)")
    p.add_argument("--code-version", default="unknown")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("aggregate", help="one tidy Parquet table per study")
    p.add_argument("--sheet", required=True, help="the study's run sheet file")
    p.add_argument("--results", default="results", help="results root (runs, metrics, probes)")
    p.add_argument("--out", required=True)
    p.add_argument("--code-version", default="unknown")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("compute", help="the table of a study without runs, computed directly")
    p.add_argument("--sheet", required=True, help="the study's sheet file (its config)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_compute)

    p = sub.add_parser("study-stage", help="a stage only one study has (its registry entry)")
    p.add_argument("--name", required=True, help="the stage's name in the study's `stages`")
    p.add_argument("--sheet", required=True, help="the study's sheet file")
    p.add_argument("--inputs", nargs="*", default=[], help="the stage's input files")
    p.add_argument("--out", required=True, help="Parquet output")
    p.set_defaults(func=cmd_study_stage)

    p = sub.add_parser("figure", help="render one figure (PDF + PNG + provenance)")
    p.add_argument("--fig", required=True)
    p.add_argument("--sheet", required=True, help="the study's sheet file")
    p.add_argument("--table", help="the study table (studies without runs)")
    p.add_argument("--results", default="results", help="results root (runs, metrics, probes)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("table", help="render one paper-style table (CSV + Markdown)")
    p.add_argument("--name", required=True, help="the table's id in the study registry")
    p.add_argument("--sheet", required=True, help="the study's sheet file")
    p.add_argument("--table", required=True, help="the study table (Parquet)")
    p.add_argument("--results", default="results", help="results root (runs)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("audit", help="verify a figure/table's provenance back to data files")
    p.add_argument("file")
    p.add_argument(
        "--cell",
        nargs=2,
        metavar=("ROW", "COLUMN"),
        help="list the raw values one table cell aggregates: ROW is the 0-based row "
        "number in the table's CSV, COLUMN its column name",
    )
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "estimate", help="runs, steps, GPU-hours and jobs per rule of a preset's studies"
    )
    p.add_argument(
        "--preset",
        action="append",
        help="preset file merged over config.yaml; repeat to merge more, in order "
        "(default: presets/paper.yaml)",
    )
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="ARCH=STEPS_PER_S",
        help="steps/s of the training loop for ARCH at batch 128 of 32x32 images (repeat "
        "per architecture; wins over --rates-file)",
    )
    p.add_argument("--rates-file", help="rates measured by bench/bench_train_loop.py --rates-file")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("check-config", help="validate config files (merged in order)")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_check_config)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is the whole story for the user (no traceback)."""
    from ncrepro.audit import AuditError
    from ncrepro.config import ConfigError
    from ncrepro.data import CorruptDataError, DatasetMissingError
    from ncrepro.errors import CheckpointError, DeviceError

    errors: list[type[BaseException]] = [
        ConfigError,
        CheckpointError,
        DeviceError,
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
    except Interrupted as exc:  # SIGTERM/SIGINT: the resume state is saved, a rerun resumes
        print(f"interrupted: {exc}; rerun to resume", file=sys.stderr, flush=True)
        return 130 if "SIGINT" in str(exc) else 143
    except KeyboardInterrupt:  # Ctrl-C in a stage without resume state: nothing half-written
        print("interrupted (SIGINT); rerun to redo this step", file=sys.stderr, flush=True)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
