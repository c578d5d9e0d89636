"""gc_transfer runs: the config block expanded into run specs, and its config checks.

A *pair* is one (dataset, architecture) of the paper with its sweeps (config
`gc_transfer.pairs.<pair>`, pair = the paper's figure: fig1 VGG-13 CIFAR-10, fig4 ResNet-18
CIFAR-FS, fig6 ResNet-18 CIFAR-10, fig7 VGG-11 MNIST, fig8 VGG-11 Fashion-MNIST, fig9
ResNet-50 CIFAR-100, fig10 VGG-16 mini-ImageNet, fig11 VGG-13 CIFAR-10 with the GC
penalty). Each *row* of a pair sweeps one hyper-parameter with the others fixed (appendix
A.4-A.5): `lr`, `batch_size`, `weight_decay` (L2), or `penalty` (the GC-penalty rate,
fig11). A run's setting = the pair's defaults (`lr`, `training`), then the row's `fixed`
values, then the swept value. Runs with equal specs are one run (the sweeps of a pair share
their common point; a quick preset may point two pairs at the same settings).

Experiments: "<pair>_<row>" (e.g. "fig1_lr"); the sheet has the extra columns `pair`,
`sweep` (the row) and `sweep_value`.

Probes (spec["probes"]): every run gets "geometric" (GC, logit GC, geometric collapse per
checkpoint); runs with a class_split view get "fewshot" (5-way 5-shot tasks on the target
classes); the run named by `bound` (fig3's run) gets "gc_bound" (the bound of Prop. 4.3,
with the Poincaré constant estimated from all runs of the bound's pair) and, for its first
seed, "gc_sampling" (Figure 2's estimators at its final checkpoint).
"""

from __future__ import annotations

from ncrepro.runspec import Run, checkpoint_steps, dataset_entry

STUDY = "gc_transfer"
ROWS = ("lr", "batch_size", "weight_decay", "penalty")
# the rows of each pair's figure in the paper (fig8 and fig9 have no batch row, fig10 only
# the LR row, fig11 only the GC-penalty rate)
PAIR_ROWS = {
    "fig1": ("lr", "batch_size", "weight_decay"),
    "fig4": ("lr", "batch_size", "weight_decay"),
    "fig6": ("lr", "batch_size", "weight_decay"),
    "fig7": ("lr", "batch_size", "weight_decay"),
    "fig8": ("lr", "weight_decay"),
    "fig9": ("lr", "weight_decay"),
    "fig10": ("lr",),
    "fig11": ("penalty",),
}
PAIRS = tuple(PAIR_ROWS)
FEWSHOT_PAIRS = ("fig4", "fig10")  # figures drawn from the few-shot probe


def _training(block: dict, pair: dict) -> dict:
    """The study's training block with the pair's overrides."""
    return {**block["training"], **pair.get("training", {})}


def _setting(block: dict, pair: dict, row: str, value: float) -> dict:
    """{lr, batch_size, weight_decay, penalty} of one run of `row`."""
    sweep = pair["sweeps"][row]
    training = _training(block, pair)
    setting = {
        "lr": pair["lr"],
        "batch_size": training["batch_size"],
        "weight_decay": training["weight_decay"],
        "penalty": 0.0,
    }
    setting.update(sweep.get("fixed", {}))
    setting[row] = value
    return setting


def _objective(pair: dict, rate: float) -> dict:
    """Cross-entropy, or cross-entropy + rate · GC (rate 0 is plain cross-entropy, so the
    unregularized run is shared with the other sweeps)."""
    if rate == 0:
        return {"name": "cross_entropy"}
    options = dict(pair.get("penalty_objective", {}))
    if "output" in options:  # the config says `output` (YAML reads a bare `on` as true)
        options["on"] = options.pop("output")
    return {"name": "gc_penalty", "rate": rate, **options}


def core_spec(config: dict, pair: dict, setting: dict, seed: int) -> dict:
    """Everything a run is a pure function of, except its probes."""
    block = config[STUDY]
    training = {
        **_training(block, pair),
        "batch_size": setting["batch_size"],
        "weight_decay": setting["weight_decay"],
    }
    spec = {
        "study": STUDY,
        "dataset": dataset_entry(config, pair["dataset"]),
        "arch": pair["arch"],
        "arch_params": pair.get("arch_params", {}),
        "width": pair["width"],
        "seed": seed,
        "lr": setting["lr"],
        "objective": _objective(pair, setting["penalty"]),
        "training": training,
        "checkpoint_steps": checkpoint_steps(training["checkpoints"], training["steps"]),
    }
    if pair.get("view"):
        spec["view"] = pair["view"]
    return spec


def _enabled_pairs(block: dict) -> dict[str, dict]:
    return {k: p for k, p in block["pairs"].items() if p.get("enabled", True)}


