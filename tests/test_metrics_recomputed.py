"""Every per-checkpoint metric row of every study's aggregated table (smoke run, kept
feature files) recomputed here from the feature files with numpy/scipy/scikit-learn,
straight from the papers' formulas — not with ncrepro.metrics — so a wrong convention
in the library (ddof, the mean subtracted, the pseudo-inverse, a missing square, the
bias) fails here even when the library's own unit tests share the mistake.

Definitions: Papyan, Han & Donoho (2020) NC1–NC4; Hui, Belkin & Nakkiran (2022,
§3.1) Train/StrongTest/WeakTestVariance; Galanti et al. (2022) CDNV; Munn et al. (2024)
NCC error; Sbailò & Ghiringhelli (LPC) separation ratio, norm CV, Kozachenko–Leonenko
entropy, binarity; Wang & Palmer ETF signatures.  Where a paper leaves a choice open the
library's recorded convention is followed, and the test checks that the table records
exactly that convention (so a changed preset fails loudly, not as a numerical mismatch).

Rows not computed from feature files (probes that retrain or differentiate the model,
study stages over other rows) are listed in NOT_FROM_FEATURES with the reason; any other
metric name fails, and so does a table that lost or gained a metric (RECOMPUTED).
"""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln, logsumexp

RESULTS = "results/smoke"
EPS = np.finfo(np.float64).eps
RTOL = 1e-8  # float64 throughout; the library and these formulas differ only by rounding
STATS = ("mean", "min", "std")  # binarity's summaries over the dimensions

# --------------------------------------------------------------------------- features


class Split:
    """One split's feature file in float64 (features are stored as float32), with the
    class means of the true labels — the grouping every smoke table records."""

    def __init__(self, data, num_classes):
        self.h = data["features"].astype(np.float64)
        self.y = data["labels"].astype(np.int64)
        self.logits = data["logits"].astype(np.float64) if "logits" in data else None
        self.W = data["classifier_weight"].astype(np.float64) if "logits" in data else None
        self.n, self.d = self.h.shape
        self.k = num_classes
        self.means = np.stack([self.h[self.y == c].mean(axis=0) for c in range(self.k)])
        self.dev = self.h - self.means[self.y]  # h_i − μ_{y_i}
        self.memo = {}  # per-split results shared by several rows (binarity's fits)


def load_checkpoint(step_dir):
    data = {}
    for split in ("train", "test"):
        with np.load(step_dir / f"{split}.npz") as f:
            data[split] = {key: f[key] for key in f.files}
    # K as the metrics stage defines it: the classifier's outputs, or (an encoder)
    # 1 + the largest label of either split
    train, test = data["train"], data["test"]
    k = (
        train["logits"].shape[1]
        if "logits" in train
        else max(train["labels"].max(), test["labels"].max()) + 1
    )
    return {split: Split(d, int(k)) for split, d in data.items()}


# --------------------------------------------------------------------------- references


def variance_ratio(s):
    """[Hui] §3.1: E_{(x,y)} ‖h(x) − μ_y‖² / E_i ‖μ_i − μ̄‖², μ̄ = Σ_i μ_i / K (the mean of
    the class means, as the paper writes); means of the same checkpoint (the recorded
    means_from=same_checkpoint: the paper's μ̂ at time T is read as the same t)."""
    between = np.mean(np.sum((s.means - s.means.mean(axis=0)) ** 2, axis=1))
    return np.mean(np.sum(s.dev**2, axis=1)) / between


