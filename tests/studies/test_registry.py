"""The study contract, for every study in the registry; and a throw-away study added from
test-only files, run end to end without editing any shared file."""

from __future__ import annotations

import re
import textwrap

import pandas as pd
import pytest
import yaml
from pipeline import job_counts, snakemake, workflow_copy

from ncrepro import studies
from ncrepro.config import load_config, load_schema, validate_config
from ncrepro.provenance import module_closure
from ncrepro.studies import build_run_sheet, get, load, study_keys, targets

PRESETS = [[], ["presets/smoke.yaml"], ["presets/paper.yaml"]]
KEYS = study_keys()


def test_registry_finds_every_study_package():
    assert {"nc_limits", "class_encoding"} <= set(KEYS)


@pytest.mark.parametrize("key", KEYS)
def test_study_declares_everything_in_one_place(repo, key):
    study = get(key)
    assert study.key == key and study.paper
    assert "claims" in study.tables, "every study writes a claims table"
    assert study.has_runs != (study.compute_table is not None), "runs xor a computed table"
    if study.has_runs:
        assert study.metrics is not None and callable(load(study.metrics.compute))
    for figure in study.figures.values():
        assert callable(load(figure.render))
    for table in study.tables.values():
        assert callable(load(table.render))
    # its own files: rules, schema part, captions named by its rules
    rules = (repo / f"workflow/rules/studies/{key}.smk").read_text()
    assert (repo / f"workflow/schemas/studies/{key}.schema.yaml").is_file()
    for caption in re.findall(r'caption="([^"]+)"', rules):
        assert (repo / "workflow/rules/studies" / caption).resolve().is_file(), caption


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("preset", PRESETS, ids=["quick", "smoke", "paper"])
def test_every_preset_validates_and_resolves_to_targets(repo, key, preset):
    config = load_config(repo / "config.yaml", *(repo / p for p in preset))
    validate_config(config)
    schema = load_schema()
    assert key in schema["properties"], "the study's schema part is merged in"
    if not config.get(key, {}).get("enabled"):
        pytest.skip(f"{key} is off in this preset")
    wanted = targets(config, "results")
    study = get(key)
    assert f"results/tables/{key}.parquet" in wanted
    for fig in study.figures:
        assert f"results/figures/{key}/{fig}.pdf" in wanted
    for table in study.tables:
        assert f"results/tables/{key}/{table}.csv" in wanted
    sheet, specs = build_run_sheet(config)
    runs = sheet[sheet["study"] == key]
    assert study.has_runs == (len(runs) > 0)
    experiments = {e for f in study.figures.values() for e in f.experiments}
    assert experiments <= set(runs["experiment"]) | ({""} if not experiments else set())


