# Config validation, the run sheet, code versions, input functions and targets.
import json
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Jobs run `python -m ncrepro`: uv installs the library (editable) into its environment.

from ncrepro.config import ConfigError, validate_config
from ncrepro.provenance import code_version
from ncrepro.runsheet import build_run_sheet, probe_jobs

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

RUN_SHEET, RUN_SPECS = build_run_sheet(config)
PROBE_JOBS = probe_jobs(RUN_SPECS)  # (run, step, lr): one fine-tuning job each
CONDA_ENV = "../../envs/ncrepro.yaml"  # relative to the rule files
CODE = {
    "data": code_version("data", "provenance.py"),
    "train": code_version("train", "models", "data", "runviews.py", "provenance.py"),
    "features": code_version("features", "train", "models", "data", "runviews.py"),
    "metrics": code_version("metrics", "evaluate.py"),
    "probes": code_version("probes", "runviews.py", "train", "models", "data"),
    "aggregate": code_version("aggregate.py", "runsheet.py"),
    "figures": code_version("figures", "provenance.py", "aggregate.py"),
    "ufm": code_version("ufm", "class_encoding.py", "provenance.py"),
}


def ncrepro(stage):
    """`python -m ncrepro` with the stage's code version in the command text: a library
    edit changes the rule's code, so `--list-changes code` names it and it reruns."""
    return f"NCREPRO_CODE_VERSION={CODE[stage]} python -m ncrepro "


# The experiments each figure shows: building one figure runs only their runs.
FIGURES = {
    "nc_limits": {
        "fig1": ["curves"],
        "fig2": ["curves"],
        "fig3": ["grid"],
        "fig4": ["train_size"],
        "fig5": ["transfer"],
    },
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
    step="[0-9]+",
    lr="[0-9.e-]+",
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


# Local scheduling order (Snakemake runs ready jobs by priority): data first, then the
# costliest training runs, so a 2-core run ends on short probe and metric jobs instead
# of one DenseNet started last. Only the order matters (CPU, width 0.125, 32x32: a
# DenseNet121 step costs ~4.6 ResNet18 steps).
ARCH_COST = {"densenet201": 40, "densenet121": 30, "resnet50": 20, "resnet18": 10}


def train_priority(wildcards):
    spec = RUN_SPECS[wildcards.run]
    return 50 + ARCH_COST.get(spec["arch"], 0)


def figure_sheet(wildcards):
    sheet = RUN_SHEET[RUN_SHEET["study"] == wildcards.study]
    return sheet[sheet["experiment"].isin(FIGURES[wildcards.study][wildcards.fig])]


def run_result_files(study, runs):
    """Metric files of `runs` plus the probe files of those that have probes."""
    runs = set(runs)
    files = [f"results/metrics/{study}/{run}.parquet" for run in sorted(runs)]
    files += [
        f"results/probes/{study}/{run}/step{step}/finetune_lr{lr}.parquet"
        for run, step, lr in PROBE_JOBS
        if run in runs
    ]
    files += [
        f"results/probes/{study}/{run}/linear.parquet"
        for run in sorted(runs)
        if "finetune" in RUN_SPECS[run]
    ]
    return files


def figure_metric_files(wildcards):
    return run_result_files(wildcards.study, figure_sheet(wildcards)["run"].unique())


def figure_sheet_json(wildcards):
    return as_json(figure_sheet(wildcards).to_dict("records"))


def study_metric_files(wildcards):
    return run_result_files(wildcards.study, study_runs(wildcards.study))


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
