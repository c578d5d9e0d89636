"""SGD with momentum and weight decay, the update of `torch.optim.SGD` (dampening 0,
no Nesterov) for one parameter group, without `torch.optim`.

Why not torch.optim.SGD: constructing any torch.optim optimizer imports torch._dynamo
(~2 s of CPU per process with bytecode cached, ~7 s without), and every training and
fine-tuning job is its own process. The update below is torch's single-tensor path
step for step; tests/test_train.py checks it bit for bit against torch.optim.SGD.
"""

from __future__ import annotations

import torch


class SGD:
    """`param_groups[0]["lr"]` may be changed between steps (LR schedules)."""

    def __init__(self, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        group = {"params": list(params), "lr": lr, "momentum": momentum}
        group["weight_decay"] = weight_decay
        self.param_groups = [group]
        self.momentum_buffers: list[torch.Tensor | None] = [None] * len(group["params"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            grad = p.grad
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            if momentum != 0:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = torch.clone(grad).detach()
                    self.momentum_buffers[i] = buf
                else:
                    buf.mul_(momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-lr)

    def state_dict(self) -> dict:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"group": group, "momentum_buffers": list(self.momentum_buffers)}

    def load_state_dict(self, state: dict) -> None:
        buffers = state["momentum_buffers"]
        params = self.param_groups[0]["params"]
        if len(buffers) != len(params):
            raise ValueError(
                f"optimizer state has {len(buffers)} buffers for {len(params)} parameters"
            )
        self.param_groups[0].update(state["group"])
        self.momentum_buffers = [
            None if b is None else b.to(device=p.device, dtype=p.dtype)
            for b, p in zip(buffers, params, strict=True)
        ]
