"""The pair analysis of ib_supcon (Wang & Palmer): two independently trained SupCon
encoders, model 1 and model 2, compared through their representations (the backbone
output, ResNet-50's 2048-d pooled features at paper scale; not the projection head).

At every checkpoint of an in-domain pair (on the pair's own dataset; test split unless
said otherwise):

- linear evaluation of each model (`ncrepro.probes.linear.linear_probe`: multinomial
  logistic regression, C = 1, on standardized features, fitted on the train split) and the
  fraction of test samples both classify correctly (Table 1);
- CCA between the two models' test representations: all canonical correlations, the
  mean and variance of the K leading ones (Fig. 2), NC1 of model 1 (train and test);
- the rank transform z = Φ⁻¹(rank/(N+1)) of each model's representation, fitted on the
  train split, applied to both splits; the Gaussian IB of x = model 1's ranked train
  representation about y = model 2's (fitted on train): eigenvalues λ_i, the K-dim IB
  T = A x, α_i in the β → ∞ limit (`ncrepro.metrics.information_bottleneck`), its α_i relative
  to their mean (Fig. 4B); linear evaluation of the ranked and of the K-dim IB
  representations, fitted on train and scored on test (Table 2, Fig. 3A);
- ETF signatures (`ncrepro.metrics.etf`) of model 1's train class means in the full
  representation and in the K-dim IB space (Fig. 3).

A zero-shot source pair is scored at its last checkpoint on its own data (linear
evaluation, Table 1) and on the target dataset (Table 3, Fig. 4A/C): linear evaluation
of the raw and ranked representations of the target images and of the IB representation
for every number of dimensions K' of `zero_shot.dims` (and K), the IB being fitted on the
target's train split; K' = the fewest dimensions whose accuracy is within
`kprime_tolerance` of the best accuracy over the sweep (where the accuracy-vs-K' curve
levels off: with a standardized, regularized classifier even the full-rank IB, an
invertible map of the ranked representation, does not score exactly as the ranked
representation does, so the plateau and not the ranked accuracy is the reference); the
α_i of that K'-dim IB.

Covariances get the relative ridge `analysis.ridge` (CCA and IB alike); ranks, IB and
linear classifiers are fitted on the train split (optionally a balanced subsample,
`train_per_class`) and scored on the test split. The representations the analysis used
are written to <results>/representations/ib_supcon/<model-1 run>/ in the feature-file
format (features, labels, index), for independent checks.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ncrepro.metrics.cca import canonical_correlations, cca_conventions, leading_summary
from ncrepro.metrics.collapse import nc1
from ncrepro.metrics.etf import SIGNATURES, class_means, etf_signatures
from ncrepro.metrics.information_bottleneck import (
    gaussian_ib,
    ib_conventions,
    rank_transform,
    relative,
)
from ncrepro.metrics.stats import ClassStats
from ncrepro.probes.linear import linear_probe
from ncrepro.studies.ib_supcon.runs import (
    IB,
    OWN,
    PAIR_PROBE,
    RANKED,
    RAW,
    STUDY,
    TARGET,
    ZERO_SHOT,
    pair_experiments,
)

LINEAR_CONVENTION = "logistic C=1, standardized, lbfgs (sklearn), fit train / score test"
RANK_CONVENTION = "z = Phi^-1(midrank/(N+1)), fitted on train, test through the train CDF"


@dataclass(frozen=True)
class AnalysisOptions:
    ridge: float = 1e-4
    kprime_tolerance: float = 0.01
    dims: tuple[int, ...] = ()
    representations: str = "all"  # keep the representations of: all | final | none

    @classmethod
    def from_block(cls, block: dict) -> AnalysisOptions:
        analysis = block.get("analysis", {})
        zero_shot = block.get("zero_shot") or {}
        return cls(
            ridge=float(analysis.get("ridge", cls.ridge)),
            kprime_tolerance=float(analysis.get("kprime_tolerance", cls.kprime_tolerance)),
            dims=tuple(int(d) for d in zero_shot.get("dims", ())),
            representations=analysis.get("representations", cls.representations),
        )


@dataclass
class Pair:
    """The two models' representations of one dataset's train and test splits."""

    train: tuple[np.ndarray, np.ndarray]  # model 1, model 2
    test: tuple[np.ndarray, np.ndarray]
    train_labels: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    seed: int = 0
    rows: list[dict] = field(default_factory=list)

    def finite(self) -> bool:
        return all(np.isfinite(a).all() for a in (*self.train, *self.test))

    def add(self, split, metric, value, *, model=0, representation=RAW, dims=None, component=None):
        self.rows.append(
            {
                "split": split,
                "metric": metric,
                "value": float(value),
                "model": int(model),
                "representation": representation,
                "dims": math.nan if dims is None else float(dims),
                "component": math.nan if component is None else float(component),
            }
        )

    def linear(self, train, test, *, model, representation, dims=None) -> np.ndarray | None:
        """Linear evaluation of one representation: test and train accuracy rows; returns
        the test predictions."""
        result = linear_probe(
            train,
            self.train_labels,
            test,
            self.test_labels,
            num_classes=self.num_classes,
            seed=self.seed,
            return_predictions=True,
        )
        for split, key in (("test", "accuracy"), ("train", "train_accuracy")):
            self.add(
                split,
                "linear_accuracy",
                result[key],
                model=model,
                representation=representation,
                dims=dims,
            )
        return result["test_predictions"]

    def agreement(self) -> None:
        """Linear evaluation of both raw representations and the both-correct fraction."""
        p1 = self.linear(self.train[0], self.test[0], model=1, representation=RAW)
        p2 = self.linear(self.train[1], self.test[1], model=2, representation=RAW)
        both = np.mean((p1 == self.test_labels) & (p2 == self.test_labels))
        self.add("test", "both_correct", both)

    def etf(self, features, labels, *, representation, dims=None) -> None:
        signatures = etf_signatures(class_means(features, labels, self.num_classes))
        for name in SIGNATURES:
            self.add(
                "train", name, signatures[name], model=1, representation=representation, dims=dims
            )

    def ranked_ib(self, ridge: float):
        """(ranked model-1 train, test) and the Gaussian IB of model 1 about model 2."""
        z1_train, z1_test = rank_transform(self.train[0], self.test[0])
        (z2_train,) = rank_transform(self.train[1])
        ib = gaussian_ib(z1_train, z2_train, ridge=ridge)
        for i, lam in enumerate(ib.eigenvalues, start=1):
            self.add("train", "ib_eigenvalue", lam, representation=RANKED, component=i)
        return z1_train, z1_test, ib

    def scalings(self, ib, dims: int) -> None:
        beta = float("inf")  # the α_i's limit shape (module doc of information_bottleneck)
        self.add("train", "ib_beta", beta, representation=IB, dims=dims)
        for i, a in enumerate(relative(ib.alphas(beta, dims)), start=1):
            self.add("train", "ib_alpha_relative", a, representation=IB, dims=dims, component=i)


def analyse_own(pair: Pair, options: AnalysisOptions, *, full: bool) -> list[dict]:
    """Rows of one checkpoint on the pair's own data (module doc); `full` False: only
    the linear evaluation of both models and their agreement (Table 1)."""
    pair.add("test", "representation_dim", pair.test[0].shape[1], model=1)
    pair.agreement()
    if not full:
        return pair.rows
    k = pair.num_classes
    rho = canonical_correlations(pair.test[0], pair.test[1], ridge=options.ridge)
    for i, r in enumerate(rho, start=1):
        pair.add("test", "cca_coefficient", r, component=i)
    lead = leading_summary(rho, k)
    pair.add("test", "cca_leading_mean", lead["mean"], dims=lead["count"])
    pair.add("test", "cca_leading_var", lead["var"], dims=lead["count"])
    for split, feats, labels in (
        ("train", pair.train[0], pair.train_labels),
        ("test", pair.test[0], pair.test_labels),
    ):
        stats = ClassStats.from_features(feats, labels, k)
        pair.add(split, "nc1", nc1(stats), model=1)
    pair.etf(pair.train[0], pair.train_labels, representation=RAW)

    z_train, z_test, ib = pair.ranked_ib(options.ridge)
    pair.linear(z_train, z_test, model=1, representation=RANKED)
    dims = min(k, len(ib.eigenvalues))
    t_train, t_test = ib.transform(z_train, dims), ib.transform(z_test, dims)
    pair.linear(t_train, t_test, model=1, representation=IB, dims=dims)
    pair.etf(t_train, pair.train_labels, representation=IB, dims=dims)
    pair.scalings(ib, dims)
    return pair.rows


def analyse_zero_shot(pair: Pair, options: AnalysisOptions) -> list[dict]:
    """Rows of the zero-shot transfer of a source pair to the target data (module doc)."""
    pair.add("test", "representation_dim", pair.test[0].shape[1], model=1)
    pair.agreement()
    z_train, z_test, ib = pair.ranked_ib(options.ridge)
    pair.linear(z_train, z_test, model=1, representation=RANKED)
    rank = len(ib.eigenvalues)
    sweep = sorted({d for d in (*options.dims, pair.num_classes) if 1 <= d <= rank})
    accuracy = {}
    for dims in sweep:
        t_train, t_test = ib.transform(z_train, dims), ib.transform(z_test, dims)
        predicted = pair.linear(t_train, t_test, model=1, representation=IB, dims=dims)
        accuracy[dims] = np.mean(predicted == pair.test_labels) if predicted is not None else -1
    best = max(accuracy.values())
    kprime = next(d for d in sweep if accuracy[d] >= best - options.kprime_tolerance)
    pair.add("test", "kprime", kprime, representation=IB)
    pair.scalings(ib, kprime)
    return pair.rows


# ---------------------------------------------------------------------------- the stage
def _device() -> str:
    return os.environ.get("NCREPRO_DEVICE", "auto")


def _subsample(labels: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Rows of a balanced, seeded subsample of `per_class` per class (all rows: None)."""
    from ncrepro.data.views import balanced_subset

    if not per_class:
        return np.arange(len(labels))
    k = len(np.unique(labels))
    return balanced_subset(labels, per_class * k, seed)