def weak_test_variance(s, row):
    """[Hui] §3.1 with μ̃_i the K centroids of k-means on the test features: the squared
    distance to the nearest centroid (the paper's "argmin" means the distance) over the
    spread of the centroids about their mean.  k-means as the library records it:
    scikit-learn KMeans, k-means++ init, Lloyd, random_state = the row's kmeans_seed,
    n_init = kmeans_n_init, on float64 features (float32 input would stay float32).
    One OpenMP thread, as the metrics job (threads: 1): Lloyd's sums over chunks of 256
    rows are reduced in thread order, which could move a centroid in its last bits."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        km = KMeans(
            n_clusters=s.k,
            init="k-means++",
            n_init=int(row["kmeans_n_init"]),
            random_state=int(row["kmeans_seed"]),
            algorithm="lloyd",
        ).fit(s.h)
    c = km.cluster_centers_
    dist2 = np.sum((s.h[:, None, :] - c[None, :, :]) ** 2, axis=2).min(axis=1)
    return dist2.mean() / np.mean(np.sum((c - c.mean(axis=0)) ** 2, axis=1))


def nc1(s):
    """[Papyan] NC1 = (1/K) Tr(Σ_W Σ_B⁺), Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(·)ᵀ (pooled),
    Σ_B = (1/K) M̄M̄ᵀ, M̄ = [μ_c − μ_G] with μ_G the mean of class means (recorded
    global_mean=class_means; the paper's μ_G is the sample mean, equal for balanced data).
    Σ_B⁺ from exactly its top r = min(K−1, d) eigenpairs (recorded sb_pinv=top_k_minus_1),
    here from the SVD M̄ = U S Vᵀ: Σ_B⁺ = K U_r S_r⁻² U_rᵀ, so
        NC1 = (1/N) Σ_i ‖S_r⁻¹ U_rᵀ (h_i − μ_{y_i})‖².
    NaN when λ_r ≤ max(K, d)·ε·λ_1 (the library's documented cut-off for affinely
    dependent class means)."""
    centred = (s.means - s.means.mean(axis=0)).T  # d×K
    u, sv, _ = np.linalg.svd(centred, full_matrices=False)
    r = min(s.k - 1, s.d)
    if sv[0] == 0 or sv[r - 1] ** 2 <= max(s.k, s.d) * EPS * sv[0] ** 2:
        return math.nan
    z = (s.dev @ u[:, :r]) / sv[:r]
    return np.mean(np.sum(z**2, axis=1))


def nc2_of(vectors):
    """[Papyan] NC2 of K vectors: std_c ‖v_c‖ / mean_c ‖v_c‖; std over pairs c < c′ of
    cos(v_c, v_c′); mean over c ≠ c′ of |cos + 1/(K−1)|.  Standard deviations with ddof=0
    (the paper does not say; the library records std_ddof=0)."""
    k = len(vectors)
    norms = np.sqrt(np.sum(vectors**2, axis=1))
    cos = (vectors @ vectors.T) / np.outer(norms, norms)
    pairs = cos[np.triu_indices(k, 1)]
    off = cos[~np.eye(k, dtype=bool)]
    return {
        "equinorm": np.std(norms, ddof=0) / np.mean(norms),
        "equiangularity": np.std(pairs, ddof=0),
        "max_angle": np.mean(np.abs(off + 1.0 / (k - 1))),
    }


def nc3(s):
    """[Papyan] NC3 = ‖Wᵀ/‖W‖_F − M̄/‖M̄‖_F‖_F², M̄ centred on the mean of class means."""
    wt, m = s.W.T, (s.means - s.means.mean(axis=0)).T
    return np.sum((wt / np.linalg.norm(wt) - m / np.linalg.norm(m)) ** 2)


def nearest_mean(h, means):
    """argmin_c ‖h − μ_c‖² (first minimum on ties), from the differences themselves."""
    return np.argmin(np.sum((h[:, None, :] - means[None, :, :]) ** 2, axis=2), axis=1)


def nc4(s):
    """[Papyan] NC4: fraction of samples whose network prediction argmax logits (the
    network's own logits, bias included) differs from the nearest class mean."""
    return np.mean(np.argmax(s.logits, axis=1) != nearest_mean(s.h, s.means))


def cdnv(s):
    """[Galanti] mean over unordered pairs i < j of (Var_i + Var_j) / (2‖μ_i − μ_j‖²),
    Var_c = E_{h in c} ‖h − μ_c‖² (squared distance, not the fourth power)."""
    var = np.array([np.mean(np.sum(s.dev[s.y == c] ** 2, axis=1)) for c in range(s.k)])
    i, j = np.triu_indices(s.k, 1)
    return np.mean((var[i] + var[j]) / (2 * np.sum((s.means[i] - s.means[j]) ** 2, axis=1)))


def cross_entropy(s):
    return np.mean(logsumexp(s.logits, axis=1) - s.logits[np.arange(s.n), s.y])


def separation_ratio(s):
    """[LPC] eq. (8): mean over samples of min_{c ≠ y} ‖z − μ_c‖ / ‖z − μ_y‖."""
    dist = np.sqrt(np.sum((s.h[:, None, :] - s.means[None, :, :]) ** 2, axis=2))
    own = dist[np.arange(s.n), s.y]
    dist[np.arange(s.n), s.y] = np.inf
    with np.errstate(divide="ignore"):
        return np.mean(dist.min(axis=1) / own)


def coefficient_of_variation(values):
    return np.std(values, ddof=0) / np.mean(values)  # population std, as recorded


def kl_entropy(s, row):
    """[LPC] Kozachenko–Leonenko: H = ψ(N) − ψ(k) + log V_d + (d/N) Σ_i log ε_i, ε_i the
    distance to the k-th nearest other point, V_d = π^{d/2}/Γ(d/2 + 1); features
    standardized per dimension (population std; constant columns only centred), ε_i +
    1e-10 and H/d — the LPC code's conventions, recorded in the row."""
    assert row["entropy_standardize"] and row["entropy_per_dimension"]
    k, n, d = int(row["entropy_k"]), s.n, s.d
    std = s.h.std(axis=0)
    z = (s.h - s.h.mean(axis=0)) / np.where(std > 0, std, 1.0)
    eps = cKDTree(z).query(z, k=k + 1)[0][:, k] + row["entropy_epsilon"]  # [0] is itself
    log_vd = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1)
    return (digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(eps))) / d


