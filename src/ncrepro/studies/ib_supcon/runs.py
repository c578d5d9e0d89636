"""ib_supcon runs: pairs of SupCon encoders (model 1, model 2) trained independently on
the same data, and the pair analysis each pair gets.

Experiments:
- "in_domain" (Table 1 CIFAR columns, Table 2, Figs 2-3, Fig 4B): one pair per
  `in_domain` dataset; the pair analysis runs at every checkpoint on that dataset;
- "zero_shot" (Table 1 ImageNet32 column, Table 3, Fig 4A/C): one pair on
  `zero_shot.source`; the pair analysis scores it on its own data at the last checkpoint
  and on `zero_shot.target` (zero-shot transfer) at the last checkpoint.

A pair on the same dataset with the same settings serves both experiments (one pair of
runs). Both runs of a pair have the same spec but the seed (model 1 = seeds[0], model 2
= seeds[1]). Model 1's spec names its partner in the probe "ib_pair" (`PAIR_PROBE`),
which the study's own rule produces (workflow/rules/studies/ib_supcon.smk, stage "pair"
of `ncrepro.studies.ib_supcon.pair`): it evaluates both models linearly at every
checkpoint (their test predictions are needed for Table 1's "both"), so the runs do not
also list the registered "linear" probe (it would repeat that work in one more job per
run; `{"linear": {"task": "pretrain", "representation": "backbone"}}` is the same
evaluation of one run).
"""

from __future__ import annotations

from ncrepro.data.registry import DATASETS
from ncrepro.runspec import Run, checkpoint_steps, dataset_entry, run_id

STUDY = "ib_supcon"
PAIR_PROBE = "ib_pair"
IN_DOMAIN, ZERO_SHOT = "in_domain", "zero_shot"
# The pair-analysis rows: `task` (the pair's own data, or the zero-shot target) and
# `representation` (model 1's raw backbone output, its rank transform, its K-dim IB).
OWN, TARGET = "own", "zero_shot"
RAW, RANKED, IB = "raw", "ranked", "ib"


def run_spec(config: dict, entry: dict, seed: int) -> dict:
    """Resolved hyper-parameters of one SupCon encoder on `entry["dataset"]`: the
    study's training block with the entry's `training` overrides."""
    block = config[STUDY]
    training = {**block["training"], **entry.get("training", {})}
    return {
        "study": STUDY,
        "dataset": dataset_entry(config, entry["dataset"]),
        "arch": block["arch"],
        "arch_params": block.get("arch_params", {}),
        "width": block["width"],
        "head": block["head"],
        "classifier": "none",
        "seed": seed,
        "lr": entry.get("lr", block["lr"]),
        "objective": {"name": "supcon", **block["objective"]},
        "training": training,
        "checkpoint_steps": checkpoint_steps(training["checkpoints"], training["steps"]),
    }


def pair_specs(config: dict, entry: dict) -> tuple[dict, dict]:
    """(model 1 spec, model 2 spec); model 1 lists the pair probe with its partner."""
    seed1, seed2 = config[STUDY]["seeds"]
    spec2 = run_spec(config, entry, seed2)
    spec1 = run_spec(config, entry, seed1)
    spec1["probes"] = {PAIR_PROBE: {"partner": run_id(spec2)}}
    return spec1, spec2


def experiment_entries(config: dict) -> list[tuple[str, dict]]:
    """(experiment, dataset entry) of every pair, in figure order."""
    block = config[STUDY]
    out = [(IN_DOMAIN, entry) for entry in block.get("in_domain", [])]
    zero_shot = block.get("zero_shot") or {}
    if zero_shot.get("enabled", False):
        out.append((ZERO_SHOT, zero_shot["source"]))
    return out


def runs(config: dict) -> list[Run]:
    """Both runs of every pair, once per experiment they serve."""
    out = []
    for experiment, entry in experiment_entries(config):
        spec1, spec2 = pair_specs(config, entry)
        rid1, rid2 = run_id(spec1), run_id(spec2)
        for model, spec, partner in ((1, spec1, rid2), (2, spec2, rid1)):
            extra = {"pair_model": model, "pair_partner": partner, "paper_dataset": entry["paper"]}
            out.append(Run(experiment, spec, -1, extra))
    return out


def pair_experiments(sheet, run: str) -> set[str]:
    """The experiments a model-1 run serves (what its pair analysis computes)."""
    return set(sheet.loc[sheet["run"] == run, "experiment"])


def zero_shot_target(config: dict) -> str | None:
    zero_shot = config[STUDY].get("zero_shot") or {}
    return zero_shot["target"]["dataset"] if zero_shot.get("enabled", False) else None


