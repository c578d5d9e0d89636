"""Neural-collapse metrics in float64 from streamable per-class statistics.

Definitions: NC1–NC4 from Papyan, Han & Donoho (2020); TrainVariance /
StrongTestVariance / WeakTestVariance from Hui, Belkin & Nakkiran (2022, §3.1); CDNV
from Galanti et al. (2022); uncentred NC3, NC3′ and its scale κ from Massion, Makhlouf &
Massart ("The role of class encoding in neural collapse"), with the ETF distance and the
relative within-class scatter used for its unconstrained-features model (``ncrepro.ufm``
computes all of its NC metrics here).  Every number-changing convention is a keyword
argument with a stated default, and each metric function has a companion
``fn.conventions(**kwargs)`` returning the conventions of such a call as a dict, for the
Parquet row.

Conventions and defaults
------------------------
sigma_w       "pooled" (1/N Σ_i) | "class_averaged" (mean of per-class covariances)  — NC1
global_mean   "class_means" (mean of class means) | "samples" (mean of all samples) — NC1–3
              (the variance ratios always use the mean of class means, as in Hui et al.)
sb_pinv       "top_k_minus_1" (Σ_B⁺ from exactly the top K−1 eigenpairs of Σ_B, via the K×K
              Gram of the centred means; NaN if λ_{K−1} ≈ 0) | "top_k_minus_1_rtol" (of
              those, keep λ > 1e-12·λ_1; the UFM code)                             — NC1
means_from    "same_checkpoint" (class means of the same features) | external centres
grouping      "true_labels" | "predicted_labels"                                  — compute_all
only_present  False: a class without samples raises ValueError where its mean is needed
std_ddof      fixed 0 (population std) in NC2
nc2_cosines   "unit_rows" (default, not recorded) | "gram" (the UFM code; equal up to
              rounding)                                                            — NC2
nc3_centred   True (M̄ = [μ_c − μ_G]) | False (M̄ = [μ_c], uncentred)               — NC3
nc3_prime_means  fixed "uncentred" (H̄ = [μ_c])                         — NC3′, its κ
relative      True (‖H − H̄C‖_F/‖H‖_F) | False (tr Σ_W)              — within_class_scatter
etf_distance  fixed "frobenius_normalised_gram"; kappa_fit fixed "least_squares" (NC3′ κ)
kmeans_seed, kmeans_n_init   k-means of WeakTestVariance (no defaults in the function)
"""

from .classification import accuracy, cross_entropy
from .collapse import (
    cdnv,
    etf_distance,
    nc1,
    nc2,
    nc2_weights,
    nc3,
    nc3_prime,
    nc3_prime_scale,
    nc4,
    top_eig_pinv,
    top_eigenpairs,
    variance_ratio,
    variance_ratio_from_stats,
    weak_test_variance,
    within_class_scatter,
)
from .compute import SplitData, compute_all
from .conventions import CHOICES
from .stats import ClassStats

__all__ = [
    "CHOICES",
    "ClassStats",
    "SplitData",
    "accuracy",
    "cdnv",
    "compute_all",
    "cross_entropy",
    "etf_distance",
    "nc1",
    "nc2",
    "nc2_weights",
    "nc3",
    "nc3_prime",
    "nc3_prime_scale",
    "nc4",
    "top_eig_pinv",
    "top_eigenpairs",
    "variance_ratio",
    "variance_ratio_from_stats",
    "weak_test_variance",
    "within_class_scatter",
]