def _representations(context, step, splits: dict, model=None):
    from ncrepro.probes.finetune import extract_features

    model = context.model_at(step, model)
    out = {
        name: extract_features(
            model,
            images,
            normalizer=context.normalizer,
            device=context.torch_device,
            representation="backbone",
        )
        for name, (images, _, _) in splits.items()
    }
    return out, model


def _keep(options: AnalysisOptions, step: int, final: int) -> bool:
    return options.representations == "all" or (
        options.representations == "final" and step == final
    )


def _write(folder: Path, reps: dict, splits: dict, model: int) -> None:
    from ncrepro.atomic import write_npz

    for name, (_, labels, index) in splits.items():
        write_npz(
            folder / f"model{model}_{name}.npz",
            features=reps[name].astype(np.float32),
            labels=np.asarray(labels, np.int64),
            index=np.asarray(index, np.int64),
        )


def _splits(images_labels_index: dict, per_class: int | None, seed: int) -> dict:
    """The train split subsampled (analysis_train_per_class), the test split whole."""
    images, labels, index = images_labels_index["train"]
    rows = _subsample(labels, per_class, seed)
    return {
        "train": (images[rows], labels[rows], index[rows]),
        "test": images_labels_index["test"],
    }


def _entry_for(block: dict, dataset: str, experiment: str) -> dict:
    entries = block.get("in_domain", []) if experiment != ZERO_SHOT else []
    zero_shot = block.get("zero_shot") or {}
    if zero_shot.get("enabled", False):
        entries = [*entries, zero_shot["source"]]
    return next((e for e in entries if e["dataset"] == dataset), {})