def pair_inputs(config: dict, sheet, specs: dict, run: str) -> dict[str, str]:
    """The files the pair analysis of model-1 run `run` reads, relative to the results
    root: its sheet, both run records and checkpoint folders, the prepared data of the
    pair's dataset and (zero-shot source pairs) of the target. `inputs_order` of the
    stage: sheet, record1, record2, manifest, [target_manifest]."""
    partner = specs[run]["probes"][PAIR_PROBE]["partner"]
    dataset = specs[run]["dataset"]["key"]
    files = {
        "sheet": f"sheets/{STUDY}.json",
        "record1": f"runs/{STUDY}/{run}/run.json",
        "record2": f"runs/{STUDY}/{partner}/run.json",
        "manifest": f"data/{dataset}/manifest.json",
        "ckpt1": f"runs/{STUDY}/{run}/ckpt",
        "ckpt2": f"runs/{STUDY}/{partner}/ckpt",
        "train": f"data/{dataset}/train.npz",
        "test": f"data/{dataset}/test.npz",
    }
    target = zero_shot_target(config)
    if target is not None and ZERO_SHOT in pair_experiments(sheet, run):
        files["target_manifest"] = f"data/{target}/manifest.json"
        files["target_train"] = f"data/{target}/train.npz"
        files["target_test"] = f"data/{target}/test.npz"
    return files


STAGE_INPUTS = ("sheet", "record1", "record2", "manifest", "target_manifest")


def stage_arguments(inputs) -> str:
    """The pair stage's --inputs from the rule's named inputs, in `STAGE_INPUTS` order."""
    return " ".join(str(inputs[name]) for name in STAGE_INPUTS if name in inputs.keys())


class RuleSupport:
    """What the study's rules file (workflow/rules/studies/ib_supcon.smk) asks: the pair
    jobs, their input files under the preset's results root (`res`) and resources."""

    def __init__(self, config: dict, sheet, specs: dict, res):
        self.config, self.sheet, self.specs, self.res = config, sheet, specs, res

    def enabled(self) -> bool:
        return bool((self.config.get(STUDY) or {}).get("enabled", False))

    def pair_runs(self) -> str:
        """The model-1 runs as a wildcard pattern ("" if none)."""
        return "|".join(model_one_runs(self.specs)) if self.enabled() else ""

    def pair_files(self, run: str) -> dict[str, str]:
        files = pair_inputs(self.config, self.sheet, self.specs, run)
        return {name: self.res(path) for name, path in files.items()}

    @staticmethod
    def stage_arguments(inputs) -> str:
        return stage_arguments(inputs)

    def resource(self, key: str, default):
        """A cluster resource of the pair jobs (ib_supcon.analysis), else `default`."""
        return (self.config.get(STUDY) or {}).get("analysis", {}).get(key, default)


def model_one_runs(specs: dict) -> list[str]:
    """Run ids whose spec lists the pair probe (model 1 of a pair)."""
    return sorted(r for r, s in specs.items() if PAIR_PROBE in s.get("probes", {}))


def _shape(config: dict, key: str) -> tuple[int, int] | None:
    source = config["datasets"].get(key, {}).get("source")
    info = DATASETS.get(source)
    return None if info is None else (info.channels, info.image_size)


def check_config(config: dict) -> list[str]:
    """Cross-references the schema cannot express."""
    block = config[STUDY]
    problems = []
    if len(set(block["seeds"])) != 2:
        problems.append(f"ib_supcon.seeds must be two different seeds, got {block['seeds']}")
    used = [(e["dataset"], "in_domain") for e in block.get("in_domain", [])]
    zero_shot = block.get("zero_shot") or {}
    if zero_shot.get("enabled", False):
        used += [(zero_shot["source"]["dataset"], "zero_shot.source")]
        used += [(zero_shot["target"]["dataset"], "zero_shot.target")]
        source, target = zero_shot["source"]["dataset"], zero_shot["target"]["dataset"]
        if source in config["datasets"] and target in config["datasets"]:
            if _shape(config, source) != _shape(config, target):
                problems.append(
                    f"ib_supcon.zero_shot: source '{source}' images {_shape(config, source)} "
                    f"and target '{target}' images {_shape(config, target)} differ (channels, "
                    "size): the source models cannot read the target images"
                )
    for key, where in used:
        if key not in config["datasets"]:
            problems.append(f"ib_supcon.{where} uses dataset '{key}', which 'datasets' lacks")
    if not block.get("in_domain") and not zero_shot.get("enabled", False):
        problems.append("ib_supcon: no in_domain dataset and zero_shot disabled: nothing to run")
    ckpt = block["training"]["checkpoints"]
    if ckpt["schedule"] == "linear" and "every" not in ckpt:
        problems.append("ib_supcon.training.checkpoints: schedule 'linear' needs 'every'")
    if ckpt["schedule"] == "log" and "count" not in ckpt:
        problems.append("ib_supcon.training.checkpoints: schedule 'log' needs 'count'")
    return problems
