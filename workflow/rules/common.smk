# Config validation; the run sheet, targets, probe jobs and code versions, all derived
# from the study registry (ncrepro.studies); generic input functions.
import json
import os
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Jobs run `python -m ncrepro`: uv installs the library (editable) into its environment.

from ncrepro import studies
from ncrepro.config import ConfigError, validate_config
from ncrepro.data import CorruptDataError
from ncrepro.data.prepared import check_prepared
from ncrepro.data.registry import DATASETS
from ncrepro.provenance import code_version
from ncrepro.probes.registry import PROBES
from ncrepro.runspec import probe_jobs, probe_names
from ncrepro.stages.sheet import sheet_document, sheet_text

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# Every output of a preset lives under results/<preset>/: quick, smoke and paper (or any
# preset of your own) never overwrite or invalidate each other.
RESULTS = f"results/{config['preset']}"


def res(path):
    """`path` under this preset's results root."""
    return f"{RESULTS}/{path}"


def results_root(wildcards):
    return RESULTS


def study_table_file(wildcards):
    return res(f"tables/{wildcards.study}.parquet")


# The device and the resume interval are execution settings, not hyper-parameters
# (threads neither): jobs read them from the environment, so switching `auto` and the
# device it resolves to reruns nothing; every run.json records the device that ran it.
os.environ.update(
    NCREPRO_DEVICE=config["device"],
    NCREPRO_RESUME_EVERY_S=str(config.get("resume_every_s", 300)),
)

STUDIES = {study.key: study for study in studies.enabled_studies(config)}


def check_prepared_data():
    """A prepared data file changed since it was written is reported now, with the fix,
    before Snakemake plans (and deletes the outputs of) every job downstream of it."""
    for dataset in config["datasets"]:
        try:
            check_prepared(res(f"data/{dataset}"))
        except CorruptDataError as error:
            raise WorkflowError(str(error)) from None


check_prepared_data()
RUN_SHEET, RUN_SPECS = studies.build_run_sheet(config)
# One job per run for train -> features -> metrics -> probes (a laptop), or one job per
# stage, per (checkpoint, LR) and per probe (a cluster): the same numbers.
FUSE_STAGES = config.get("fuse_stages", False)
# The conda environment of every rule (--sdm conda), one path wherever a rule is written.
CONDA_ENV = str(Path(workflow.basedir) / "envs" / "ncrepro.yaml")


def sheet_file(study):
    return res(f"sheets/{study}.json")


def write_sheet_files():
    """RESULTS/sheets/<study>.json for every enabled study, rewritten only when its content
    changes: its mtime then reruns exactly the aggregate/figure/table jobs that read it.
    """
    for key in STUDIES:
        runs = study_runs(key)
        files = {run: relative_result_files(key, run) for run in runs}
        study_block = studies.study_config(config, key)
        document = sheet_document(key, study_block, RUN_SHEET, files)
        path, text = Path(sheet_file(key)), sheet_text(document)
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


# Code versions: a hash of the library files a stage runs (its module and everything it
# imports, ncrepro.provenance.module_closure), passed as a param, so a library edit reruns
# exactly the jobs it affects (`snakemake -n`: reason "Params have changed").
STAGE_MODULES = {
    "data": ["ncrepro.data.prepared"],
    "train": ["ncrepro.stages.train"],
    "features": ["ncrepro.stages.features"],
    "metrics": ["ncrepro.stages.metrics"],
    "probes": ["ncrepro.stages.probes"],
    "aggregate": ["ncrepro.stages.aggregate", "ncrepro.stages.sheet"],
    "render": ["ncrepro.stages.render"],
    "study": ["ncrepro.stages.study"],
}
_CODE_CACHE = {}


def code(stage, *references):
    """Code version of `stage` plus the modules of registry references ("module:fn")."""
    modules = STAGE_MODULES[stage] + [ref.partition(":")[0] for ref in references]
    key = tuple(sorted(modules))
    if key not in _CODE_CACHE:
        _CODE_CACHE[key] = code_version(*key)
    return _CODE_CACHE[key]