def pair_stage(config: dict, inputs: list[Path]) -> pd.DataFrame:
    """The study stage "pair": `inputs` = sheet, model 1's run.json, model 2's run.json,
    the prepared data's manifest.json and, for a zero-shot source pair, the target's
    manifest.json (`ncrepro.studies.ib_supcon.runs.pair_inputs`). Writes the
    representations it used under <results>/representations/ib_supcon/<run>/."""
    import torch

    from ncrepro.data import load_prepared
    from ncrepro.stages.context import RunContext
    from ncrepro.stages.sheet import read_sheet

    sheet_path, record1, record2, manifest, *rest = (Path(p) for p in inputs)
    block = config[STUDY]
    options = AnalysisOptions.from_block(block)
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    _, _, sheet = read_sheet(sheet_path)
    ctx1 = RunContext.from_run_dir(record1.parent, manifest.parent, device=_device())
    ctx2 = RunContext.from_run_dir(record2.parent, manifest.parent, device=_device())
    partner = ctx1.spec.get("probes", {}).get(PAIR_PROBE, {}).get("partner")
    if partner != ctx2.run:
        raise ValueError(f"run {ctx1.run} names partner {partner!r}, got the run {ctx2.run}")
    experiments = pair_experiments(sheet, ctx1.run)
    full = "in_domain" in experiments
    steps1 = {c["step"] for c in ctx1.checkpoints()}
    steps = sorted(steps1 & {c["step"] for c in ctx2.checkpoints()})
    if not steps:
        raise ValueError(f"runs {ctx1.run} and {ctx2.run} share no checkpoint")
    final = steps[-1]
    dataset = ctx1.spec["dataset"]["key"]
    entry = _entry_for(block, dataset, "in_domain" if full else ZERO_SHOT)
    per_class = entry.get("train_per_class")
    # <results>/sheets/ib_supcon.json -> <results>/representations/ib_supcon/<run>: the
    # folder the rule declares (a temp output), created even when nothing is kept
    folder = sheet_path.parent.parent / "representations" / STUDY / ctx1.run
    folder.mkdir(parents=True, exist_ok=True)
    base = {"run": ctx1.run, "probe": PAIR_PROBE, "partner_run": ctx2.run}
    conventions = {
        **cca_conventions(options.ridge),
        **ib_conventions(options.ridge),
        "rank_transform": RANK_CONVENTION,
        "linear_probe": LINEAR_CONVENTION,
        "representation_of": "backbone",
    }
    rows = []

    def run_pair(splits, eval_dataset, task, step_list, analyse, subfolder):
        models = [None, None]
        num_classes = int(max(splits["train"][1].max(), splits["test"][1].max())) + 1
        for step in step_list:
            reps = []
            for m, ctx in enumerate((ctx1, ctx2)):
                r, models[m] = _representations(ctx, step, splits, models[m])
                reps.append(r)
                if _keep(options, step, final):
                    _write(folder / subfolder / f"step{step}", r, splits, m + 1)
            pair = Pair(
                (reps[0]["train"], reps[1]["train"]),
                (reps[0]["test"], reps[1]["test"]),
                np.asarray(splits["train"][1]),
                np.asarray(splits["test"][1]),
                num_classes,
                seed=int(ctx1.spec["seed"]),
            )
            extra = {
                **base,
                "step": step,
                "task": task,
                "eval_dataset": eval_dataset,
                "analysis_n_train": len(splits["train"][1]),
                **conventions,
            }
            if not pair.finite():
                rows.append({**extra, "split": "test", "metric": "pair_diverged", "value": 1.0})
                continue
            rows.extend({**extra, **r} for r in analyse(pair))

    own = {s: ctx1.view(s) for s in ("train", "test")}
    run_pair(
        _splits(own, per_class, 0),
        dataset,
        OWN,
        steps if full else [final],
        lambda p: analyse_own(p, options, full=full),
        "own",
    )
    if ZERO_SHOT in experiments:
        if not rest:
            raise ValueError(
                f"run {ctx1.run} is a zero-shot source: the target's manifest.json is missing"
            )
        target_dir = rest[0].parent
        target = {}
        for s in ("train", "test"):
            raw = load_prepared(target_dir, s)
            target[s] = (raw.images, raw.labels, raw.index)
        target_key = target_dir.name  # <results>/data/<dataset key>/manifest.json
        target_per_class = (block.get("zero_shot") or {}).get("target", {}).get("train_per_class")
        run_pair(
            _splits(target, target_per_class, 0),
            target_key,
            TARGET,
            [final],
            lambda p: analyse_zero_shot(p, options),
            f"zero_shot_{target_key}",
        )
    return pd.DataFrame(rows)