def binarity(s, row):
    """[LPC] Appendix D: per dimension, a 2-component Gaussian mixture on the standardized
    values (scikit-learn, k-means start, random_state = the row's gmm_seed): score = mean
    log-likelihood, std = (σ₁ + σ₂)/2, peak distance = |m₁ − m₂| / std; then mean, min
    and population std over the dimensions."""
    from sklearn.mixture import GaussianMixture

    per_dim = {"score": [], "peak_distance": [], "std": []}
    for j in range(s.d):
        x = s.h[:, j]
        std = x.std()
        x = ((x - x.mean()) / (std if std > 0 else 1.0)).reshape(-1, 1)
        gmm = GaussianMixture(n_components=2, random_state=int(row["gmm_seed"])).fit(x)
        sigma = np.sqrt(gmm.covariances_.ravel()).mean()
        per_dim["score"].append(gmm.score(x))
        per_dim["std"].append(sigma)
        m = gmm.means_.ravel()
        per_dim["peak_distance"].append(abs(m[0] - m[1]) / sigma if sigma > 0 else 0.0)
    return {
        f"{name}_{stat}": fn(np.asarray(v))
        for name, v in per_dim.items()
        for stat, fn in zip(STATS, (np.mean, np.min, np.std), strict=True)
    }


def etf_signatures(s):
    """[Wang & Palmer] of the centred class means: norm CV (= NC2 equinorm), population
    std of the pairwise angles in degrees, mean pairwise cosine."""
    centred = s.means - s.means.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    cos = np.clip((unit @ unit.T)[np.triu_indices(s.k, 1)], -1, 1)
    return {
        "etf_norm_cv": coefficient_of_variation(np.linalg.norm(centred, axis=1)),
        "etf_angle_std_deg": np.std(np.degrees(np.arccos(cos))),
        "etf_mean_cosine": np.mean(cos),
    }


def reference(metric, split, ckpt, row):
    """The recomputed value of one table row (KeyError for a metric not recomputed)."""
    s = ckpt[split]
    if metric.startswith("nc2_w_"):
        return nc2_of(s.W)[metric.removeprefix("nc2_w_")]
    if metric.startswith("nc2_"):
        return nc2_of(s.means - s.means.mean(axis=0))[metric.removeprefix("nc2_")]
    if metric.startswith("binarity_"):
        key = ("binarity", row["gmm_seed"])
        if key not in s.memo:  # nine rows from one set of fits
            s.memo[key] = binarity(s, row)
        return s.memo[key][metric.removeprefix("binarity_")]
    if metric.startswith("etf_"):
        return etf_signatures(s)[metric]
    return {
        "train_variance": lambda: variance_ratio(s),
        "strong_test_variance": lambda: variance_ratio(s),
        "weak_test_variance": lambda: weak_test_variance(s, row),
        "nc1": lambda: nc1(s),
        "nc1_per_dim": lambda: nc1(s) / s.d,
        "nc3": lambda: nc3(s),
        "nc4": lambda: nc4(s),
        "cdnv": lambda: cdnv(s),
        "accuracy": lambda: np.mean(np.argmax(s.logits, axis=1) == s.y),
        "loss": lambda: cross_entropy(s),
        # [Munn] Fig. 3 left side: NCC on the test features with the *train* class means
        "ncc_test_error": lambda: np.mean(nearest_mean(s.h, ckpt["train"].means) != s.y),
        "separation_ratio": lambda: separation_ratio(s),
        "norm_cv": lambda: coefficient_of_variation(np.linalg.norm(s.h, axis=1)),
        # ‖μ_c‖ uncentred: the collapse points' distances from the origin
        "norm_cv_class_means": lambda: coefficient_of_variation(np.linalg.norm(s.means, axis=1)),
        "abs_cv": lambda: coefficient_of_variation(np.abs(s.h).ravel()),
        "entropy": lambda: kl_entropy(s, row),
    }[metric]()


