"""Learning-rate schedules and the epoch count they (and objectives) read.

Every schedule is a pure function of the step (and the epoch, itself a function of
the step), never of state carried from step to step: a run resumed at any step
therefore gets exactly the LRs and coefficients an uninterrupted run gets, and the
resume state needs no scheduler state.

A schedule is written in a spec as a name or as a dict with a "name":

- "constant": the base LR;
- "cosine": 0.5 · lr · (1 + cos(π · step / steps)), from lr at step 0 to 0 at the end;
- {"name": "step", "factor": f, "every": E, "start": S}: lr · f^n in epoch e, where
  n = 0 before epoch S and n = 1 + (e − S) // E from epoch S on, i.e. the LR is
  multiplied by f at epochs S, S + E, S + 2E, ... (defaults: f = 0.5, S = E).
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "step")


def epoch_at(step: int, batch_size: int, n_train: int) -> int:
    """Epoch of the update at `step`: the number of whole passes over the training
    set before it, counted in samples, step · batch_size // n_train.

    The batch size is capped at n_train as `batch_indices` caps it. Because
    `batch_indices` drops the last partial batch of each permutation, this count
    runs slightly ahead of the permutation index step // (n_train // batch_size)
    when batch_size does not divide n_train.
    """
    return step * min(batch_size, n_train) // n_train


def check_schedule(schedule: str | dict) -> dict:
    """The schedule as a dict with every parameter filled in; errors name the problem."""
    config = {"name": schedule} if isinstance(schedule, str) else dict(schedule)
    name = config.get("name")
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {name!r}; known: {', '.join(SCHEDULES)}")
    allowed = {"name"} | ({"factor", "every", "start"} if name == "step" else set())
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"lr schedule {name!r} does not take {', '.join(unknown)}")
    if name == "step":
        if "every" not in config:
            raise ValueError("lr schedule 'step' needs 'every' (epochs between decays)")
        config.setdefault("factor", 0.5)
        config.setdefault("start", config["every"])
        if not (isinstance(config["every"], int) and config["every"] >= 1):
            raise ValueError(f"lr schedule 'step': every must be an integer >= 1: {config}")
        if not (isinstance(config["start"], int) and config["start"] >= 0):
            raise ValueError(f"lr schedule 'step': start must be an integer >= 0: {config}")
        if not config["factor"] > 0:
            raise ValueError(f"lr schedule 'step': factor must be > 0: {config}")
    return config


def lr_at(
    step: int, base_lr: float, total: int, schedule: str | dict, epoch: int | None = None
) -> float:
    """LR for the update that takes the model from `step` to `step + 1`.

    `total` is the run's step count (cosine); `epoch` = `epoch_at(step, ...)` is
    needed by the step schedule only.
    """
    config = check_schedule(schedule)
    name = config["name"]
    if name == "constant":
        return base_lr
    if name == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total))
    if epoch is None:
        raise ValueError("lr schedule 'step' needs the epoch")
    decays = 0 if epoch < config["start"] else 1 + (epoch - config["start"]) // config["every"]
    return base_lr * config["factor"] ** decays
