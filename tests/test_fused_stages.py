"""Fused stages (`fuse_stages: true`, the quick preset's laptop mode) write the same numbers
as one job per stage (the smoke preset's and the cluster's DAG): same run records'
checkpoints, same metric files, the same probe rows (one file per run instead of one per
probe and per (checkpoint, LR)), the same study tables."""

import json

import numpy as np
import pandas as pd
import pytest
from pipeline import job_counts, snakemake, workflow_copy

from ncrepro.studies import study_keys

RESULTS = "results/smoke"
# nc_limits has the fine-tuning sweep and the linear probe; gc_transfer the registered
# probes (geometric, fewshot, gc_sampling) and a study stage of its own (gc_bound)
FUSED_STUDIES = ("nc_limits", "gc_transfer")
OFF = {key: {"enabled": False} for key in study_keys() if key not in FUSED_STUDIES}


def smoke_args(*extra):
    config = [f"{key}={json.dumps(value)}" for key, value in OFF.items()]
    return ["--cores", "2", "--configfile", "presets/smoke.yaml", "--config", *config, *extra]


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory):
    work = workflow_copy(tmp_path_factory.mktemp("fused"))
    result = snakemake(work, *smoke_args("fuse_stages=true", "--notemp"))
    assert result.returncode == 0, result.stderr[-5000:]
    return work


def test_fused_dag_has_one_torch_job_per_run(tmp_path):
    work = workflow_copy(tmp_path)
    per_stage = job_counts(snakemake(work, *smoke_args("-n")).stdout)
    fused = job_counts(snakemake(work, *smoke_args("fuse_stages=true", "-n")).stdout)
    assert fused["train"] == per_stage["train"]
    for rule in ("features", "metrics", "finetune", "probe"):
        assert rule not in fused
    assert per_stage["finetune"] > 0 and per_stage["probe"] > 0
    assert fused["total"] == per_stage["total"] - (
        per_stage["features"] + per_stage["metrics"] + per_stage["finetune"] + per_stage["probe"]
    )


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in frame.columns if not c.startswith("code_version")]
    order = [c for c in ("run", "step", "probe", "probe_lr", "split", "metric") if c in keep]
    # a missing value read from several files is None or NaN: NaN, then floats where numeric
    frame = frame[keep].astype(object)
    frame = frame.where(frame.notna(), np.nan).infer_objects()
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


@pytest.mark.slow
def test_fused_stages_write_the_same_numbers(smoke_run, fused_run):
    for study in FUSED_STUDIES:
        per_stage = pd.read_parquet(smoke_run / RESULTS / f"tables/{study}.parquet")
        fused = pd.read_parquet(fused_run / RESULTS / f"tables/{study}.parquet")
        assert len(fused) == len(per_stage) > 0
        pd.testing.assert_frame_equal(_rows(fused), _rows(per_stage), check_like=True)
        for metrics in (fused_run / RESULTS / "metrics" / study).glob("*.parquet"):
            expected = smoke_run / RESULTS / "metrics" / study / metrics.name
            pd.testing.assert_frame_equal(
                _rows(pd.read_parquet(metrics)), _rows(pd.read_parquet(expected))
            )
        for probes in (fused_run / RESULTS / "probes" / study).glob("*/probes.parquet"):
            folder = smoke_run / RESULTS / "probes" / study / probes.parent.name
            separate = [p for p in folder.rglob("*.parquet") if p.name != "gc_bound.parquet"]
            if not separate:  # a run without probes: a file without rows
                assert pd.read_parquet(probes).empty, probes
                continue
            expected = pd.concat([pd.read_parquet(p) for p in separate], ignore_index=True)
            # concatenating files of different probes widens dtypes (None -> object)
            pd.testing.assert_frame_equal(
                _rows(pd.read_parquet(probes)), _rows(expected), check_like=True, check_dtype=False
            )
    # the fused train job keeps (--notemp) the same feature files as the features stage
    for folder in (smoke_run / RESULTS / "features" / "nc_limits").iterdir():
        for path in folder.rglob("*.npz"):
            fused = np.load(fused_run / path.relative_to(smoke_run))
            with np.load(path) as expected:
                assert sorted(fused.files) == sorted(expected.files)
                for key in expected.files:
                    np.testing.assert_array_equal(fused[key], expected[key])
