"""The study registry: one package per paper, `ncrepro.studies.<key>`, whose `STUDY`
declares in one place everything the pipeline needs to know about it:

- `runs(config)`: its training runs (run specs, one `ncrepro.runspec.Run` per
  (experiment, run)); probes follow from the specs (`finetune` -> fine-tuning and
  linear probes), so a study declares them with its runs;
- `metrics`: the metric set its metric jobs compute (a library function + options);
- `compute_table`: for a study without runs, the function that computes its long table
  directly (class_encoding solves the unconstrained-features model);
- `figures` and `tables`: id -> the experiments it needs + the function that renders it;
  every study has the table "claims" (each claim of its paper with this run's verdict);
- `check_config(config)`: the checks its schema part cannot express;
- `stages`: stages only this study has, name -> "module:function" called as
  `fn(config, inputs) -> DataFrame` by `ncrepro study-stage` from a rule of the study's
  rules file (e.g. an analysis over a pair of runs, a toy model of a figure).

Besides the package, a study brings `workflow/rules/studies/<key>.smk` (its figure/table
rules with their report captions, and any stage only it has), its schema part
`workflow/schemas/studies/<key>.schema.yaml` and captions under `workflow/report/`.
`common.smk` derives targets, the run sheet, probe jobs and code versions from here.

Render functions are named as "module:function" strings and imported only when a job
renders: the Snakefile imports this registry at every invocation and must not pay for
matplotlib, and a figure edit must not change the code version of the training stage.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ncrepro.runspec import SHEET_COLUMNS, Run, run_id, sheet_row


@dataclass(frozen=True)
class Figure:
    """`render(table, config) -> (matplotlib figure, rows used, caption)`.

    `experiments`: the experiments whose runs the figure plots (only those are joined).
    `inputs`: further files it reads, name -> path from the working directory, where
    "{results}" stands for the preset's results folder (e.g. a study stage's output
    "{results}/tables/<key>/toy.parquet", or `published/<key>.csv`): declared inputs of
    its job, hashed in its provenance, passed to `render` as `config["inputs"][name]`."""

    render: str
    experiments: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """`render(table, config) -> TableOutput`, from the study's long table; `inputs` as
    for `Figure`."""

    render: str
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class TableOutput:
    """A paper-style table: `frame` is written as CSV (full precision) and Markdown
    (`markdown_columns`, 4 significant digits) under `title` and `note`; `rows` are the
    long-table rows it used and `cells` the sources of each cell (`ncrepro audit --cell`)."""

    frame: pd.DataFrame
    title: str
    note: str = ""
    markdown_columns: list[str] | None = None
    rows: pd.DataFrame | None = None
    cells: dict | None = None


@dataclass(frozen=True)
class MetricSet:
    """The metrics of one checkpoint: `compute(train, test, num_classes, *, seed,
    **options(block))` returns rows {split, metric, value, **conventions}."""

    compute: str
    options: Callable[[dict], dict] = field(default=lambda block: {})


@dataclass(frozen=True)
class Study:
    key: str
    paper: str
    figures: dict[str, Figure]
    tables: dict[str, Table]
    runs: Callable[[dict], list[Run]] | None = None
    metrics: MetricSet | None = None
    compute_table: str | None = None
    check_config: Callable[[dict], list[str]] = field(default=lambda config: [])
    stages: dict[str, str] = field(default_factory=dict)

    @property
    def has_runs(self) -> bool:
        return self.runs is not None


def input_path(path: str, results: str) -> str:
    """A Figure/Table input path with "{results}" replaced by the preset's results folder."""
    return path.replace("{results}", results)


def load(reference: str):
    """The object a "module:function" reference names."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def study_keys() -> list[str]:
    """Every study package in this folder (a new study is found without being listed)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def get(key: str) -> Study:
    if key not in study_keys():
        raise KeyError(f"no study {key!r} (studies: {', '.join(study_keys())})")
    study = importlib.import_module(f"{__name__}.{key}").STUDY
    if study.key != key:
        raise ValueError(f"ncrepro.studies.{key} declares key {study.key!r}")
    return study


def enabled_studies(config: dict) -> list[Study]:
    return [get(k) for k in study_keys() if (config.get(k) or {}).get("enabled", False)]


def study_config(config: dict, key: str) -> dict:
    """The part of the config a study's stages see (captions, metric options)."""
    return {"preset": config["preset"], "datasets": config["datasets"], key: config[key]}


def check_config(config: dict) -> list[str]:
    """Every enabled study's own cross-checks (after schema validation)."""
    return [p for study in enabled_studies(config) for p in study.check_config(config)]


def build_run_sheet(config: dict) -> tuple[pd.DataFrame, dict[str, dict]]:
    """(sheet, specs): one sheet row per (study, experiment, run) of every enabled study
    (SHEET_COLUMNS plus the studies' own columns); specs maps run id -> spec."""
    rows, specs = [], {}
    for study in enabled_studies(config):
        for run in study.runs(config) if study.has_runs else []:
            rid = run_id(run.spec)
            if specs.setdefault(rid, run.spec) != run.spec:
                raise ValueError(f"two different specs share the run id {rid}")
            rows.append(sheet_row(study.key, run))
    extra = sorted({c for row in rows for c in row} - set(SHEET_COLUMNS))
    sheet = pd.DataFrame(rows, columns=[*SHEET_COLUMNS, *extra])
    return sheet.drop_duplicates(["study", "experiment", "run"]).reset_index(drop=True), specs


def targets(config: dict, results: str = "results") -> list[str]:
    """What the main job builds under `results`: every enabled study's table, figures
    and tables."""
    out = []
    for study in enabled_studies(config):
        out.append(f"{results}/tables/{study.key}.parquet")
        out += [f"{results}/figures/{study.key}/{fig}.pdf" for fig in study.figures]
        out += [f"{results}/tables/{study.key}/{table}.csv" for table in study.tables]
    return out
