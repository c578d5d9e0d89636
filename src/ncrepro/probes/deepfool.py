"""DeepFool robustness (Moosavi-Dezfooli, Fawzi, Frossard 2016, Algorithm 2), batched.

For an input x predicted as class l = argmax f(x), DeepFool linearizes the classifier at
the current point x_i and steps to the nearest linearized decision boundary among the
candidate classes k ≠ l:

    w_k = ∇f_k(x_i) − ∇f_l(x_i),  f'_k = f_k(x_i) − f_l(x_i),
    k̂ = argmin_k |f'_k| / ‖w_k‖,  r_i = (|f'_k̂| / ‖w_k̂‖ + step_eps) · w_k̂ / ‖w_k̂‖,

accumulates r = Σ r_i and stops as soon as argmax f(x + (1 + overshoot) r) ≠ l, or after
`max_iter` steps; the perturbation is (1 + overshoot) r. For an affine classifier the
first step lands exactly on the nearest decision boundary, so ‖r‖ is the exact distance
to it times (1 + overshoot) (plus step_eps).

Following the reference implementation (LTS4/DeepFool) that the LPC code copies:
candidates are the `num_candidates` classes with the largest clean logits (10 by
default, also for 100 classes), the label is the network's own prediction (not the true
label), `step_eps` = 1e-4 is added to every step "for numerical stability", the images
are the network's normalized inputs, and nothing is clipped to a valid pixel range.

Batched: the samples of a batch are independent in eval mode (batch norm uses its
running statistics), so ∇ of Σ_b f_{k_b}(x_b) gives every sample's own gradient; one
backward pass per candidate rank and iteration serves the whole batch, and samples that
are already fooled leave the batch.

`deepfool_probe` is the registered per-run probe "deepfool" (ncrepro.probes.registry):
robustness ‖r‖₂ / ‖x‖₂ averaged over random test images at a checkpoint (the LPC paper's
Table 2, at the last epoch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    *,
    num_candidates: int | None = 10,
    overshoot: float = 0.02,
    max_iter: int = 50,
    step_eps: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """DeepFool on a batch `x` (N×...) of a classifier `model` (x -> N×K logits), which
    must be in eval mode. Returns per sample: "perturbation" (N×..., the final
    (1 + overshoot) r), "label" (the clean prediction), "fooled_label", "fooled"
    (bool), "iterations". `num_candidates` None: every class."""
    if model.training:
        raise ValueError("deepfool needs the model in eval mode (batch norm per sample)")
    x = x.detach()
    n = len(x)
    with torch.no_grad():
        clean = model(x)
    k = clean.shape[1] if num_candidates is None else min(int(num_candidates), clean.shape[1])
    if k < 2:
        raise ValueError(f"deepfool needs at least 2 candidate classes, got {k}")
    candidates = clean.argsort(dim=1, descending=True)[:, :k]  # column 0: the label
    label = candidates[:, 0]
    r_tot = torch.zeros_like(x)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    fooled_label = label.clone()
    active = torch.arange(n, device=x.device)
    for it in range(max_iter + 1):
        xa = (x[active] + (1 + overshoot) * r_tot[active]).requires_grad_(True)
        logits = model(xa)
        pred = logits.argmax(1).detach()
        fooled_label[active] = pred
        keep = pred == label[active]
        if it == max_iter or not bool(keep.any()):
            break
        rows = torch.nonzero(keep).squeeze(1)
        cand = candidates[active[rows]]
        picked = [logits[rows, cand[:, j]] for j in range(k)]
        grads = [
            torch.autograd.grad(p.sum(), xa, retain_graph=j < k - 1)[0][rows]
            for j, p in enumerate(picked)
        ]
        flat0 = grads[0].flatten(1)
        best = torch.full((len(rows),), float("inf"), device=x.device)
        best_w = torch.zeros_like(flat0)
        for j in range(1, k):
            w = grads[j].flatten(1) - flat0
            f = (picked[j] - picked[0]).detach()
            dist = f.abs() / w.norm(dim=1)
            better = dist < best
            best = torch.where(better, dist, best)
            best_w = torch.where(better[:, None], w, best_w)
        step = (best + step_eps)[:, None] * best_w / best_w.norm(dim=1, keepdim=True)
        step = torch.where(torch.isfinite(best)[:, None], step, 0.0)  # no gradient: stay
        active = active[rows]
        r_tot[active] += step.reshape(-1, *x.shape[1:]).to(r_tot.dtype)
        iterations[active] += 1
    return {
        "perturbation": ((1 + overshoot) * r_tot).detach(),
        "label": label,
        "fooled_label": fooled_label,
        "fooled": fooled_label != label,
        "iterations": iterations,
    }


def robustness(x: torch.Tensor, perturbation: torch.Tensor) -> torch.Tensor:
    """‖r‖₂ / ‖x‖₂ per sample (the LPC paper's robustness score)."""
    return perturbation.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)


