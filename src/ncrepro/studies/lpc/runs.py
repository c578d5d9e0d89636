"""lpc runs: the config block expanded into run specs (one experiment, "grid": every model
x dataset x LR x seed), and its config checks.

Training is configured in epochs, as the paper does: the steps, the checkpoint steps
(every `checkpoint_every` epochs) and every per-epoch schedule (γ, the LR decay, the
ArcFace/CosFace ramps) follow from `epochs` and the train-set size, with
epoch = step · batch_size // n_train (ncrepro.train.schedules.epoch_at).
"""

from __future__ import annotations

import math

from ncrepro.runspec import Run, dataset_entry
from ncrepro.studies.lpc.models import BY_NAME, NAMES, Model

STUDY = "lpc"
EXPERIMENT = "grid"
# Train-split sizes of the datasets that do not say it in their params.
KNOWN_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000}


def train_size(config: dict, entry: dict) -> int:
    """Number of train images of a dataset entry of the lpc block: `n_train` if given,
    else from the dataset's params (synth) or its known size (CIFAR)."""
    if "n_train" in entry:
        return int(entry["n_train"])
    data = config["datasets"][entry["dataset"]]
    params = data.get("params", {})
    if data["source"] == "synth":
        return int(params.get("n_train_per_class", 100)) * int(params.get("num_classes", 10))
    if data["source"] in KNOWN_TRAIN_SIZES and not params:
        return KNOWN_TRAIN_SIZES[data["source"]]
    raise ValueError(
        f"lpc.datasets: give n_train for dataset '{entry['dataset']}' (its train-split size "
        "is needed to turn epochs into steps)"
    )


def steps_for(epochs: int, n_train: int, batch_size: int) -> int:
    """Steps of `epochs` epochs: the first step whose epoch_at is `epochs`."""
    return math.ceil(epochs * n_train / min(batch_size, n_train))


def checkpoint_steps(epochs: int, every: int, n_train: int, batch_size: int) -> list[int]:
    """The step ending epoch e (after e full epochs) for e = every, 2·every, ..., epochs."""
    ends = sorted({*range(every, epochs + 1, every), epochs})
    return [steps_for(e, n_train, batch_size) for e in ends]


def objective(block: dict, model: Model) -> dict:
    """The training objective of `model` from the block's loss settings."""
    penalty = block["penalty"]
    supcon = {"temperature": block["supcon"]["temperature"], "weight": block["supcon"]["weight"]}
    if model.loss == "ce":
        return {"name": "cross_entropy"}
    if model.loss == "penalty":
        return {"name": "feature_penalty", **penalty}
    if model.loss == "supcon":
        return {"name": "supcon_ce", "on": "backbone", **supcon}
    if model.loss == "supcon_penalty":
        return {"name": "supcon_ce", "on": "backbone", **supcon, **penalty}
    if model.loss in ("arcface", "cosface"):
        return {"name": model.loss, **block[model.loss]}
    raise ValueError(f"model {model.name}: unknown loss {model.loss!r}")


def head(entry: dict, model: Model, activation: str) -> dict | None:
    if model.head is None:
        return None
    width = entry["head_widths"][model.width]
    if model.head == "activated":
        return {"kind": "activated", "width": width, "activation": activation}
    return {"kind": model.head, "width": width}


def training(block: dict, n_train: int) -> dict:
    """The spec's training block: the shared keys, steps from epochs, the classifier in
    its own param group whose LR is not decayed (Appendix C)."""
    t = block["training"]
    epochs, batch = t["epochs"], t["batch_size"]
    resolved = {
        "optimizer": t["optimizer"],
        "betas": t.get("betas", [0.9, 0.999]),
        "eps": t.get("eps", 1e-8),
        "weight_decay": t["weight_decay"],
        "batch_size": batch,
        "epochs": epochs,
        "steps": steps_for(epochs, n_train, batch),
        "lr_schedule": t["lr_schedule"],
        "normalize": t["normalize"],
        "augment": t["augment"],
        "checkpoints": {"schedule": "epochs", "every_epochs": t["checkpoint_every"]},
    }
    if t.get("classifier_lr_schedule"):
        resolved["param_groups"] = [
            {
                "params": ["classifier"],
                "name": "classifier",
                "lr_schedule": t["classifier_lr_schedule"],
            }
        ]
    return resolved


