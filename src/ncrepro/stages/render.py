"""Render stages: a study's figures (PDF + PNG) and paper-style tables (CSV + Markdown),
each with its provenance; and the study table of a study without runs, computed directly.
What to render comes from the study registry; these functions are the same for all."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ncrepro.atomic import write_text
from ncrepro.provenance import write_provenance
from ncrepro.stages.sheet import read_result_files, read_sheet
from ncrepro.studies import get, input_path, load


def _with_inputs(config: dict, inputs: dict[str, str], results) -> tuple[dict, list[Path]]:
    """The config a renderer sees, with its declared extra input files."""
    paths = {name: Path(input_path(path, str(results))) for name, path in inputs.items()}
    return {**config, "inputs": paths}, list(paths.values())


def render_figure(
    fig_id: str,
    sheet_path: Path,
    out: Path,
    *,
    results: Path = Path("results"),
    table_path: Path | None = None,
) -> pd.DataFrame:
    """Write `out` (.pdf), its .png and .provenance.json; return the rows plotted.

    A run study's figure joins its own runs' metric and probe files under `results`
    (so one figure builds without the other experiments); a study without runs reads
    its study table `table_path`."""
    from ncrepro.figures import save_figure
    from ncrepro.stages.aggregate import KEY_COLUMNS, aggregate_study

    key, config, sheet = read_sheet(sheet_path)
    study = get(key)
    figure = study.figures[fig_id]
    config, extra = _with_inputs(config, figure.inputs, results)
    runs_dir = Path(results) / "runs" / key
    if study.has_runs and figure.experiments:
        sheet = sheet[sheet["experiment"].isin(figure.experiments)]
        inputs = read_result_files(sheet_path, results, sheet["run"])
        if sheet.empty:  # its experiments are switched off: no rows, the renderer says why
            columns = [*KEY_COLUMNS, *(c for c in sheet.columns if c not in KEY_COLUMNS)]
            table = pd.DataFrame(columns=columns)
        else:
            table = aggregate_study(sheet, inputs, runs_dir)
    elif study.has_runs:  # a figure of a run study drawn from its `inputs` only
        inputs, table = [], pd.DataFrame()
    else:
        inputs = [Path(table_path)]
        table = pd.read_parquet(table_path)
    fig, rows, caption = load(figure.render)(table, config)
    png = save_figure(fig, out)
    write_provenance(
        out,
        inputs=inputs + extra,
        rows=rows,
        runs_dir=runs_dir if study.has_runs else None,
        caption=caption,
        outputs=[out, png],
    )
    return rows


def _markdown_cell(value) -> str:
    from ncrepro.figures import compact_number

    if isinstance(value, float):
        return compact_number(value)
    return str(value).replace("|", "\\|")  # a pipe would end the cell


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table; floats in 3 significant digits (the CSV keeps full precision)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for record in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(v) for v in record) + " |")
    return "\n".join(lines) + "\n"


def render_table(
    table_id: str,
    sheet_path: Path,
    table_path: Path,
    out_csv: Path,
    out_md: Path,
    *,
    results: Path = Path("results"),
) -> pd.DataFrame:
    """Write a study's paper-style table as CSV + Markdown + provenance; return it."""
    key, config, _sheet = read_sheet(sheet_path)
    study = get(key)
    table = pd.read_parquet(table_path)
    config, extra = _with_inputs(config, study.tables[table_id].inputs, results)
    output = load(study.tables[table_id].render)(table, config)
    frame = output.frame
    write_text(out_csv, frame.to_csv(index=False))
    shown = frame[output.markdown_columns] if output.markdown_columns else frame
    note = f"{output.note}\n\n" if output.note else ""
    write_text(out_md, f"# {output.title}\n\n{note}{markdown_table(shown)}")
    write_provenance(
        out_csv,
        inputs=[Path(table_path), *extra],
        rows=output.rows if output.rows is not None else table,
        runs_dir=Path(results) / "runs" / key if study.has_runs else None,
        caption=output.title,
        outputs=[out_csv, out_md],
        cells=output.cells,
    )
    return frame