DEFAULTS = {
    "n_images": 1000,
    "batch_size": 250,
    "num_candidates": 10,
    "overshoot": 0.02,
    "max_iter": 50,
    "step_eps": 1e-4,
    "checkpoint": "last",
}


def deepfool_probe(context, settings: dict, log=print) -> list[dict]:
    """The registered probe "deepfool": DeepFool on `n_images` test images drawn at random
    (seeded by the run's seed) at `checkpoint` ("last", or a step), in batches of
    `batch_size` on the run's device. Rows (split "test"): deepfool_robustness (mean of
    ‖r‖/‖x‖), deepfool_robustness_median, deepfool_fooled_fraction (DeepFool changed the
    prediction within max_iter), deepfool_iterations_mean; with the settings as columns."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"deepfool probe does not take {', '.join(unknown)}")
    s = {**DEFAULTS, **settings}
    steps = [c["step"] for c in context.checkpoints()]
    step = max(steps) if s["checkpoint"] == "last" else int(s["checkpoint"])
    images, _labels, _index = context.view("test")
    rng = np.random.default_rng(context.spec["seed"])
    n = min(int(s["n_images"]), len(images))
    chosen = np.sort(rng.choice(len(images), size=n, replace=False))
    model = context.model_at(step)
    model.eval()
    device = context.torch_device
    scores, fooled, iterations = [], [], []
    for start in range(0, n, int(s["batch_size"])):
        batch = torch.from_numpy(images[chosen[start : start + int(s["batch_size"])]]).to(device)
        x = context.normalizer(batch)
        out = deepfool(
            model,
            x,
            num_candidates=s["num_candidates"],
            overshoot=s["overshoot"],
            max_iter=s["max_iter"],
            step_eps=s["step_eps"],
        )
        scores.append(robustness(x, out["perturbation"]).cpu())
        fooled.append(out["fooled"].cpu())
        iterations.append(out["iterations"].cpu())
    score = torch.cat(scores).double().numpy()
    fooled_all = torch.cat(fooled).numpy()
    iters = torch.cat(iterations).double().numpy()
    log(
        f"deepfool at step {step}: robustness {score.mean():.4g} over {n} images, "
        f"{fooled_all.mean():.3f} fooled, {iters.mean():.2f} iterations on average"
    )
    columns = {
        "probe": "deepfool",
        "deepfool_n_images": n,
        "deepfool_candidates": s["num_candidates"],
        "deepfool_overshoot": s["overshoot"],
        "deepfool_max_iter": s["max_iter"],
        "deepfool_step_eps": s["step_eps"],
        "deepfool_label": "predicted",
        "deepfool_input": "normalized",
    }
    values = {
        "deepfool_robustness": score.mean(),
        "deepfool_robustness_median": float(np.median(score)),
        "deepfool_fooled_fraction": fooled_all.mean(),
        "deepfool_iterations_mean": iters.mean(),
    }
    return [
        {
            "run": context.run,
            "step": step,
            "split": "test",
            "metric": m,
            "value": float(v),
            **columns,
        }
        for m, v in values.items()
    ]