# --------------------------------------------------------------------------- ib_supcon pairs
# The pair stage (probe "ib_pair") keeps the backbone representations it analysed, in the
# feature-file format: <results>/representations/ib_supcon/<run>/<own | zero_shot_<target>>/
# step<S>/model{1,2}_{train,test}.npz (model 1 = the run, model 2 its partner).


def ridged_cov(a, ridge):
    """Σ = AᵀA/N of the centred data plus ridge·(tr Σ/d)·I: the recorded cca_ridge /
    ib_ridge, relative to the mean variance (Wang & Palmer do not say how they
    regularized)."""
    a = a - a.mean(axis=0)
    cov = a.T @ a / len(a)
    return cov + ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])


def canonical_correlations(x, y, ridge):
    """ρ_i, descending: the singular values of L_x⁻¹ Σ_xy L_y⁻ᵀ with L the Cholesky factors
    of the ridged covariances (positive definite for ridge > 0, so no direction is
    dropped: the library's rank cut-off 1e-10·λ_max cannot bite when λ_min ≥ ridge·λ_mean)."""
    from scipy.linalg import cholesky, solve_triangular

    assert ridge > 0
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    lx = cholesky(ridged_cov(x, ridge), lower=True)
    ly = cholesky(ridged_cov(y, ridge), lower=True)
    m = solve_triangular(lx, xc.T @ yc / len(x), lower=True)
    m = solve_triangular(ly, m.T, lower=True).T
    return np.clip(np.linalg.svd(m, compute_uv=False), 0, 1)


def rank_gaussianize(a):
    """Wang & Palmer's copula transform per coordinate: z = Φ⁻¹(rank/(N + 1)), average
    ranks for ties (the pair stage fits it on the train split; only train is used here)."""
    from scipy.special import ndtri

    return ndtri(pd.DataFrame(a).rank(method="average").to_numpy() / (len(a) + 1))


def clip_ib_eigenvalues(lam):
    """The library's recorded clipping: λ in [1e-12, 1] (λ = 0 would give α = ∞), and
    λ within 1e-10 of 1 is 1 (no information about y)."""
    lam = np.clip(lam, 1e-12, 1.0)
    return np.where(lam > 1 - 1e-10, 1.0, lam)


