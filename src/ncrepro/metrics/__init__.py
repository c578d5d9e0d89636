"""Neural-collapse metrics in float64 from streamable per-class statistics.

Definitions: NC1–NC4 from Papyan, Han & Donoho (2020); TrainVariance /
StrongTestVariance / WeakTestVariance from Hui, Belkin & Nakkiran (2022, §3.1); CDNV
from Galanti et al. (2022).  Every number-changing convention is a keyword argument with
a stated default, and each metric function has a companion ``fn.conventions(**kwargs)``
returning the conventions of such a call as a dict, for the Parquet row.

Conventions and defaults
------------------------
sigma_w       "pooled" (1/N Σ_i) | "class_averaged" (mean of per-class covariances)  — NC1
global_mean   "class_means" (mean of class means) | "samples" (mean of all samples) — NC1–3
              (the variance ratios always use the mean of class means, as in Hui et al.)
sb_pinv       fixed: Σ_B⁺ from exactly the top K−1 eigenpairs of the symmetrized Σ_B
means_from    "same_checkpoint" (class means of the same features) | external centres
grouping      "true_labels" | "predicted_labels"                                  — compute_all
only_present  False: a class without samples raises ValueError where its mean is needed
std_ddof      fixed 0 (population std) in NC2
kmeans_seed, kmeans_n_init   k-means of WeakTestVariance (no defaults in the function)
"""

from .classification import accuracy, cross_entropy
from .collapse import (
    cdnv,
    nc1,
    nc2,
    nc2_weights,
    nc3,
    nc4,
    top_eig_pinv,
    top_eigenpairs,
    variance_ratio,
    variance_ratio_from_stats,
    weak_test_variance,
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
    "nc1",
    "nc2",
    "nc2_weights",
    "nc3",
    "nc4",
    "top_eig_pinv",
    "top_eigenpairs",
    "variance_ratio",
    "variance_ratio_from_stats",
    "weak_test_variance",
]
