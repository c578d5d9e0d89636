"""Conventions that change a metric's number: allowed values and per-function records.

Every metric function takes its number-changing conventions as keyword arguments with
stated defaults, and carries a companion ``fn.conventions(**same_kwargs) -> dict`` that
returns the conventions a call with those arguments uses (defaults filled in, fixed
choices added).  The pipeline writes that dict beside the value in each Parquet row.

    >>> nc1.conventions(sigma_w="class_averaged")
    {'sigma_w': 'class_averaged', 'global_mean': 'class_means', 'sb_pinv': 'top_k_minus_1'}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

# Allowed values of the string conventions (the first one is the default everywhere).
CHOICES: dict[str, tuple[str, ...]] = {
    # Σ_W: pooled (1/N) Σ_i (h_i − μ_y)(h_i − μ_y)ᵀ, or the mean over classes of the
    # per-class covariances (equal for balanced classes).
    "sigma_w": ("pooled", "class_averaged"),
    # μ_G: mean of the class means (Hui et al. §3.1, balanced-agnostic) or mean of samples.
    "global_mean": ("class_means", "samples"),
    # Which labels group samples into classes: the true labels (ours) or the network's
    # predictions (the LPC public code).
    "grouping": ("true_labels", "predicted_labels"),
    # What ClassStats keeps of the within-class scatter.
    "scatter": ("pooled", "per_class", "none"),
}


def check_choice(name: str, value: str) -> str:
    """Return ``value`` if it is an allowed value of convention ``name``, else raise."""
    allowed = CHOICES[name]
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")
    return value


def declare_conventions(
    record: Sequence[str] = (),
    *,
    fixed: Mapping[str, object] | None = None,
    rename: Mapping[str, str] | None = None,
    derive: Callable[[dict], dict] | None = None,
):
    """Attach ``fn.conventions(**kwargs) -> dict`` to a metric function.

    record: keyword arguments of ``fn`` whose (default-filled) values are recorded.
    fixed:  conventions the function does not let the caller change (recorded as is).
    rename: record a keyword under another column name (e.g. seed -> kmeans_seed).
    derive: computes further entries from the keyword arguments given to ``conventions``
            (e.g. ``means_from`` resolved from whether ``centers`` was passed).
    """
    fixed = dict(fixed or {})
    rename = dict(rename or {})

    def wrap(fn):
        params = inspect.signature(fn).parameters

        def conventions(**kwargs) -> dict:
            unknown = set(kwargs) - set(params)
            if unknown:
                raise TypeError(f"{fn.__name__} has no argument(s) {sorted(unknown)}")
            out: dict = {}
            for name in record:
                value = kwargs.get(name, params[name].default)
                if value is inspect.Parameter.empty:
                    raise TypeError(f"{fn.__name__}.conventions needs {name}= (no default)")
                if name in CHOICES:
                    check_choice(name, value)
                out[rename.get(name, name)] = value
            if derive is not None:
                out.update(derive(kwargs))
            out.update(fixed)
            return out

        conventions.__doc__ = f"Conventions recorded for a call of {fn.__name__}."
        fn.conventions = conventions
        return fn

    return wrap