class PairCheckpoint:
    """Everything the pair stage computes from the features of one checkpoint."""

    def __init__(self, folder, ridge):
        self.x, self.labels = {}, {}
        for model in (1, 2):
            for split in ("train", "test"):
                with np.load(folder / f"model{model}_{split}.npz") as f:
                    self.x[model, split] = f["features"].astype(np.float64)
                    self.labels[split] = f["labels"].astype(np.int64)  # the same for both
        self.k = int(max(self.labels["train"].max(), self.labels["test"].max())) + 1
        self.ridge = ridge
        # Gaussian IB of x = model 1's ranked train representation about y = model 2's
        # [Chechik et al. 2005]: Σ_x|y v = λ Σ_x v, λ ascending, v normalized to
        # vᵀ Σ_x v = 1 (recorded ib_vector_scale) — scipy's generalized symmetric
        # eigenproblem normalizes exactly so.
        from scipy.linalg import eigh

        zx, zy = rank_gaussianize(self.x[1, "train"]), rank_gaussianize(self.x[2, "train"])
        cov_x, cov_y = ridged_cov(zx, ridge), ridged_cov(zy, ridge)
        cross = (zx - zx.mean(axis=0)).T @ (zy - zy.mean(axis=0)) / len(zx)
        cond = cov_x - cross @ np.linalg.solve(cov_y, cross.T)
        _, self.v = eigh((cond + cond.T) / 2, cov_x)
        self.ranked_x = zx
        # the eigenvalues themselves independently of that solve: λ_i = 1 − ρ_i² with ρ the
        # canonical correlations of the ranked representations (padded with λ = 1 where
        # x has more dimensions than y)
        rho = canonical_correlations(zx, zy, ridge)
        lam = np.ones(zx.shape[1])
        lam[: len(rho)] = 1 - rho**2
        self.lam = clip_ib_eigenvalues(np.sort(lam))
        # the CCA of Fig. 2: the two models' raw test representations
        self.rho_test = canonical_correlations(self.x[1, "test"], self.x[2, "test"], ridge)
        self.memo = {}

    def alpha_relative(self, dims):
        """α_i in the β → ∞ limit (recorded ib_beta "infinity (alpha shape)"):
        sqrt((1 − λ_i)/(λ_i r_i)), r_i = v_iᵀ Σ_x v_i = 1, relative to their mean."""
        alpha = np.sqrt((1 - self.lam[:dims]) / self.lam[:dims])
        return alpha / alpha.mean()

    def ib_representation(self, dims):
        """T = A x, rows of A = α_i v_iᵀ (i ≤ dims), of model 1's ranked train split."""
        alpha = np.sqrt((1 - self.lam[:dims]) / self.lam[:dims])
        return self.ranked_x @ (self.v[:, :dims] * alpha)

    def split(self, features, split):
        return Split({"features": features, "labels": self.labels[split]}, self.k)


def pair_reference(metric, row, pair):
    """The recomputed value of one row of the pair stage (KeyError if not recomputed)."""
    representation, split = row["representation"], row["split"]
    component = None if pd.isna(row["component"]) else int(row["component"])
    dims = None if pd.isna(row["dims"]) else int(row["dims"])
    if metric.startswith("etf_"):
        if representation not in pair.memo:
            if representation == "ib":
                assert dims == min(pair.k, len(pair.lam))  # the K-dim IB (own data)
                features = pair.ib_representation(dims)
            else:
                assert representation == "raw"
                features = pair.x[1, "train"]
            pair.memo[representation] = etf_signatures(pair.split(features, "train"))
        return pair.memo[representation][metric]
    if metric.startswith("cca_"):
        rho = pair.rho_test
        if metric == "cca_coefficient":
            return rho[component - 1]
        lead = rho[: pair.k]  # the K leading correlations, population variance
        assert dims == len(lead)
        return {"cca_leading_mean": np.mean(lead), "cca_leading_var": np.var(lead)}[metric]
    return {
        "nc1": lambda: nc1(pair.split(pair.x[1, split], split)),
        "representation_dim": lambda: pair.x[1, "test"].shape[1],
        "ib_eigenvalue": lambda: pair.lam[component - 1],
        # dims: K on the pair's own data; on a zero-shot target the K' the stage chose
        # from its linear probes (kprime, not recomputed: see NOT_FROM_FEATURES)
        "ib_alpha_relative": lambda: pair.alpha_relative(dims)[component - 1],
        "ib_beta": lambda: math.inf,  # the β → ∞ shape: a setting, not an estimate
    }[metric]()


# --------------------------------------------------------------------------- the checks

# Conventions each reference above implements: a table row recording another value of a
# convention column must fail (the reference would be the wrong formula for it).
CONVENTIONS = {
    "grouping": "true_labels",
    "only_present": False,
    "means_from": "same_checkpoint",
    "global_mean": "class_means",
    "sigma_w": "pooled",
    "sb_pinv": "top_k_minus_1",
    "std_ddof": 0,
    "cdnv_distance": "squared",
    "cdnv_pairs": "mean_i<j",
    "nc4_network": "argmax_logits",
    "prediction": "argmax_logits",
    "loss_reduction": "mean",
    "ncc_means": "train",
    "kmeans": "sklearn_lloyd_kmeans++",
    "train_images": "clean",
    "separation_means": "same_split",
    "binarity_standardize": "per_dimension",
    "gmm": "sklearn_full_kmeans_init",
    "binarity_std_ddof": 0,
    "nc2_cosines": None,  # the default (unit rows) is not recorded
    "ib_vector_scale": "v'Sigma_x v=1",
    "representation_of": "backbone",
}