@pytest.mark.parametrize("key", KEYS)
def test_study_smoke_config_dry_runs_alone(tmp_path, key):
    """Each study's smoke configuration plans on its own (the others switched off)."""
    work = workflow_copy(tmp_path)
    off = {other: {"enabled": False} for other in KEYS if other != key}
    (work / "only.yaml").write_text(yaml.safe_dump(off))
    result = snakemake(
        work, "-n", "--cores", "1", "--configfile", "presets/smoke.yaml", "only.yaml"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["all"] == 1
    assert not any(rule.startswith(tuple(o for o in KEYS if o != key)) for rule in counts)


def test_study_code_is_not_in_the_training_stage():
    """Render code is referenced lazily: editing a figure never reruns training."""
    closure = {p.as_posix() for p in module_closure("ncrepro.stages.train")}
    assert not any("/studies/" in p or "/figures/" in p for p in closure)
    assert any(p.endswith("train/loop.py") for p in closure)


# --------------------------------------------------------------------------- a new study

TOY_PACKAGE = '''
"""toy: a throw-away study that exists only in a test (registry contract)."""

from ncrepro.runspec import Run, checkpoint_steps, dataset_entry
from ncrepro.studies import Figure, MetricSet, Study, Table


def runs(config):
    block = config["toy"]
    training = {
        "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32,
        "steps": block["steps"], "lr_schedule": "constant", "normalize": "pixel",
        "augment": "none", "checkpoints": {"schedule": "linear", "every": block["every"]},
    }
    out = []
    for seed in block["seeds"]:
        spec = {
            "study": "toy", "dataset": dataset_entry(config, "digits"), "arch": "mlp",
            "arch_params": {"depth": 1, "hidden": 16}, "width": 1.0, "seed": seed,
            "lr": 0.05, "objective": {"name": "cross_entropy"}, "training": training,
            "checkpoint_steps": checkpoint_steps(training["checkpoints"], block["steps"]),
        }
        out.append(Run("main", spec))
    return out


def check_config(config):
    return [] if config["toy"]["steps"] >= config["toy"]["every"] else ["toy: steps < every"]


STUDY = Study(
    key="toy",
    paper="A test-only study",
    runs=runs,
    check_config=check_config,
    metrics=MetricSet(compute="ncrepro.studies.toy.analysis:metric_set"),
    figures={"curve": Figure("ncrepro.studies.toy.analysis:curve", ("main",))},
    tables={"claims": Table("ncrepro.studies.toy.analysis:claims")},
)
'''

TOY_ANALYSIS = """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncrepro.metrics import ClassStats, accuracy, nc1
from ncrepro.studies import TableOutput


def metric_set(train, test, num_classes, *, seed):
    rows = []
    for split, data in (("train", train), ("test", test)):
        stats = ClassStats.from_features(data["features"], data["labels"], num_classes)
        rows.append({"split": split, "metric": "nc1", "value": nc1(stats)})
        acc = accuracy(data["logits"], data["labels"])
        rows.append({"split": split, "metric": "accuracy", "value": acc})
    return rows


def curve(table, config):
    rows = table[table["metric"] == "nc1"]
    fig, ax = plt.subplots()
    for split, part in rows.groupby("split"):
        ax.plot(part["step"], part["value"], marker="o", label=split)
    ax.legend()
    return fig, rows, "toy: NC1 vs step"


def claims(table, config):
    final = table[(table["metric"] == "accuracy") & (table["split"] == "train")]
    value = float(final.sort_values("step")["value"].iloc[-1])
    frame = pd.DataFrame([{"claim_id": "learns", "value": value,
                           "verdict": "supported" if value > 0.5 else "not supported"}])
    return TableOutput(frame=frame, title="toy: claims", rows=final)
"""

TOY_RULES = """
localrules:
    toy_figure,
    toy_table,


use rule figure as toy_figure with:
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=report(
            res("figures/{study}/{fig}.png"),
            caption="../../report/toy.rst",
            category="toy",
        ),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    benchmark:
        res("benchmarks/toy_figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study="toy",


use rule table as toy_table with:
    output:
        csv=res("tables/{study}/{table}.csv"),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    benchmark:
        res("benchmarks/toy_table/{study}/{table}.tsv")
    wildcard_constraints:
        study="toy",
"""

TOY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["enabled"],
    "properties": {
        "enabled": {"type": "boolean"},
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "steps": {"type": "integer", "minimum": 1},
        "every": {"type": "integer", "minimum": 1},
    },
}


@pytest.mark.slow
def test_a_new_study_is_added_without_editing_shared_files(tmp_path):
    work = workflow_copy(tmp_path)
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    added = {
        "src/ncrepro/studies/toy/__init__.py": TOY_PACKAGE,
        "src/ncrepro/studies/toy/analysis.py": TOY_ANALYSIS,
        "workflow/rules/studies/toy.smk": TOY_RULES,
        "workflow/schemas/studies/toy.schema.yaml": yaml.safe_dump(TOY_SCHEMA),
        "workflow/report/toy.rst": "A test-only study.\n",
        "toy.yaml": yaml.safe_dump(
            {
                **{key: {"enabled": False} for key in KEYS},  # every real study off
                "toy": {"enabled": True, "seeds": [0], "steps": 20, "every": 10},
            }
        ),
    }
    for name, text in added.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(textwrap.dedent(text).lstrip())

    (work / "toy_bad.yaml").write_text(yaml.safe_dump({"toy": {"steps": 5, "every": 10}}))
    bad = snakemake(work, "-n", "--cores", "1", "--configfile", "toy.yaml", "toy_bad.yaml")
    assert bad.returncode != 0 and "toy: steps < every" in bad.stdout + bad.stderr

    result = snakemake(work, "--cores", "2", "--configfile", "toy.yaml", timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_parquet(work / "results/quick/tables/toy.parquet")
    assert set(table["metric"]) == {"nc1", "accuracy"}
    assert sorted(table["step"].unique()) == [10, 20]
    assert (work / "results/quick/figures/toy/curve.png").stat().st_size > 5_000
    claims = pd.read_csv(work / "results/quick/tables/toy/claims.csv")
    assert claims["claim_id"].tolist() == ["learns"]
    # nothing that existed before was changed: the study is only its own new files
    for path, content in before.items():
        assert path.read_bytes() == content, path.relative_to(work)
    assert studies.get("nc_limits")  # the real registry is untouched by the copy
