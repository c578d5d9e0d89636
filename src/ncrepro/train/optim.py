"""SGD and AdamW with parameter groups, the updates of `torch.optim.SGD` and
`torch.optim.AdamW` (single-tensor path), without `torch.optim`; and the parameter
groups a spec asks for.

Why not torch.optim: constructing any torch.optim optimizer imports torch._dynamo
(~2 s of CPU per process with bytecode cached, ~7 s without), and every training and
fine-tuning job is its own process. The updates below are torch's single-tensor
steps (the path torch takes for CPU tensors) operation for operation;
tests/test_optim.py checks both bit for bit against torch.optim on CPU. On CUDA torch
would default to its multi-tensor kernels, which may round differently; bit-identity
is promised on CPU only anyway.

A param group is a dict: "params" (list of tensors) and the optimizer's
hyperparameters; any other keys (a group's "name", "base_lr", "lr_schedule") are
kept and returned by `state_dict`, as torch.optim does. `lr` may be changed between
steps (LR schedules).
"""

from __future__ import annotations

import torch
from torch import nn

from ncrepro.train.schedules import check_schedule


class _Optimizer:
    kind: str
    defaults: dict

    def __init__(self, params, **defaults):
        params = list(params)
        if params and isinstance(params[0], dict):
            groups = [dict(g) for g in params]
        else:
            groups = [{"params": params}]
        self.param_groups = []
        for group in groups:
            group["params"] = list(group["params"])
            for key, value in defaults.items():
                group.setdefault(key, value)
            self.param_groups.append(group)
        # per-parameter state, in group order; None until the parameter's first update
        self.state: list[dict | None] = [None] * len(self._params())

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[i] = self._update(p, p.grad, self.state[i], group)
                i += 1

    def _update(self, p, grad, state, group) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"kind": self.kind, "groups": groups, "state": list(self.state)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state is for {state.get('kind')!r}, not {self.kind!r}")
        sizes = [len(g["params"]) for g in self.param_groups]
        if len(state["groups"]) != len(sizes) or len(state["state"]) != sum(sizes):
            raise ValueError(
                f"optimizer state has {len(state['groups'])} groups and {len(state['state'])} "
                f"parameters; this optimizer has {len(sizes)} groups, {sum(sizes)} parameters"
            )
        for group, saved in zip(self.param_groups, state["groups"], strict=True):
            group.update(saved)
        self.state = [
            None if s is None else _to_like(s, p)
            for s, p in zip(state["state"], self._params(), strict=True)
        ]


def _to_like(state: dict, p: torch.Tensor) -> dict:
    return {
        k: v.to(device=p.device, dtype=p.dtype) if isinstance(v, torch.Tensor) else v
        for k, v in state.items()
    }


class SGD(_Optimizer):
    """torch.optim.SGD with dampening 0 and no Nesterov: group keys lr, momentum,
    weight_decay. State per parameter: {"momentum_buffer"} once momentum is used."""

    kind = "sgd"

    def __init__(self, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def _update(self, p, grad, state, group):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad.add(p, alpha=weight_decay)
        if momentum != 0:
            if state is None:
                buf = torch.clone(grad).detach()
                state = {"momentum_buffer": buf}
            else:
                buf = state["momentum_buffer"]
                buf.mul_(momentum).add_(grad)
            grad = buf
        p.add_(grad, alpha=-lr)
        return state


class AdamW(_Optimizer):
    """torch.optim.AdamW (no amsgrad, not maximize): group keys lr, betas, eps,
    weight_decay (decoupled: p ← p·(1 − lr·wd) before the Adam step). State per
    parameter: {"step" (int), "exp_avg", "exp_avg_sq"}; torch keeps `step` as a float32
    tensor, exact for the integers any run reaches (< 2^24)."""

    kind = "adamw"

    def __init__(
        self,
        params,
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        betas = (float(betas[0]), float(betas[1]))
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, p, grad, state, group):
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        if state is None:
            state = {
                "step": 0,
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        state["step"] += 1
        exp_avg, exp_avg_sq, step = state["exp_avg"], state["exp_avg_sq"], float(state["step"])
        if weight_decay != 0:
            p.mul_(1 - lr * weight_decay)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        p.addcdiv_(exp_avg, denom, value=-step_size)
        return state


OPTIMIZERS = {"sgd": SGD, "adamw": AdamW}


def param_groups(model: nn.Module, spec: dict) -> list[dict]:
    """The parameter groups of `spec`, each with its own base LR and LR schedule.

    Group 0 ("default") holds every parameter no other group claims, with `spec["lr"]`,
    `training.lr_schedule` and `training.weight_decay`. Each entry of the optional
    `training.param_groups` claims the parameters whose names start with one of its
    "params" prefixes (a module such as "classifier" or "embedding", or one parameter
    such as "classifier.bias") and may override "lr", "lr_schedule", "weight_decay";
    its "name" (default: the prefixes joined by "+") labels its LR in the train log.
    Without `param_groups` there is one group with all parameters in
    `model.parameters()` order, as before groups existed.
    """
    cfg = spec["training"]
    default = {
        "name": "default",
        "base_lr": spec["lr"],
        "lr_schedule": cfg["lr_schedule"],
        "weight_decay": cfg["weight_decay"],
    }
    extra = cfg.get("param_groups", [])
    groups = [{**default, "params": []}]
    for entry in extra:
        if not entry.get("params"):
            raise ValueError(f"param group {entry} needs 'params' (parameter name prefixes)")
        unknown = sorted(set(entry) - {"name", "params", "lr", "lr_schedule", "weight_decay"})
        if unknown:
            raise ValueError(f"param group {entry} does not take {', '.join(unknown)}")
        group = {**default, "name": entry.get("name", "+".join(entry["params"])), "params": []}
        group["base_lr"] = entry.get("lr", default["base_lr"])
        for key in ("lr_schedule", "weight_decay"):
            group[key] = entry.get(key, default[key])
        groups.append(group)
    names = [g["name"] for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"param group names must be unique: {names}")
    for name, p in model.named_parameters():
        claims = [
            i
            for i, entry in enumerate(extra, 1)
            if any(name == pre or name.startswith(pre + ".") for pre in entry["params"])
        ]
        if len(claims) > 1:
            raise ValueError(f"parameter {name} is claimed by several param groups")
        groups[claims[0] if claims else 0]["params"].append(p)
    for group in groups[1:]:
        if not group["params"]:
            raise ValueError(f"param group {group['name']!r} matches no parameter of the model")
    for group in groups:
        check_schedule(group["lr_schedule"])  # fail at the start, not at the first step
        group["lr"] = group["base_lr"]
    return groups


def build_optimizer(model: nn.Module, spec: dict) -> SGD | AdamW:
    """`training.optimizer` over `param_groups(model, spec)`.

    sgd: `training.momentum` (0 = plain SGD); adamw: `training.betas` (default
    [0.9, 0.999]) and `training.eps` (default 1e-8); both: per-group weight_decay.
    """
    cfg = spec["training"]
    kind = cfg.get("optimizer", "sgd")
    groups = param_groups(model, spec)
    if kind == "sgd":
        return SGD(groups, lr=spec["lr"], momentum=cfg["momentum"])
    if kind == "adamw":
        betas = tuple(cfg.get("betas", (0.9, 0.999)))
        return AdamW(groups, lr=spec["lr"], betas=betas, eps=cfg.get("eps", 1e-8))
    raise ValueError(f"unknown optimizer {kind!r}; known: {', '.join(OPTIMIZERS)}")
