"""Geometric complexity (GC) of a network map, its unbiased estimators, and the
GC-based neural-collapse quantities of Munn, Dherin & Gonzalvo (2024), "The Impact of
Geometric Complexity on Neural Collapse in Transfer Learning".

Geometric complexity of a map h: R^P -> R^D over inputs x_1..x_N (eq. 4 of the paper,
Dherin et al. 2022):

    GC(h) = (1/N) Σ_n ‖∂h(x_n)/∂x‖_F²,

with x the network's input as it sees it (normalized), h the embedding (the penultimate
features, "embedding GC") or the logits ("logit GC"). Measured with the model in eval
mode: batch norm then uses its running statistics, so every sample's Jacobian is its own.

Exact GC computes the full D×P Jacobian of every sample (torch.func: vmap over samples of
`jacrev`, itself a vmap over the D output cotangents), in chunks of samples so that
memory stays at chunk·D·P floats. The estimators of the paper's Figure 2, each unbiased
for the exact GC of the same inputs (`GC_ESTIMATORS`; `fraction` is the share of the
exact computation each keeps):

- "batch": GC of a random subset of round(fraction·N) samples (without replacement);
- "entries": every Jacobian entry kept with probability p = fraction, the kept squares
  summed and divided by p (a statistical check; it needs the full Jacobian);
- "outputs": m = round(fraction·D) of the D output coordinates (without replacement,
  shared by the batch), their gradients' squared norms summed and multiplied by D/m;
- "projections": Hutchinson, ‖J‖_F² = E_v ‖vᵀJ‖² for v ~ N(0, I_D), averaged over
  k = round(fraction·D) draws per sample: k vector-Jacobian products instead of D (the
  cheap way for wide embeddings).

The neural-collapse side (numpy only, no torch needed; the torch functions import torch
when called, so the torch-free metrics stage can use this module):

- `mean_inverse_sq_distance`, `geometric_collapse`: the right side of the paper's eq. 6
  without the Poincaré constant (reconstruction; see `geometric_collapse`);
- `ncc_error`: the nearest-class-mean classifier's error (Figure 3's left side);
- `ncc_error_bound`, `gc_bound`, `poincare_estimate`: the bound of Proposition 4.3
  (reconstruction of its lost constants; see `ncc_error_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

GC_ESTIMATORS = ("exact", "batch", "entries", "outputs", "projections")
DEFAULT_CHUNK = 64

# ----------------------------------------------------------------------------- maps


def model_map(model, output: str = "features") -> Callable:
    """x (N×...) -> N×D: the model's penultimate features ("features", the embedding) or
    its logits ("logits"). Puts the model in eval mode (GC is measured there)."""
    if output not in ("features", "logits"):
        raise ValueError(f"output must be 'features' or 'logits', not {output!r}")
    model.eval()
    if output == "features":
        return model.penultimate
    if getattr(model, "classifier", None) is None:
        raise ValueError("logit GC needs a classifier; the model has none")
    return model


def _per_sample(fn: Callable) -> Callable:
    """The map of one sample (no batch axis), for torch.func."""

    def single(x):
        return fn(x.unsqueeze(0)).squeeze(0)

    return single


def _chunks(n: int, chunk: int) -> Iterator[slice]:
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def _method(method: str, x) -> str:
    if method == "auto":
        return "vmap" if x.device.type == "cuda" else "loop"
    if method not in ("loop", "vmap"):
        raise ValueError(f"method must be 'auto', 'loop' or 'vmap', not {method!r}")
    return method


def _pullbacks(fn: Callable, xs, cotangents, method: str):
    """The vector-Jacobian products c ↦ Σ_n c_nᵀ ∂fn(xs)_n/∂xs for each cotangent c
    (n×D) in `cotangents` (a c×n×D tensor): a c×n×(input) tensor. Row n of a product is
    sample n's own VJP because fn treats samples independently (eval mode). "loop": one
    forward, one backward per cotangent (fastest on a CPU); "vmap": torch.func.vjp with
    vmap over the cotangents (one batched backward; fastest on a GPU)."""
    import torch

    if method == "vmap":
        from torch.func import vjp, vmap

        _, pullback = vjp(fn, xs)
        return vmap(pullback)(cotangents)[0].detach()
    with torch.enable_grad():
        leaf = xs.detach().requires_grad_(True)
        out = fn(leaf)
        grads = [
            torch.autograd.grad(out, leaf, c, retain_graph=i < len(cotangents) - 1)[0]
            for i, c in enumerate(cotangents)
        ]
    return torch.stack(grads)


def jacobians(fn: Callable, x, *, chunk: int = DEFAULT_CHUNK, outputs=None, method="auto"):
    """Yield (rows, J) chunk by chunk: J = the per-sample Jacobians of `fn` at x[rows],
    shape (len(rows), D', *x.shape[1:]) with D' = D, or only the output coordinates
    `outputs` (a 1-d index tensor). Each chunk costs one forward pass and D' VJPs.

    method "vmap" is torch.func's per-sample Jacobian, vmap over samples of `jacrev`
    (itself a vmap of VJPs over the output coordinates); "loop" takes the VJPs of the
    chunk's outputs one coordinate at a time (samples are independent in eval mode, so
    row n of each VJP is sample n's gradient). Both give the same numbers (tested);
    "auto" picks "vmap" on CUDA and "loop" on a CPU, where it is 2-5x faster."""
    import torch

    if _method(method, x) == "vmap":
        from torch.func import jacrev, vmap

        single = _per_sample(fn)
        if outputs is not None:
            full = single

            def single(xi):
                return full(xi)[outputs]

        per_sample = vmap(jacrev(single))
        for rows in _chunks(len(x), chunk):
            yield rows, per_sample(x[rows]).detach()
        return
    with torch.no_grad():
        d = fn(x[:1]).shape[1]
    coords = torch.arange(d) if outputs is None else torch.as_tensor(outputs).cpu()
    for rows in _chunks(len(x), chunk):
        xs = x[rows]
        n = len(xs)
        basis = torch.zeros((len(coords), n, d), dtype=xs.dtype, device=xs.device)
        basis[torch.arange(len(coords)), :, coords] = 1.0
        jac = _pullbacks(fn, xs, basis, "loop")  # D' × n × input
        yield rows, jac.transpose(0, 1)


def jacobian_sq_norms(fn: Callable, x, *, chunk: int = DEFAULT_CHUNK, method: str = "auto"):
    """‖∂fn(x_n)/∂x‖_F² of every sample (float64 tensor, N), exactly."""
    import torch

    out = torch.empty(len(x), dtype=torch.float64)
    for rows, jac in jacobians(fn, x, chunk=chunk, method=method):
        out[rows] = jac.flatten(1).double().pow(2).sum(1).cpu()
    return out


def gc_exact(fn: Callable, x, *, chunk: int = DEFAULT_CHUNK, method: str = "auto") -> float:
    """GC = mean_n ‖∂fn(x_n)/∂x‖_F² from the full per-sample Jacobians."""
    return float(jacobian_sq_norms(fn, x, chunk=chunk, method=method).mean())


def _count(fraction: float, total: int, what: str) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"{what} fraction must be in (0, 1], got {fraction}")
    return max(1, min(total, round(fraction * total)))


def _output_dim(fn: Callable, x) -> int:
    import torch

    with torch.no_grad():
        return int(fn(x[:1]).shape[1])


def gc_batch(fn: Callable, x, fraction: float, generator, *, chunk: int = DEFAULT_CHUNK) -> float:
    """Exact GC of round(fraction·N) samples drawn without replacement (unbiased)."""
    import torch

    b = _count(fraction, len(x), "batch")
    rows = torch.randperm(len(x), generator=generator)[:b].to(x.device)
    return gc_exact(fn, x[rows], chunk=chunk)


def gc_entries(fn: Callable, x, p: float, generator, *, chunk: int = DEFAULT_CHUNK) -> float:
    """Jacobian entries kept with probability p, kept squares summed / p, per sample
    averaged (unbiased: E[Σ mask·J²/p] = Σ J²)."""
    import torch

    _count(p, 1, "entries")
    total = 0.0
    for _rows, jac in jacobians(fn, x, chunk=chunk):
        mask = torch.rand(jac.shape, generator=generator).to(jac.device) < p
        total += float(jac.double().pow(2).mul(mask).sum()) / p
    return total / len(x)


def gc_outputs(fn: Callable, x, fraction: float, generator, *, chunk: int = DEFAULT_CHUNK) -> float:
    """m = round(fraction·D) output coordinates (without replacement, the same for the
    whole batch): (D/m) · mean_n Σ_{d in S} ‖∂fn_d(x_n)/∂x‖² (unbiased); m VJPs."""
    import torch

    d = _output_dim(fn, x)
    m = _count(fraction, d, "outputs")
    chosen = torch.randperm(d, generator=generator)[:m]
    total = 0.0
    for _rows, jac in jacobians(fn, x, chunk=chunk, outputs=chosen):
        total += float(jac.double().pow(2).sum())
    return total * d / m / len(x)


def gc_projections(
    fn: Callable,
    x,
    fraction: float,
    generator,
    *,
    chunk: int = DEFAULT_CHUNK,
    draws: int | None = None,
    method: str = "auto",
) -> float:
    """Hutchinson: mean_n mean_k ‖v_kᵀ ∂fn(x_n)/∂x‖², v_k ~ N(0, I_D) independent per
    sample, with k = round(fraction·D) draws (or `draws`): k VJPs instead of D."""
    import torch

    d = _output_dim(fn, x)
    k = draws if draws is not None else _count(fraction, d, "projections")
    if k < 1:
        raise ValueError(f"projections need at least one draw, got {k}")
    total = 0.0
    for rows in _chunks(len(x), chunk):
        xs = x[rows]
        v = torch.randn((k, len(xs), d), generator=generator).to(xs.device, xs.dtype)
        grads = _pullbacks(fn, xs, v, _method(method, xs))  # k × n × input
        total += float(grads.double().pow(2).sum()) / k
    return total / len(x)


def gc_estimate(
    fn: Callable, x, estimator: str, fraction: float = 1.0, generator=None, *, chunk=DEFAULT_CHUNK
) -> float:
    """One of `GC_ESTIMATORS` ("exact" ignores `fraction` and `generator`)."""
    if estimator == "exact":
        return gc_exact(fn, x, chunk=chunk)
    functions = {
        "batch": gc_batch,
        "entries": gc_entries,
        "outputs": gc_outputs,
        "projections": gc_projections,
    }
    if estimator not in functions:
        raise ValueError(f"unknown GC estimator {estimator!r}; known: {', '.join(GC_ESTIMATORS)}")
    if generator is None:
        raise ValueError(f"GC estimator {estimator!r} needs a torch.Generator")
    return functions[estimator](fn, x, fraction, generator, chunk=chunk)


def estimator_draws(
    fn: Callable,
    x,
    fractions: dict[str, list[float]],
    *,
    draws: int,
    seed: int,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[float, list[dict]]:
    """(exact GC, rows {estimator, fraction, draw, value}): `draws` independent draws of
    each estimator at each fraction, all from ONE pass of exact per-sample Jacobians.

    Each draw applies the estimator's own random choice to the exact Jacobians (a subset
    of samples, a Bernoulli mask of entries, a subset of output rows, Gaussian
    projections), which gives the same value as running the estimator on the model
    (that only computes the part it keeps); only the cost differs. Figure 2 needs many
    draws, so the Jacobians are computed once."""
    import torch

    unknown = sorted(set(fractions) - set(GC_ESTIMATORS[1:]))
    if unknown:
        raise ValueError(f"unknown GC estimator(s) {unknown}; known: {GC_ESTIMATORS[1:]}")
    gen = torch.Generator().manual_seed(int(seed))
    n = len(x)
    per_sample = torch.zeros(n, dtype=torch.float64)
    per_output = None  # N × D squared row norms
    entries = {(f, r): 0.0 for f in fractions.get("entries", []) for r in range(draws)}
    projections = {(f, r): 0.0 for f in fractions.get("projections", []) for r in range(draws)}
    for rows, jac in jacobians(fn, x, chunk=chunk):
        sq = jac.double().pow(2)
        d = jac.shape[1]
        per_sample[rows] = sq.flatten(1).sum(1).cpu()
        rows_norm = sq.flatten(2).sum(2).cpu()
        per_output = rows_norm if per_output is None else torch.cat([per_output, rows_norm])
        for p in fractions.get("entries", []):
            _count(p, 1, "entries")
            for r in range(draws):
                mask = torch.rand(sq.shape, generator=gen).to(sq.device) < p
                entries[p, r] += float(sq.mul(mask).sum()) / p
        flat = jac.flatten(2).double()  # n × D × P
        for f in fractions.get("projections", []):
            k = _count(f, d, "projections")
            for r in range(draws):
                v = torch.randn((k, len(flat), d), generator=gen, dtype=torch.float64)
                proj = torch.einsum("knd,ndp->knp", v.to(flat.device), flat)
                projections[f, r] += float(proj.pow(2).sum()) / k
    exact = float(per_sample.mean())
    out = []
    for f in fractions.get("batch", []):
        b = _count(f, n, "batch")
        for r in range(draws):
            rows = torch.randperm(n, generator=gen)[:b]
            out.append(
                {
                    "estimator": "batch",
                    "fraction": f,
                    "draw": r,
                    "value": float(per_sample[rows].mean()),
                }
            )
    for f in fractions.get("outputs", []):
        d = per_output.shape[1]
        m = _count(f, d, "outputs")
        for r in range(draws):
            chosen = torch.randperm(d, generator=gen)[:m]
            value = float(per_output[:, chosen].sum()) * d / m / n
            out.append({"estimator": "outputs", "fraction": f, "draw": r, "value": value})
    for (f, r), total in entries.items():
        out.append({"estimator": "entries", "fraction": f, "draw": r, "value": total / n})
    for (f, r), total in projections.items():
        out.append({"estimator": "projections", "fraction": f, "draw": r, "value": total / n})
    return exact, out


# --------------------------------------------------------------- collapse quantities


def _means(means) -> np.ndarray:
    means = np.asarray(means, np.float64)
    if means.ndim != 2 or len(means) < 2:
        raise ValueError(f"class means must be K×d with K >= 2, got shape {means.shape}")
    return means


def class_means(features, labels, num_classes: int) -> np.ndarray:
    """K×d float64 class means; every class must have a sample."""
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(f"classes without samples: {np.flatnonzero(counts == 0).tolist()}")
    sums = np.zeros((num_classes, features.shape[1]))
    np.add.at(sums, labels, features)
    return sums / counts[:, None]


def mean_inverse_sq_distance(means) -> float:
    """Avg_{i≠j} 1 / ‖μ_i − μ_j‖² over the K(K−1) ordered (= K(K−1)/2 unordered) pairs."""
    means = _means(means)
    i, j = np.triu_indices(len(means), k=1)
    dist2 = np.sum((means[i] - means[j]) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return float(np.mean(1.0 / dist2))


def geometric_collapse(gc: float, means) -> float:
    """Geometric collapse, the right side of the paper's eq. 6 without the Poincaré
    constant (the paper's constants were lost; this is our derivation):

        GCol = K · GC · Avg_{i≠j} 1/‖μ_i − μ_j‖²  =  GC/(K−1) · Σ_{i≠j} 1/‖μ_i − μ_j‖².

    Derivation: for a balanced mixture of K classes, GC = (1/K) Σ_c GC_c, so GC_c ≤ K·GC;
    a class distribution with Poincaré constant ρ has Var_c ≤ ρ·GC_c; hence
    V(i, j) = (Var_i + Var_j)/(2‖μ_i − μ_j‖²) ≤ ρ·K·GC/‖μ_i − μ_j‖², and averaging over
    pairs, CDNV = Avg_{i≠j} V(i, j) ≤ ρ · GCol (appendix A.4.2's "sum of the inverse
    squares of the distances between class means" fits this form)."""
    means = _means(means)
    return len(means) * float(gc) * mean_inverse_sq_distance(means)


def ncc_error(features, labels, means, *, chunk: int = 4096) -> float:
    """Error of the nearest-class-mean classifier argmin_c ‖h − μ_c‖ (ties: lowest c)
    on (features, labels), with class means `means` (e.g. of the train features)."""
    means = _means(means)
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    if len(features) == 0:
        raise ValueError("no samples")
    wrong = 0
    norms = np.sum(means**2, axis=1)
    for start in range(0, len(features), chunk):
        h = features[start : start + chunk]
        dist = norms[None, :] - 2.0 * h @ means.T  # ‖h‖² is common to every class
        wrong += int(np.sum(np.argmin(dist, axis=1) != labels[start : start + chunk]))
    return wrong / len(features)


# Constants of our bound (see ncc_error_bound); one place to change them.
BOUND_MARKOV = 12.0  # 4 (Markov at Δ/2) × 3 (Cauchy-Schwarz over three terms)
BOUND_PER_SAMPLE = 2.5  # (9/4 + 1/4) from the two estimated class means


def ncc_error_bound(avg_cdnv: float, num_classes: int, per_class: int) -> float:
    """Bound on the expected error of the nearest-class-mean classifier whose class means
    are estimated from m = `per_class` samples of each class, in terms of CDNV (the
    structure of Galanti et al. 2022, Prop. 5: (K−1) · Avg CDNV · (1 + O(1/m)); their
    and Munn et al.'s constants are not available to us, so this is our derivation):

        E[err] ≤ 12 · (K−1) · (1 + 2.5/m) · Avg_{i≠j} V(i, j).

    Derivation: x of class i is put in class j only if ‖h(x) − μ̂_i‖ ≥ ‖μ̂_i − μ̂_j‖/2;
    with A = ‖h(x) − μ_i‖, B = ‖μ̂_i − μ_i‖, C = ‖μ̂_j − μ_j‖ and Δ = ‖μ_i − μ_j‖ this needs
    A + 1.5B + 0.5C ≥ Δ/2, whose probability is ≤ 4 E[(A + 1.5B + 0.5C)²]/Δ² ≤
    12 (Var_i + 2.25 Var_i/m + 0.25 Var_j/m)/Δ² (Markov, (a+b+c)² ≤ 3(a²+b²+c²),
    E B² = Var_i/m). A union bound over j ≠ i and the mean over balanced classes give the
    formula (Σ_{i≠j} Var_i/Δ_ij² = Σ_{i≠j} V(i, j) = K(K−1) Avg V). It assumes the
    feature map does not depend on the m samples (as Galanti et al.'s)."""
    if num_classes < 2 or per_class < 1:
        raise ValueError(f"need K >= 2 classes and m >= 1 samples, got {num_classes}, {per_class}")
    factor = BOUND_MARKOV * (num_classes - 1) * (1.0 + BOUND_PER_SAMPLE / per_class)
    return factor * float(avg_cdnv)


def gc_bound(
    geometric_collapse_value: float, num_classes: int, per_class: int, poincare: float
) -> float:
    """Proposition 4.3 (reconstruction): `ncc_error_bound` with Avg CDNV replaced by its
    GC bound ρ · GCol (eq. 6; `geometric_collapse`), ρ the Poincaré constant. As in the
    paper's Figure 3, the Lipschitz (McDiarmid) term that turns the empirical GC into the
    population GC is left out."""
    if not poincare > 0:
        raise ValueError(f"the Poincaré constant must be > 0, got {poincare}")
    return ncc_error_bound(poincare * geometric_collapse_value, num_classes, per_class)


def poincare_estimate(cdnv, collapse) -> float:
    """The smallest ρ with CDNV ≤ ρ · GCol at every given checkpoint, max(CDNV / GCol):
    the paper's "lower bound for the Poincaré constant by comparing the magnitudes of the
    RHS and LHS" of eq. 6 on the Figure 1 runs. Non-finite ratios are ignored."""
    ratio = np.asarray(cdnv, np.float64) / np.asarray(collapse, np.float64)
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        raise ValueError("no finite CDNV / geometric-collapse ratio to estimate ρ from")
    return float(ratio.max())


def relative_error(estimate: float, exact: float) -> float:
    """|estimate − exact| / |exact| (NaN if exact is 0)."""
    return abs(estimate - exact) / abs(exact) if exact else math.nan
