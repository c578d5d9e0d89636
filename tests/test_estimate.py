"""`ncrepro estimate`: a tiny preset computed by hand, the cost model's scaling, rates
files, the CLI's errors, and the job counts against Snakemake's own dry run."""

from __future__ import annotations

import json

import pytest
import yaml
from pipeline import REPO, job_counts, snakemake, workflow_copy

from ncrepro.cli import main
from ncrepro.estimate import (
    DEFAULT_PRESET,
    EstimateError,
    Rates,
    estimate,
    load_preset,
    load_rates,
    parse_rate,
    rates_document,
    step_cost,
)
from ncrepro.estimate import job_counts as estimated_jobs

SMOKE = str(REPO / "presets" / "smoke.yaml")
# nc_limits alone, without fig4: fig1/2 + fig3 grid (resnet18 on digits and synth10,
# 24 steps at batch 64; fig1/2 reuse the synth10 cell) + fig5 (mlp on digits, 12 steps
# at batch 64, checkpoints 4 and 12, fine-tuning 5 steps at batch 32 for LRs 0.01, 0.1)
TINY = {
    "class_encoding": {"enabled": False},
    "gc_transfer": {"enabled": False},
    "lpc": {"enabled": False},
    "ib_supcon": {"enabled": False},
    "nc_limits": {"train_size": {"enabled": False}},
}
REFERENCE_WORK = 128 * 32 * 32  # a rate's step: 128 images of 32x32 pixels


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return [SMOKE, str(path)]


def test_tiny_preset_by_hand(tiny):
    result = estimate(load_preset(*tiny), load_rates(["resnet18=2", "mlp=4"]))
    study = result["studies"]["nc_limits"]
    # digits are 1x8x8, synth10 3x32x32: a step's work over the reference's
    digits, synth = 64 * 8 * 8 / REFERENCE_WORK, 64 * 32 * 32 / REFERENCE_WORK
    assert (digits, synth) == (1 / 32, 1 / 2)
    resnet_s = 24 * digits / 2 + 24 * synth / 2  # 0.375 + 6
    mlp_s = 12 * digits / 4
    assert study["runs"] == 3
    assert study["by_arch"]["resnet18"] == {
        "count": 2,
        "steps": 48,
        "samples": 48 * 64,
        "hours": pytest.approx(resnet_s / 3600, rel=1e-12),
    }
    assert study["by_arch"]["mlp"]["steps"] == 12 and study["by_arch"]["mlp"]["samples"] == 768
    assert study["training"]["steps"] == 60 and study["training"]["samples"] == 3840
    assert study["training"]["hours"] * 3600 == pytest.approx(6.46875, rel=1e-12)
    assert resnet_s + mlp_s == 6.46875
    # fine-tuning: 2 checkpoints x 2 LRs = 4 jobs of 5 steps at batch 32 on digits, mlp
    ft = study["finetune"]
    assert (ft["count"], ft["steps"], ft["samples"]) == (4, 20, 640)
    assert ft["hours"] * 3600 == pytest.approx(20 * (32 * 64 / REFERENCE_WORK) / 4, rel=1e-12)
    assert study["hours"] == pytest.approx(study["training"]["hours"] + ft["hours"], rel=1e-12)
    assert study["jobs"] == {
        "prepare_data": 2,
        "train": 3,
        "features": 3,
        "metrics": 3,
        "finetune": 4,
        "probe": 1,  # the fig5 pretraining's linear probe
        "aggregate": 1,
        "nc_limits_figure": 5,
        "nc_limits_table": 1,
    }
    assert study["not_estimated"] == {"features": 3, "metrics": 3, "probe:linear": 1}
    assert study["notes"] == ["3 runs have width 0.0625: estimated at the rate's width"]
    assert result["total"]["jobs"] == {**study["jobs"], "all": 1}
    assert result["total"]["training"] == study["training"]


def test_step_cost_scales_with_batch_views_and_pixels():
    rates = load_rates(["resnet50=2"])
    spec = {
        "arch": "resnet50",
        "dataset": {"source": "synth", "params": {"image_size": 16}},
        "training": {"batch_size": 1024, "views": 2},
    }
    batch, seconds = step_cost(spec, 500, rates)  # 500 images: the batch is capped there
    assert batch == 500 and seconds == 500 * 2 * 16 * 16 / REFERENCE_WORK / 2
    batch, seconds = step_cost(spec, -1, rates)  # the full split: the spec's batch
    assert batch == 1024 and seconds == 1024 * 2 * 256 / REFERENCE_WORK / 2
    stl = {**spec, "dataset": {"source": "stl10"}, "training": {"batch_size": 128}}
    assert step_cost(stl, -1, rates) == (128, 9 / 2)  # 96x96: 9 times the pixels