# Table rows not computed from kept feature files, with the reason; they have their own
# tests (tests/test_probes.py, test_geometric.py, test_deepfool.py, test_fewshot.py,
# test_cca_ib.py, tests/studies/).  Any other row must be recomputed.
NOT_FROM_FEATURES = {
    "nc_limits": {
        "finetune_accuracy": "fine-tunes every weight from a checkpoint (fig5)",
        "linear_probe_accuracy": "a classifier trained on a checkpoint's features",
    },
    "gc_transfer": {
        "gc": "input Jacobians of the model (probes geometric, gc_sampling)",
        "logit_gc": "input Jacobians of the model's logits",
        "geometric_collapse": "K · GC · mean_inverse_sq_distance: GC from the Jacobians",
        "fewshot_accuracy": "ridge classifiers on features of held-out classes (not kept)",
        "target_cdnv": "CDNV of held-out classes' features, extracted by the probe, not kept",
        "gc_bound": "the gc_bound stage's formula of other rows and a fitted Poincaré constant",
        "cdnv_bound": "the gc_bound stage's formula of the cdnv rows",
    },
    "lpc": {
        "deepfool_robustness": "DeepFool attacks on the model (images, gradients)",
        "deepfool_robustness_median": "DeepFool attacks on the model",
        "deepfool_fooled_fraction": "DeepFool attacks on the model",
        "deepfool_iterations_mean": "DeepFool attacks on the model",
    },
    "ib_supcon": {
        "linear_accuracy": "logistic-regression probes fitted on the representations",
        "both_correct": "the two models' logistic-regression probes agreeing",
        "kprime": "the fewest IB dimensions whose probe accuracy is near the best",
    },
}

# What each table must contain (all of it recomputed): a table that lost a metric, or
# gained one, fails too.
NC2 = {f"nc2_{part}" for part in ("equinorm", "equiangularity", "max_angle")}
ETF = {"etf_norm_cv", "etf_angle_std_deg", "etf_mean_cosine"}
RECOMPUTED = {
    "nc_limits": {
        "train_variance",
        "strong_test_variance",
        "weak_test_variance",
        "nc1",
        *NC2,
        *{name.replace("nc2_", "nc2_w_") for name in NC2},
        "nc3",
        "nc4",
        "cdnv",
        "accuracy",
        "loss",
    },
    "gc_transfer": {"cdnv", "ncc_test_error", "accuracy", "loss", "mean_inverse_sq_distance"},
    "lpc": {
        "accuracy",
        "loss",
        "nc1",
        "nc1_per_dim",
        *NC2,
        "separation_ratio",
        "norm_cv",
        "norm_cv_class_means",
        "abs_cv",
        "entropy",
        *{f"binarity_{m}_{s}" for m in ("score", "peak_distance", "std") for s in STATS},
    },
    "ib_supcon": {
        "nc1",
        *ETF,
        "representation_dim",
        "cca_coefficient",
        "cca_leading_mean",
        "cca_leading_var",
        "ib_eigenvalue",
        "ib_alpha_relative",
        "ib_beta",
    },
}

# Dimensionless numbers of order 1 (ratios of norms, cosines, fractions, eigenvalues in
# [0, 1]): rounding errors are absolute, ~1e-16, so an exact 0 (NC2 of K = 2 antipodal
# means) comes out as ±1e-17 on either side; they get an absolute tolerance as well.
ORDER_ONE = (
    {"nc3", "nc4", "accuracy", "ncc_test_error", "abs_cv", "norm_cv", "norm_cv_class_means"}
    | NC2
    | {name.replace("nc2_", "nc2_w_") for name in NC2}
    | ETF
    | {"cca_coefficient", "cca_leading_mean", "cca_leading_var", "ib_eigenvalue"}
)


def study_keys_with_runs():
    """Every registered study with runs (class_encoding has none: its table comes from
    solving the unconstrained-features model, with no feature files; tests/studies checks
    it against the closed forms)."""
    from ncrepro.studies import get, study_keys

    return [key for key in study_keys() if get(key).has_runs]