def study_package(study):
    return f"ncrepro.studies.{study}:STUDY"


def metrics_code(wildcards):
    return code(
        "metrics",
        study_package(wildcards.study),
        STUDIES[wildcards.study].metrics.compute,
    )


def figure_code(wildcards):
    figure = STUDIES[wildcards.study].figures[wildcards.fig]
    return code("render", study_package(wildcards.study), figure.render)


def table_code(wildcards):
    table = STUDIES[wildcards.study].tables[wildcards.table]
    return code("render", study_package(wildcards.study), table.render)


def probe_code(wildcards):
    return code("probes", PROBES[wildcards.probe])


def compute_code(study):
    return code("study", study_package(study), studies.get(study).compute_table)


def study_stage_code(study, name):
    """Code version of a study's own stage (for its rule in the study's rules file)."""
    return code("study", study_package(study), studies.get(study).stages[name])


wildcard_constraints:
    study="[a-z_]+",
    run="[A-Za-z0-9_.-]+",
    dataset="[a-z0-9_]+",
    step="[0-9]+",
    lr="[0-9.e-]+",
    fig="[a-z0-9_]+",
    table="[a-z0-9_]+",


NEVER = "(?!)"  # a wildcard constraint no value matches: for template rules


def quoted_json(obj):
    """Compact JSON for a single-quoted shell argument (fixed-size objects only)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    if "'" in text:
        raise WorkflowError(f"single quote in a config value: {text[:80]}")
    return text


def run_spec_json(wildcards):
    return quoted_json(RUN_SPECS[wildcards.run])


def run_dataset(wildcards):
    return RUN_SPECS[wildcards.run]["dataset"]["key"]


def data_dir(wildcards):
    return res(f"data/{run_dataset(wildcards)}")


def data_files(wildcards):
    folder = data_dir(wildcards)
    return {
        "train": f"{folder}/train.npz",
        "test": f"{folder}/test.npz",
        "manifest": f"{folder}/manifest.json",
    }


def dataset_source(wildcards):
    return config["datasets"][wildcards.dataset]["source"]


def dataset_reads_root(wildcards):
    """Only datasets read from files depend on data.root / data.download (so changing
    the root does not re-prepare the bundled and generated ones)."""
    return DATASETS[dataset_source(wildcards)].kind == "root"


def dataset_root(wildcards):
    return config["data"]["root"] if dataset_reads_root(wildcards) else ""


def dataset_download(wildcards):
    return config["data"]["download"] if dataset_reads_root(wildcards) else False


def dataset_params(wildcards):
    return quoted_json(config["datasets"][wildcards.dataset].get("params", {}))


def metric_options(wildcards):
    study = STUDIES[wildcards.study]
    return quoted_json(study.metrics.options(config[wildcards.study]))


# Local scheduling order (Snakemake runs ready jobs by priority): data first, then the
# costliest training runs, so a 2-core run ends on short probe and metric jobs instead
# of one DenseNet started last. Only the order matters (CPU, width 0.125, 32x32: a
# DenseNet121 step costs ~4.6 ResNet18 steps).
ARCH_COST = {"densenet201": 40, "densenet121": 30, "resnet50": 20, "resnet18": 10}


def train_priority(wildcards):
    return 50 + ARCH_COST.get(RUN_SPECS[wildcards.run]["arch"], 0)


def rule_resources(stage, key, default):
    return config.get("resources", {}).get(stage, {}).get(key, default)


def probe_file(study, run, probe):
    """The file (relative to RESULTS) that holds a registered probe's rows of a run."""
    name = "probes" if FUSE_STAGES else probe
    return f"probes/{study}/{run}/{name}.parquet"


