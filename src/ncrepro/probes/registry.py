"""Probes of a trained run that need its model (not only its feature files), by name.

A run spec lists the probes it gets in `spec["probes"] = {name: settings}`. Each becomes
one job, `results/probes/{study}/{run}/{name}.parquet`, that calls the function
registered here as `fn(context, settings, log) -> list of rows` (rows: run, step,
split, metric, value, plus the probe's own columns). `context` is the run's
`ncrepro.stages.context.RunContext` (spec, record, views of the prepared data,
normalizer, `model_at(step)`, device). The rows join the study table like metric rows.

Functions are named as "module:function" strings, so the workflow can list the probe
names without importing torch. A probe name that is not registered here belongs to a
study and is produced by a rule of that study's own rules file (e.g. an analysis over
a pair of runs). Fine-tuning is not a probe of this kind: one job per (checkpoint, LR).
"""

from __future__ import annotations

PROBES: dict[str, str] = {
    "linear": "ncrepro.probes.linear:linear_probe_checkpoints",
    "geometric": "ncrepro.probes.geometric:geometric_probe",
    "gc_sampling": "ncrepro.probes.geometric:gc_sampling_probe",
    "fewshot": "ncrepro.probes.fewshot:fewshot_probe",
    "deepfool": "ncrepro.probes.deepfool:deepfool_probe",
}


def probe_function(name: str):
    """The function registered under `name`."""
    import importlib

    if name not in PROBES:
        raise KeyError(f"no probe {name!r} (registered: {', '.join(sorted(PROBES))})")
    module, _, function = PROBES[name].partition(":")
    return getattr(importlib.import_module(module), function)
