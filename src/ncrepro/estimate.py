"""`ncrepro estimate`: the compute a preset's studies need, from the speed of the training
loop per architecture.

Everything is read off the study registry, as the workflow reads it (`common.smk`): the
runs are `ncrepro.studies.build_run_sheet`, the fine-tuning jobs `ncrepro.runspec.
probe_jobs`, the per-run probes `probe_names`, the targets' figures and tables the
registry's. Nothing here runs Snakemake.

Rates are steps/s of ncrepro's training loop per architecture at a reference batch
(`Rates`: 128 images of 32x32 pixels, one view, unless a rates file says otherwise), as
`bench/bench_train_loop.py` measures them. A run's step costs

    (batch x views x H x W) / (reference batch x views x H x W) / rate(arch)

seconds: work linear in images and pixels, which holds for a saturated GPU. It is
optimistic for small batches (per-step overheads do not shrink with the batch) and
does not see the objective (a `gc_penalty` step does K extra double-backward passes; the
estimate says so where a study has them). Training and fine-tuning (`spec["finetune"]`:
the same step function, `ncrepro.train.steps.StepLoop`) are estimated; the other job
kinds (features, metrics, probes, study stages) have no measured basis here and are
listed by job count only.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ncrepro.config import ConfigError, load_config, validate_config
from ncrepro.data.registry import DATASETS
from ncrepro.probes.registry import PROBES
from ncrepro.runspec import probe_jobs, probe_names
from ncrepro.studies import build_run_sheet, enabled_studies

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "config.yaml"  # what every preset is merged over (the Snakefile's)
DEFAULT_PRESET = "presets/paper.yaml"
RATES_FORMAT = "ncrepro-rates-1"
REFERENCE = {"batch_size": 128, "image_size": [32, 32], "views": 1}


class EstimateError(ConfigError):
    """A missing or malformed rate (reported without a traceback)."""


@dataclass
class Rates:
    """Throughput per architecture in reference work per second: samples x views x pixels
    per second (a rate of r steps/s at the reference is r x batch x views x H x W)."""

    throughput: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # arch -> where its rate came from

    def add(self, arch: str, steps_per_s: float, reference: dict, source: str) -> None:
        if not (isinstance(steps_per_s, int | float) and steps_per_s > 0):
            raise EstimateError(f"rate of {arch} must be a positive number of steps/s")
        self.throughput[arch] = steps_per_s * _work(
            reference["batch_size"], reference["views"], reference["image_size"]
        )
        self.sources[arch] = source

    def steps_per_s(self, arch: str) -> float:
        """The rate at the default reference (REFERENCE)."""
        return self.throughput[arch] / _work(
            REFERENCE["batch_size"], REFERENCE["views"], REFERENCE["image_size"]
        )

    def step_seconds(self, arch: str, batch: int, views: int, image_size) -> float:
        return _work(batch, views, image_size) / self.throughput[arch]

    def check(self, used: dict[str, set[str]]) -> None:
        """Raise naming every architecture in `used` (arch -> studies) without a rate."""
        missing = sorted(set(used) - set(self.throughput))
        if missing:
            names = "; ".join(f"{a!r} (used by {', '.join(sorted(used[a]))})" for a in missing)
            flags = " ".join(f"--rate {a}=STEPS_PER_S" for a in missing)
            raise EstimateError(
                f"no rate for architecture {names}: pass {flags} (steps/s of the training "
                f"loop at batch {REFERENCE['batch_size']} of 32x32 images) or a --rates-file "
                "that has them (uv run python bench/bench_train_loop.py --rates-file FILE)"
            )


def _work(batch: int, views: int, image_size) -> float:
    height, width = image_size
    return float(batch * views * height * width)


def parse_rate(text: str) -> tuple[str, float]:
    """ "resnet18=25.3" -> ("resnet18", 25.3)."""
    arch, sep, value = text.partition("=")
    try:
        rate = float(value)
    except ValueError:
        rate = math.nan
    if not sep or not arch or not (rate > 0 and math.isfinite(rate)):
        raise EstimateError(f"--rate {text!r}: expected ARCH=STEPS_PER_S, e.g. resnet18=25.3")
    return arch, rate


def rates_document(steps_per_s: dict[str, float], reference: dict, device: str, precision: str):
    """What a rates file holds (written by bench/bench_train_loop.py)."""
    return {
        "format": RATES_FORMAT,
        "device": device,
        "precision": precision,
        "reference": reference,
        "steps_per_s": steps_per_s,
    }


def load_rates(rate_args: list[str] = (), rates_file: str | Path | None = None) -> Rates:
    """Rates from a rates file, then `--rate ARCH=STEPS_PER_S` arguments (which win)."""
    rates = Rates()
    if rates_file is not None:
        try:
            document = json.loads(Path(rates_file).read_text())
        except json.JSONDecodeError as exc:
            raise EstimateError(f"rates file {rates_file} is not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != RATES_FORMAT:
            raise EstimateError(
                f"rates file {rates_file} is not an ncrepro rates file (format {RATES_FORMAT})"
            )
        source = f"{Path(rates_file).name}: {document['device']}, {document['precision']}"
        for arch, rate in document["steps_per_s"].items():
            rates.add(arch, rate, document["reference"], source)
    for text in rate_args:
        arch, rate = parse_rate(text)
        rates.add(arch, rate, REFERENCE, "--rate")
    return rates


def load_preset(*presets: str | Path) -> dict:
    """The validated config of config.yaml with `presets` merged over it, in order (as
    `snakemake --configfile PRESET` merges them). A relative path that is not found from
    the working directory is read from the repository (e.g. presets/paper.yaml)."""
    paths = [p if Path(p).exists() or Path(p).is_absolute() else REPO / p for p in presets]
    config = load_config(BASE_CONFIG, *paths)
    validate_config(config)
    return config


def image_size(dataset: dict) -> tuple[int, int]:
    """(H, W) of a spec's dataset: the registry's size unless its params set one."""
    size = dataset.get("params", {}).get("image_size", DATASETS[dataset["source"]].image_size)
    return int(size), int(size)


def step_cost(spec: dict, n_train: int, rates: Rates) -> tuple[int, float]:
    """(images per step, seconds per step) of a run: its batch (at most `n_train` images
    when known, > 0, as `batch_indices` caps it) in its views, at its image size."""
    t = spec["training"]
    batch = min(t["batch_size"], n_train) if n_train > 0 else t["batch_size"]
    views = t.get("views", 1)
    return batch, rates.step_seconds(spec["arch"], batch, views, image_size(spec["dataset"]))


def job_counts(config: dict) -> dict[str, dict[str, int]]:
    """Snakemake jobs per rule of each enabled study (the study key -> {rule: count}) and
    the whole DAG ("total": data preparation once per dataset, plus the `all` rule).

    The generic rules keep their names; a study's figure and table rules are
    `<key>_figure` / `<key>_table` (docs/architecture.md); rules of a study's own rules
    file are "own:<what they make>": "own:study_table" (a study without runs), "own:<probe>"
    (a per-run probe no registered probe covers) or "own:<file stem>" (a study-level
    stage output that a figure or table reads). With `fuse_stages` the train job also
    extracts features, computes metrics and runs the fine-tuning sweep and registered
    probes (workflow/rules/common.smk)."""
    sheet, specs = build_run_sheet(config)
    finetunes = Counter(run for run, _, _ in probe_jobs(specs))
    fused = config.get("fuse_stages", False)
    out, datasets_all = {}, set()
    for study in enabled_studies(config):
        counts: Counter = Counter()
        runs = sorted(set(sheet.loc[sheet["study"] == study.key, "run"]))
        if study.has_runs:
            datasets = {specs[r]["dataset"]["key"] for r in runs}
            datasets_all |= datasets
            counts.update(prepare_data=len(datasets), train=len(runs), aggregate=1)
            if not fused:
                counts.update(features=len(runs), metrics=len(runs))
            for run in runs:
                names = probe_names(specs[run])
                shared = sum(name in PROBES for name in names)
                if not fused:
                    counts.update(finetune=finetunes[run], probe=shared)
                counts.update(f"own:{name}" for name in names if name not in PROBES)
        else:
            counts["own:study_table"] = 1
        declared = [*study.figures.values(), *study.tables.values()]
        stage_outputs = {p for item in declared for p in item.inputs.values() if "{results}" in p}
        for path in sorted(stage_outputs):
            counts[f"own:{Path(path).stem}"] += 1
        counts[f"{study.key}_figure"] = len(study.figures)
        counts[f"{study.key}_table"] = len(study.tables)
        out[study.key] = _ordered(counts)
    total: Counter = Counter()
    for counts in out.values():
        total.update({k: v for k, v in counts.items() if k != "prepare_data"})
    total.update(prepare_data=len(datasets_all), all=1)
    out["total"] = _ordered(total)
    return out


def _ordered(counts: Counter) -> dict[str, int]:
    """Jobs in pipeline order (data, runs, probes, own rules, figures, tables), no zeros."""
    chain = ["prepare_data", "train", "features", "metrics", "finetune", "probe"]
    chain += ["aggregate"]

    def rank(rule: str) -> tuple:
        if rule in chain:
            return (0, chain.index(rule), rule)
        kinds = ("own:", "_figure", "_table", "all")
        return (1, next(i for i, k in enumerate(kinds) if k in rule), rule)

    return {rule: counts[rule] for rule in sorted(counts, key=rank) if counts[rule]}


@dataclass
class Line:
    """Runs (or fine-tuning jobs) of one kind: how many, their steps, samples, seconds."""

    count: int = 0
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0

    def add(self, steps: int, batch: int, step_seconds: float, count: int = 1) -> None:
        self.count += count
        self.steps += steps * count
        self.samples += steps * batch * count
        self.seconds += steps * step_seconds * count

    def merge(self, other: Line) -> None:
        self.count += other.count
        self.steps += other.steps
        self.samples += other.samples
        self.seconds += other.seconds

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "steps": self.steps,
            "samples": self.samples,
            "hours": self.seconds / 3600,
        }


def estimate(config: dict, rates: Rates) -> dict:
    """The estimate as a JSON-ready dict: per study its runs by architecture (steps,
    samples = steps x batch: images drawn, hours), fine-tuning (count = jobs), jobs per
    rule, the jobs not estimated, notes; and the total."""
    sheet, specs = build_run_sheet(config)
    columns = (sheet["study"], sheet["run"], sheet["n_train"])
    n_train = {(key, run): n for key, run, n in zip(*columns, strict=True)}
    finetunes = Counter(run for run, _, _ in probe_jobs(specs))
    jobs = job_counts(config)
    used: dict[str, set[str]] = {}
    for key, run in zip(sheet["study"], sheet["run"], strict=True):
        used.setdefault(specs[run]["arch"], set()).add(key)
    rates.check(used)
    studies, total_train, total_finetune = {}, Line(), Line()
    for study in enabled_studies(config):
        runs = sorted(set(sheet.loc[sheet["study"] == study.key, "run"]))
        by_arch: dict[str, Line] = {}
        train, finetune = Line(), Line()
        notes, unestimated = Counter(), Counter()
        for run in runs:
            spec = specs[run]
            steps, arch = spec["training"]["steps"], spec["arch"]
            batch, seconds = step_cost(spec, int(n_train[(study.key, run)]), rates)
            by_arch.setdefault(arch, Line()).add(steps, batch, seconds)
            train.add(steps, batch, seconds)
            if finetunes[run]:  # the same step (StepLoop) at the fine-tuning batch, 1 view
                ft = spec["finetune"]
                ft_spec = {**spec, "training": {"batch_size": ft["batch_size"]}}
                ft_batch, ft_seconds = step_cost(ft_spec, -1, rates)
                finetune.add(ft["steps"], ft_batch, ft_seconds, count=finetunes[run])
            notes.update(_notes(spec))
            unestimated.update(features=1, metrics=1)
            unestimated.update(f"probe:{p}" for p in probe_names(spec) if p in PROBES)
        total_train.merge(train)
        total_finetune.merge(finetune)
        counts = jobs[study.key]
        studies[study.key] = {
            "runs": len(runs),
            "by_arch": {a: line.as_dict() for a, line in sorted(by_arch.items())},
            "training": train.as_dict(),
            "finetune": finetune.as_dict(),
            "hours": (train.seconds + finetune.seconds) / 3600,
            "jobs": counts,
            # work without a measured basis: per kind, jobs (or parts of fused jobs)
            "not_estimated": {
                **unestimated,
                **{k: v for k, v in counts.items() if k.startswith("own:")},
            },
            "notes": [f"{count} runs {text}" for text, count in sorted(notes.items())],
        }
    return {
        "reference": REFERENCE,
        "rates": {
            a: {"steps_per_s": rates.steps_per_s(a), "source": rates.sources[a]}
            for a in sorted(rates.throughput)
        },
        "studies": studies,
        "total": {
            "runs": total_train.count,
            "training": total_train.as_dict(),
            "finetune": total_finetune.as_dict(),
            "hours": (total_train.seconds + total_finetune.seconds) / 3600,
            "jobs": jobs["total"],
        },
    }


def _notes(spec: dict) -> list[str]:
    """Why a run's estimate may be off, in words (counted per study)."""
    t, objective = spec["training"], spec.get("objective") or {}
    notes = []
    if t.get("stop_loss") is not None:
        notes.append(
            f"stop once the train loss < {t['stop_loss']:g}: their steps are a cap (an upper bound)"
        )
    if objective.get("name") == "gc_penalty" and objective.get("rate", 0) > 0:
        notes.append(
            "train with the gc_penalty objective (a double backward per output each "
            "step): estimated at the plain rate, a lower bound"
        )
    if spec.get("width", 1.0) != 1.0:
        notes.append(f"have width {spec['width']:g}: estimated at the rate's width")
    return notes


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def format_estimate(result: dict, presets: list[str]) -> str:
    """The estimate as a readable table per study and a total."""
    ref = result["reference"]
    h, w = ref["image_size"]
    lines = [
        f"Compute estimate for {' + '.join(presets)}",
        f"rates: steps/s of ncrepro's training loop at batch {ref['batch_size']} of "
        f"{h}x{w} images ({ref['views']} view):",
    ]
    lines += [
        f"  {a:<12} {r['steps_per_s']:10.4g}   ({r['source']})" for a, r in result["rates"].items()
    ]
    lines.append(
        f"a run's step takes (batch x views x H x W) / ({ref['batch_size']} x "
        f"{ref['views']} x {h} x {w}) / rate s; hours are GPU-hours when the rates are the "
        "GPU's that will run them"
    )
    header = f"  {'':<14}{'runs/jobs':>10}{'steps':>16}{'samples':>18}{'hours':>12}"
    for key, study in [*result["studies"].items(), ("total", result["total"])]:
        title = "TOTAL" if key == "total" else f"{key}: {study['runs']} training runs"
        lines += ["", title, header]
        for arch, line in study.get("by_arch", {}).items():
            lines.append(_row(arch, line))
        lines.append(_row("training", study["training"]))
        lines.append(_row("fine-tuning", study["finetune"]))
        lines.append(f"  {'hours (training + fine-tuning)':<58}{_fmt(study['hours']):>12}")
        jobs = study["jobs"]
        lines.append(
            f"  jobs per rule ({sum(jobs.values())}): "
            + ", ".join(f"{k} {v}" for k, v in jobs.items())
        )
        if key != "total":
            missing = study["not_estimated"]
            lines.append(
                "  not estimated (no measured basis; jobs or parts of fused jobs): "
                + (", ".join(f"{k} {v}" for k, v in missing.items()) or "-")
            )
            lines += [f"  note: {note}" for note in study["notes"]]
    return "\n".join(lines)


def _row(name: str, line: dict) -> str:
    return (
        f"  {name:<14}{line['count']:>10,}{line['steps']:>16,}{line['samples']:>18,}"
        f"{_fmt(line['hours']):>12}"
    )