def bound_core(config: dict, seed: int) -> dict | None:
    """The core spec of fig3's run (the `bound` setting) for `seed`, or None."""
    block = config[STUDY]
    bound = block.get("bound")
    pairs = _enabled_pairs(block)
    if not bound or bound["pair"] not in pairs:
        return None
    pair = pairs[bound["pair"]]
    return core_spec(config, pair, _setting(block, pair, bound["row"], bound["value"]), seed)


def probes_of(config: dict, core: dict) -> dict:
    """The probes of a run, from what it is (so equal runs get equal probes)."""
    block = config[STUDY]
    probes = {"geometric": block["geometric"]}
    if core.get("view", {}).get("kind") == "class_split":
        probes["fewshot"] = block["fewshot"]
    if core == bound_core(config, core["seed"]):
        probes["gc_bound"] = {"pair": block["bound"]["pair"]}
        if core["seed"] == block["pairs"][block["bound"]["pair"]].get("seeds", block["seeds"])[0]:
            probes["gc_sampling"] = block["sampling"]
    return probes


def runs(config: dict) -> list[Run]:
    """Every (experiment, run) of the study: pair x row x value x seed."""
    block = config[STUDY]
    out = []
    for name, pair in _enabled_pairs(block).items():
        for row, sweep in pair["sweeps"].items():
            for value in sweep["values"]:
                setting = _setting(block, pair, row, value)
                for seed in pair.get("seeds", block["seeds"]):
                    spec = core_spec(config, pair, setting, seed)
                    spec["probes"] = probes_of(config, spec)
                    extra = {
                        "pair": name,
                        "sweep": row,
                        "sweep_value": float(value),
                        "gc_penalty": float(setting["penalty"]),
                    }
                    out.append(Run(f"{name}_{row}", spec, -1, extra))
    return out


def experiments(pair: str) -> tuple[str, ...]:
    """The experiments of a pair's figure (rows absent from a preset have no runs)."""
    return tuple(f"{pair}_{row}" for row in PAIR_ROWS[pair])


def check_config(config: dict) -> list[str]:
    """What the schema cannot express: datasets exist, rows fit their pairs, the bound run
    exists, few-shot pairs have a class split."""
    block = config[STUDY]
    problems = []
    datasets = config.get("datasets", {})
    pairs = _enabled_pairs(block)
    for name, pair in pairs.items():
        where = f"gc_transfer.pairs.{name}"
        if pair["dataset"] not in datasets:
            problems.append(
                f"{where} uses dataset '{pair['dataset']}', which 'datasets' does not define"
            )
        for row, sweep in pair["sweeps"].items():
            if row not in PAIR_ROWS[name]:
                problems.append(
                    f"{where}.sweeps: the paper's {name} has no '{row}' row "
                    f"(its rows: {', '.join(PAIR_ROWS[name])})"
                )
            if row in sweep.get("fixed", {}):
                problems.append(f"{where}.sweeps.{row}: '{row}' is swept, it cannot be fixed too")
        view = pair.get("view") or {}
        if name in FEWSHOT_PAIRS and view.get("kind") != "class_split":
            problems.append(
                f"{where}: a few-shot pair needs view {{kind: class_split, source, target}}"
            )
        if view.get("kind") == "class_split":
            source, target = set(view.get("source", [])), set(view.get("target", []))
            if source & target:
                problems.append(
                    f"{where}.view: source and target classes overlap: {sorted(source & target)}"
                )
            ways = block["fewshot"]["ways"]
            if len(target) < ways:
                problems.append(
                    f"{where}.view: {len(target)} target classes, fewshot.ways = {ways}"
                )
    bound = block.get("bound")
    if bound and bound["pair"] not in block["pairs"]:
        problems.append(f"gc_transfer.bound.pair '{bound['pair']}' is not a pair")
    elif bound and bound["pair"] in pairs:  # a switched-off pair: fig2/fig3 say why not drawn
        pair = pairs[bound["pair"]]
        if (
            bound["row"] not in pair["sweeps"]
            or bound["value"] not in pair["sweeps"][bound["row"]]["values"]
        ):
            problems.append(
                f"gc_transfer.bound: pair {bound['pair']} has no run with {bound['row']} = "
                f"{bound['value']} (fig3's run must be one of its sweep values)"
            )
    for name, pair in pairs.items():
        ckpt = _training(block, pair)["checkpoints"]
        if ckpt["schedule"] == "linear" and "every" not in ckpt:
            problems.append(f"gc_transfer.pairs.{name}: checkpoint schedule 'linear' needs 'every'")
        if ckpt["schedule"] == "log" and "count" not in ckpt:
            problems.append(f"gc_transfer.pairs.{name}: checkpoint schedule 'log' needs 'count'")
    return problems