def relative_result_files(study, run):
    """The metric and probe files of one run (relative to RESULTS): what aggregation reads.
    Fused stages write the fine-tuning sweep and the shared probes of a run to one file;
    a study's own probe stages (e.g. gc_bound) always write their own."""
    spec = RUN_SPECS[run]
    files = [f"metrics/{study}/{run}.parquet"]
    names = probe_names(spec)
    shared = [name for name in names if name in PROBES]
    if FUSE_STAGES and (shared or spec.get("finetune")):
        files.append(f"probes/{study}/{run}/probes.parquet")
    elif not FUSE_STAGES:
        files += [
            f"probes/{study}/{run}/step{step}/finetune_lr{lr}.parquet"
            for _run, step, lr in probe_jobs({run: spec})
        ]
        files += [probe_file(study, run, name) for name in shared]
    files += [
        f"probes/{study}/{run}/{name}.parquet" for name in names if name not in PROBES
    ]
    return files


def run_result_files(study, runs):
    """Run records, metric files and probe files of `runs`."""
    runs = sorted(set(runs))
    files = [res(f"runs/{study}/{run}/run.json") for run in runs]
    return files + [res(f) for run in runs for f in relative_result_files(study, run)]


def study_runs(study, experiments=None):
    sheet = RUN_SHEET[RUN_SHEET["study"] == study]
    if experiments is not None:
        sheet = sheet[sheet["experiment"].isin(experiments)]
    return sheet["run"].unique()


def aggregate_inputs(wildcards):
    return [sheet_file(wildcards.study)] + run_result_files(
        wildcards.study, study_runs(wildcards.study)
    )


def figure_inputs(wildcards):
    """A run study's figure reads its own runs' results (one figure builds without the
    other experiments); a study without runs reads its study table."""
    study = STUDIES[wildcards.study]
    figure = study.figures[wildcards.fig]
    extra = [studies.input_path(p, RESULTS) for p in figure.inputs.values()]
    if not study.has_runs:
        return [sheet_file(study.key), res(f"tables/{study.key}.parquet"), *extra]
    runs = study_runs(study.key, figure.experiments) if figure.experiments else []
    return [sheet_file(study.key), *extra] + run_result_files(study.key, runs)


def table_inputs(wildcards):
    table = STUDIES[wildcards.study].tables[wildcards.table]
    extra = [studies.input_path(p, RESULTS) for p in table.inputs.values()]
    return [
        sheet_file(wildcards.study),
        res(f"tables/{wildcards.study}.parquet"),
        *extra,
    ]


def figure_table_argument(wildcards):
    """`--table` for a study without runs (its figures read the study table)."""
    if STUDIES[wildcards.study].has_runs:
        return ""
    return f"--table {study_table_file(wildcards)}"


SHARED_PROBES = "|".join(PROBES)  # the generic probe rule's names; others: study rules
RUN_STUDIES = "|".join(k for k, s in STUDIES.items() if s.has_runs) or NEVER


def all_targets():
    """Every figure and table, and every file a run keeps (run records, metric and probe
    files): a deleted intermediate is then missing, so a plain rerun rebuilds it (and what
    depends on it) instead of counting it as not needed."""
    kept = [f for study in STUDIES for f in run_result_files(study, study_runs(study))]
    return studies.targets(config, RESULTS) + kept


write_sheet_files()


# Fused stages (fuse_stages): what the train job also writes (probes.parquet: the
# fine-tuning sweep and registered probes of the run, no rows for a run without them),
# the arguments that ask for it (code versions included, so an edit of a later stage
# reruns these jobs), and the constraint that switches the per-stage rules off.
FUSED_OUTPUTS = (
    {
        "features": temp(directory(res("features/{study}/{run}"))),
        "metrics": res("metrics/{study}/{run}.parquet"),
        "probes": res("probes/{study}/{run}/probes.parquet"),
    }
    if FUSE_STAGES
    else {}
)
PER_STAGE_STUDIES = NEVER if FUSE_STAGES else "[a-z_]+"


def fused_arguments(wildcards, output):
    if not FUSE_STAGES:
        return ""
    return (
        f"--features-out {output.features} --metrics-out {output.metrics} "
        f"--study {wildcards.study} --metric-options '{metric_options(wildcards)}' "
        f"--features-code-version {code('features')} "
        f"--metrics-code-version {metrics_code(wildcards)} "
        f"--probes-out {output.probes} "
        f"--probes-code-version {code('probes', *PROBES.values())}"
    )
