"""nc_limits runs: the config block expanded into run specs, and its config checks.

Experiments: "curves" (fig1/fig2: one cell, three variances vs iteration), "grid" (fig3:
dataset x architecture), "train_size" (fig4: balanced subsets of N images trained to a
loss threshold), "transfer" (fig5: superclass pretraining with fine-tuning probes).
"""

from __future__ import annotations

from ncrepro.runspec import Run, checkpoint_steps, dataset_entry

STUDY = "nc_limits"


def run_spec(
    config: dict,
    dataset: str,
    arch: str,
    seed: int,
    *,
    view: dict | None = None,
    training: dict | None = None,
    lr: float | None = None,
    arch_params: dict | None = None,
) -> dict:
    """Resolved hyper-parameters of one training run. `training` overrides keys of the
    study's training block; `view` defaults to the full splits."""
    study = config[STUDY]
    resolved = {**study["training"], **(training or {})}
    resolved.setdefault("normalize", "pixel")
    resolved.setdefault("augment", "none")
    spec = {
        "study": STUDY,
        "dataset": dataset_entry(config, dataset),
        "arch": arch,
        "arch_params": arch_params or study.get("arch_params", {}).get(arch, {}),
        "width": study["width"],
        "seed": seed,
        "lr": lr if lr is not None else study["lr"][arch],
        "objective": {"name": "cross_entropy"},
        "training": resolved,
        "checkpoint_steps": checkpoint_steps(resolved["checkpoints"], resolved["steps"]),
    }
    if view is not None:  # absent for full-split runs
        spec["view"] = view
    return spec


def grid_cells(config: dict) -> list[tuple[str, str, str]]:
    """(experiment, dataset, arch) of figures 1-3; `arch_override` swaps an arch for one
    dataset (paper: ResNet50 on STL-10) in the same grid column."""
    study = config[STUDY]
    cells = [("curves", study["curves"]["dataset"], study["curves"]["arch"])]
    overrides = study["grid"].get("arch_override", {})
    for dataset in study["grid"]["datasets"]:
        for arch in study["grid"]["archs"]:
            cells.append(("grid", dataset, overrides.get(dataset, {}).get(arch, arch)))
    return cells


def _grid_column(arch: str, dataset: str, study: dict) -> str:
    """The grid column an arch sits in (undoing a per-dataset override)."""
    for grid_arch, used in study["grid"].get("arch_override", {}).get(dataset, {}).items():
        if used == arch:
            return grid_arch
    return arch


def section_enabled(config: dict, section: str) -> bool:
    """Whether an optional experiment ("train_size", "transfer") has runs: its block is
    present with `enabled: true`."""
    return bool(((config.get(STUDY) or {}).get(section) or {}).get("enabled", False))


def train_size_runs(config: dict) -> list[Run]:
    """fig4: balanced subsets of N train images, trained until the loss is below
    `stop_loss` (or the step cap), one subset per seed."""
    if not section_enabled(config, "train_size"):
        return []
    block = config[STUDY]["train_size"]
    training = {
        "steps": block["steps"],
        "stop_loss": block["stop_loss"],
        "checkpoints": {"schedule": "final"},
    }
    runs = []
    for setting in block["settings"]:
        for n_train in setting["n_train"]:
            for seed in block["seeds"]:
                view = {"kind": "subset", "n_train": n_train, "seed": seed}
                spec = run_spec(
                    config,
                    setting["dataset"],
                    setting["arch"],
                    seed,
                    view=view,
                    training=training,
                    lr=setting.get("lr"),
                )
                runs.append(Run("train_size", spec, n_train, {"grid_arch": setting["arch"]}))
    return runs


def transfer_runs(config: dict) -> list[Run]:
    """fig5: superclass pretraining with checkpoints; every checkpoint gets fine-tuning
    probes (one per LR) and a linear probe on the disjoint fine-tuning pool."""
    if not section_enabled(config, "transfer"):
        return []
    block = config[STUDY]["transfer"]
    training = {"steps": block["steps"], "checkpoints": block["checkpoints"]}
    runs = []
    for setting in block["settings"]:
        for seed in block["seeds"]:
            view = {"kind": "superclass", "groups": setting["groups"], "pools": setting["pools"]}
            spec = run_spec(
                config,
                setting["dataset"],
                setting["arch"],
                seed,
                view=view,
                training=training,
                lr=setting.get("lr"),
                arch_params=setting.get("arch_params"),
            )
            spec["finetune"] = block["finetune"]
            spec["probes"] = {"linear": {"task": "finetune"}}
            runs.append(Run("transfer", spec, -1, {"grid_arch": setting["arch"]}))
    return runs


def runs(config: dict) -> list[Run]:
    """Every (experiment, run) of the study, in figure order."""
    study = config[STUDY]
    out = []
    for experiment, dataset, arch in grid_cells(config):
        for seed in study["seeds"]:
            spec = run_spec(config, dataset, arch, seed)
            out.append(Run(experiment, spec, -1, {"grid_arch": _grid_column(arch, dataset, study)}))
    return out + train_size_runs(config) + transfer_runs(config)


def check_config(config: dict) -> list[str]:
    """Cross-references the schema cannot express: datasets and learning rates exist."""
    problems = []
    study = config[STUDY]
    datasets = config.get("datasets", {})
    used = [study["curves"]["dataset"], *study["grid"]["datasets"]]
    for block in ("train_size", "transfer"):
        if section_enabled(config, block):
            used += [s["dataset"] for s in study[block].get("settings", [])]
    for key in used:
        if key not in datasets:
            problems.append(f"nc_limits uses dataset '{key}', which 'datasets' does not define")
    archs = {study["curves"]["arch"], *study["grid"]["archs"]}
    for swaps in study["grid"].get("arch_override", {}).values():
        archs |= set(swaps.values())
    for arch in sorted(archs):
        if arch not in study["lr"]:
            problems.append(f"nc_limits.lr has no learning rate for arch '{arch}'")
    ckpt = study["training"]["checkpoints"]
    if ckpt["schedule"] == "log" and "count" not in ckpt:
        problems.append("nc_limits.training.checkpoints: schedule 'log' needs 'count'")
    if ckpt["schedule"] == "linear" and "every" not in ckpt:
        problems.append("nc_limits.training.checkpoints: schedule 'linear' needs 'every'")
    return problems