def row_source(row):
    """ "metrics" for a row of the metrics stage, else the probe or stage that wrote it."""
    if not pd.isna(row.get("code_version_metrics")):
        return "metrics"
    return row.get("probe")


def recompute(study, row, work, cache):
    """The value of a table row from the kept features (None: not from features)."""
    metric, run, step = row["metric"], row["run"], int(row["step"])
    source = row_source(row)
    if source == "metrics" or (source, metric) == ("geometric", "mean_inverse_sq_distance"):
        key = ("features", run, step)
        if key not in cache:
            cache[key] = load_checkpoint(work / RESULTS / "features" / study / run / f"step{step}")
        ckpt = cache[key]
        if source == "geometric":
            # Avg_{i<j} 1/‖μ_i − μ_j‖² of the train class means ([Munn] eq. 6); the probe
            # re-extracts the same un-augmented train features from the checkpoint
            means = ckpt["train"].means
            i, j = np.triu_indices(len(means), 1)
            return np.mean(1 / np.sum((means[i] - means[j]) ** 2, axis=1))
        return reference(metric, row["split"], ckpt, row)
    if source == "ib_pair" and metric not in NOT_FROM_FEATURES[study]:
        sub = "own" if row["task"] == "own" else f"zero_shot_{row['eval_dataset']}"
        key = ("pair", run, sub, step)
        if key not in cache:
            folder = work / RESULTS / "representations" / study / run / sub / f"step{step}"
            assert row["cca_ridge"] == row["ib_ridge"]
            cache[key] = PairCheckpoint(folder, float(row["ib_ridge"]))
        return pair_reference(metric, row, cache[key])
    if metric in NOT_FROM_FEATURES[study]:
        return None
    raise KeyError(metric)


def check_table(work, study, table):
    """Recompute every row of `table` that comes from features; returns {metric: rows
    checked} (rows not from features are only counted under "skipped")."""
    checked: dict[str, int] = {}
    cache: dict = {}
    for row in table.to_dict("records"):
        for column, expected in CONVENTIONS.items():
            if column in row and not pd.isna(row[column]):
                assert row[column] == expected, (study, row["metric"], column, row[column])
        for column in ("kmeans_seed", "gmm_seed"):  # the run's seed (the metrics stage's)
            if column in row and not pd.isna(row[column]):
                assert row[column] == row["seed"], (study, row["metric"], column)
        try:
            expected = recompute(study, row, work, cache)
        except KeyError:
            pytest.fail(
                f"{study}: no recomputation of metric {row['metric']!r} ({row_source(row)})"
            )
        if expected is None:
            checked["skipped"] = checked.get("skipped", 0) + 1
            continue
        value, expected = float(row["value"]), float(expected)
        where = " ".join(
            f"{key}={row[key]}"
            for key in ("run", "step", "split", "metric", "representation", "component")
            if key in row and not pd.isna(row[key])
        )
        if math.isnan(expected):
            assert math.isnan(value), where
        else:
            tolerance = 1e-12 if row["metric"] in ORDER_ONE else 0.0
            assert value == pytest.approx(expected, rel=RTOL, abs=tolerance), where
        checked[row["metric"]] = checked.get(row["metric"], 0) + 1
    return checked


@pytest.mark.slow
@pytest.mark.parametrize("study", study_keys_with_runs())
def test_every_metric_row_matches_its_recomputation_from_the_kept_features(smoke_run, study):
    work = smoke_run
    assert study in RECOMPUTED, f"new study {study}: recompute its metrics in this test"
    table = pd.read_parquet(work / RESULTS / "tables" / f"{study}.parquet")
    checked = check_table(work, study, table)
    assert set(checked) - {"skipped"} == RECOMPUTED[study]
    if study == "nc_limits":
        # k-means with the run's seed and the preset's n_init (presets/smoke.yaml)
        preset = yaml.safe_load((work / "presets/smoke.yaml").read_text())
        weak = table[table["metric"] == "weak_test_variance"]
        assert (weak["kmeans_seed"] == weak["seed"]).all()
        assert (weak["kmeans_n_init"] == preset["nc_limits"]["metrics"]["kmeans_n_init"]).all()
