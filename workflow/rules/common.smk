# Config validation, the run sheet, code versions, input functions and targets.
import json
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Jobs run `python -m ncrepro`: uv installs the library (editable) into its environment.

from ncrepro.config import ConfigError, validate_config
from ncrepro.provenance import code_version
from ncrepro.runsheet import build_run_sheet

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

RUN_SHEET, RUN_SPECS = build_run_sheet(config)
CONDA_ENV = "../../envs/ncrepro.yaml"  # relative to the rule files
CODE = {
    "data": code_version("data", "provenance.py"),
    "train": code_version("train", "models", "data", "provenance.py"),
    "features": code_version("features", "train", "models", "data"),
    "metrics": code_version("metrics", "evaluate.py"),
    "aggregate": code_version("aggregate.py", "runsheet.py"),
    "figures": code_version("figures", "provenance.py", "aggregate.py"),
    "ufm": code_version("ufm", "class_encoding.py", "provenance.py"),
}
# The experiments each figure shows: building one figure runs only their runs.
FIGURES = {
    "nc_limits": {"fig1": ["curves"], "fig2": ["curves"], "fig3": ["grid"]},
    "class_encoding": {"fig1": [], "transition": [], "encodings": []},
}
# Studies whose figures come from trained runs (metric files); the others have
# their own rules (class_encoding solves the UFM directly).
RUN_STUDIES = "nc_limits"
TABLES = {"class_encoding": ["encodings"]}


wildcard_constraints:
    study="[a-z_]+",
    run="[A-Za-z0-9_.-]+",
    dataset="[a-z0-9_]+",
    fig="[a-z0-9_]+",


def as_json(obj):
    """Compact JSON for a single-quoted shell argument."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    if "'" in text:
        raise WorkflowError(f"single quote in a config value: {text[:80]}")
    return text


def enabled_studies():
    return [s for s in FIGURES if config.get(s, {}).get("enabled", False)]


def study_runs(study):
    return sorted(RUN_SHEET.loc[RUN_SHEET["study"] == study, "run"].unique())


def study_sheet(study):
    return RUN_SHEET[RUN_SHEET["study"] == study].to_dict("records")


def run_spec(wildcards):
    return RUN_SPECS[wildcards.run]


def run_dataset(wildcards):
    return RUN_SPECS[wildcards.run]["dataset"]["key"]


def data_files(wildcards):
    folder = data_dir(wildcards)
    return {
        "train": f"{folder}/train.npz",
        "test": f"{folder}/test.npz",
        "manifest": f"{folder}/manifest.json",
    }


def dataset_source(wildcards):
    return config["datasets"][wildcards.dataset]["source"]


def dataset_params(wildcards):
    return as_json(config["datasets"][wildcards.dataset].get("params", {}))


def spec_json(wildcards):
    return as_json(RUN_SPECS[wildcards.run])


def figure_sheet(wildcards):
    sheet = RUN_SHEET[RUN_SHEET["study"] == wildcards.study]
    return sheet[sheet["experiment"].isin(FIGURES[wildcards.study][wildcards.fig])]


def figure_metric_files(wildcards):
    runs = sorted(figure_sheet(wildcards)["run"].unique())
    return [f"results/metrics/{wildcards.study}/{run}.parquet" for run in runs]


def figure_sheet_json(wildcards):
    return as_json(figure_sheet(wildcards).to_dict("records"))


def study_metric_files(wildcards):
    return [
        f"results/metrics/{wildcards.study}/{run}.parquet"
        for run in study_runs(wildcards.study)
    ]


def data_dir(wildcards):
    return f"results/data/{run_dataset(wildcards)}"


def sheet_json(wildcards):
    return as_json(study_sheet(wildcards.study))


def figure_config_json(wildcards):
    study = getattr(wildcards, "study", "class_encoding")
    return as_json(
        {
            "preset": config["preset"],
            "datasets": config["datasets"],
            study: config[study],
        }
    )


def rule_resources(stage, key, default):
    return config.get("resources", {}).get(stage, {}).get(key, default)


def all_targets():
    targets = []
    for study in enabled_studies():
        targets.append(f"results/tables/{study}.parquet")
        targets += [f"results/figures/{study}/{fig}.pdf" for fig in FIGURES[study]]
        targets += [f"results/tables/{study}/{t}.csv" for t in TABLES.get(study, [])]
    return targets


def study_block_json(study):
    return as_json(config[study])