def test_rates_file_reference_and_flags(tmp_path):
    path = tmp_path / "rates.json"
    document = rates_document(
        {"resnet18": 16.0, "mlp": 100.0},
        {"batch_size": 8, "image_size": [32, 32], "views": 1},
        "cpu, 1 threads",
        "fp32",
    )
    path.write_text(json.dumps(document))
    rates = load_rates(["mlp=3"], path)
    # 16 steps/s of 8 images = 1 step/s of 128 images; the flag wins for mlp
    assert rates.steps_per_s("resnet18") == 1.0 and rates.steps_per_s("mlp") == 3.0
    assert rates.sources == {"resnet18": "rates.json: cpu, 1 threads, fp32", "mlp": "--rate"}
    (tmp_path / "bad.json").write_text(json.dumps({"steps_per_s": {}}))
    with pytest.raises(EstimateError, match="not an ncrepro rates file"):
        load_rates([], tmp_path / "bad.json")
    assert parse_rate("densenet121=9") == ("densenet121", 9.0)
    for text in ("resnet18", "resnet18=fast", "=3", "resnet18=-1", "resnet18=nan"):
        with pytest.raises(EstimateError, match="expected ARCH=STEPS_PER_S"):
            parse_rate(text)
    with pytest.raises(EstimateError, match="'vgg11'.*--rate vgg11=STEPS_PER_S"):
        Rates().check({"vgg11": {"gc_transfer"}})


def test_cli_table_json_and_errors(tiny, capsys):
    args = ["estimate", "--preset", tiny[0], "--preset", tiny[1], "--rate", "resnet18=2"]
    assert main([*args, "--rate", "mlp=4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["total"]["training"]["hours"] * 3600 == pytest.approx(6.46875, rel=1e-12)
    assert main([*args, "--rate", "mlp=4"]) == 0
    table = capsys.readouterr().out
    assert "nc_limits: 3 training runs" in table and "TOTAL" in table
    assert "jobs per rule (23): prepare_data 2, train 3" in table
    # a missing rate names the architecture, its study and the flag: one line, exit 2
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no rate for architecture 'mlp' (used by nc_limits)")
    assert "--rate mlp=STEPS_PER_S" in err and "Traceback" not in err
    assert main([*args, "--rate", "mlp"]) == 2
    assert "expected ARCH=STEPS_PER_S" in capsys.readouterr().err


def test_paper_preset_counts():
    """The paper preset's nc_limits jobs (tests/test_workflow.py's dry run counts) and its
    fine-tuning sweep: 10 pretrainings x 8 checkpoints x 7 LRs of 10 000 steps."""
    config = load_preset(DEFAULT_PRESET)
    jobs = estimated_jobs(config)["nc_limits"]
    assert {k: jobs[k] for k in ("train", "features", "metrics", "finetune", "probe")} == {
        "train": 75,
        "features": 75,
        "metrics": 75,
        "finetune": 560,
        "probe": 10,
    }
    archs = ["resnet18", "resnet50", "densenet201", "vgg11_bn", "vgg11", "vgg13", "vgg16", "mlp"]
    result = estimate(config, load_rates([f"{a}=10" for a in archs]))
    assert result["studies"]["nc_limits"]["finetune"]["steps"] == 560 * 10_000
    assert result["total"]["runs"] == sum(s["runs"] for s in result["studies"].values())


# The rules of the studies' own rules files, by what `job_counts` calls them.
OWN_RULES = {
    "own:study_table": "class_encoding_solve",
    "own:gc_bound": "gc_transfer_bound",
    "own:ib_pair": "ib_supcon_pair",
    "own:toy_latents": "lpc_toy",
}


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True])
def test_job_counts_are_snakemakes(tmp_path, fused):
    """Every rule's job count of the smoke preset (all studies) is the dry run's, with one
    job per stage (the cluster's DAG) and with fused stages (the laptop's)."""
    work = workflow_copy(tmp_path)
    override = ["--config", f"fuse_stages={str(fused).lower()}"]
    result = snakemake(work, "-n", "--cores", "1", "--configfile", "presets/smoke.yaml", *override)
    assert result.returncode == 0, result.stderr[-3000:]
    dry_run = job_counts(result.stdout)
    config = load_preset(SMOKE)
    config["fuse_stages"] = fused
    ours = {OWN_RULES.get(k, k): v for k, v in estimated_jobs(config)["total"].items()}
    assert ours == {k: v for k, v in dry_run.items() if k != "total"}
    assert sum(ours.values()) == dry_run["total"]