def run_spec(config: dict, entry: dict, model: Model, lr: float, seed: int) -> dict:
    block = config[STUDY]
    n_train = train_size(config, entry)
    train = training(block, n_train)
    spec = {
        "study": STUDY,
        "dataset": dataset_entry(config, entry["dataset"]),
        "arch": entry["arch"],
        "arch_params": {"activation": block["activation"]},
        "width": block["width"],
        "classifier": {"bias": False},
        "seed": seed,
        "lr": lr,
        "objective": objective(block, model),
        "training": train,
        "checkpoint_steps": checkpoint_steps(
            train["epochs"], block["training"]["checkpoint_every"], n_train, train["batch_size"]
        ),
        "probes": {"deepfool": dict(block["deepfool"])},
    }
    head_config = head(entry, model, block["activation"])
    if head_config is not None:
        spec["head"] = head_config
    return spec


def selected_models(block: dict) -> list[Model]:
    return [BY_NAME[name] for name in block.get("models", NAMES)]


def runs(config: dict) -> list[Run]:
    """Every (model, dataset, LR, seed) of the grid."""
    block = config[STUDY]
    out = []
    for entry in block["datasets"]:
        for model in selected_models(block):
            for lr in block["lrs"]:
                for seed in block["seeds"]:
                    spec = run_spec(config, entry, model, lr, seed)
                    extra = {
                        "model": model.name,
                        "paper_dataset": entry["paper_dataset"],
                        "epochs": block["training"]["epochs"],
                        "head_width": spec.get("head", {}).get("width", 0),
                    }
                    out.append(Run(EXPERIMENT, spec, -1, extra))
    return out


def metric_options(block: dict) -> dict:
    """The options of the metric set (`metric_set.compute`) from `lpc.metrics`; here, not
    in metric_set, so that the registry import stays light."""
    m = block.get("metrics", {})
    return {
        "grouping": m.get("grouping", "true_labels"),
        "sigma_w": m.get("sigma_w", "pooled"),
        "global_mean": m.get("global_mean", "class_means"),
        "entropy_k": m.get("entropy_k", 20),
        "entropy_splits": list(m.get("entropy_splits", ["test"])),
        "binarity_splits": list(m.get("binarity_splits", ["train"])),
        "binarity_max_dim": m.get("binarity_max_dim", 256),
    }


def check_config(config: dict) -> list[str]:
    """What the schema cannot say: datasets exist, head widths cover the models, γ spans
    its range within the run, sections are unique."""
    block = config[STUDY]
    problems = []
    datasets = config.get("datasets", {})
    models = selected_models(block)
    needed = sorted({m.width for m in models if m.width})
    sections = [e["paper_dataset"] for e in block["datasets"]]
    if len(set(sections)) != len(sections):
        problems.append(f"lpc.datasets: paper_dataset must be unique, got {sections}")
    for i, entry in enumerate(block["datasets"]):
        if entry["dataset"] not in datasets:
            problems.append(
                f"lpc.datasets[{i}] uses dataset '{entry['dataset']}', which 'datasets' does "
                "not define"
            )
            continue
        missing = [w for w in needed if w not in entry["head_widths"]]
        if missing:
            problems.append(f"lpc.datasets[{i}].head_widths lacks {', '.join(missing)}")
        try:
            train_size(config, entry)
        except ValueError as error:
            problems.append(str(error))
    t, penalty = block["training"], block["penalty"]
    if any(m.penalized for m in models) and penalty.get("gamma_max") is not None:
        last = penalty["gamma"] * penalty.get("gamma_factor", 1.0) ** (t["epochs"] - 1)
        if last < penalty["gamma_max"]:
            problems.append(
                f"lpc.penalty: gamma reaches only {last:.3g} in the last epoch, below gamma_max "
                f"{penalty['gamma_max']:g}; raise gamma_factor or epochs so that gamma spans "
                "its range within the run"
            )
    if t["checkpoint_every"] > t["epochs"]:
        problems.append("lpc.training.checkpoint_every exceeds epochs")
    if len(set(block["toy"]["hidden"])) != 1:
        problems.append("lpc.toy.hidden: the toy MLP's hidden layers must have one width")
    return problems
