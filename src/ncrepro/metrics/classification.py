"""Accuracy and cross-entropy of logits, in float64."""

from __future__ import annotations

import numpy as np

from .conventions import declare_conventions


def _logits_and_labels(logits, labels):
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (len(z),):
        raise ValueError(f"logits must be N×K and labels (N,), got {z.shape} and {y.shape}")
    if len(z) == 0:
        raise ValueError("no samples")
    return z, y.astype(np.int64)


@declare_conventions(fixed={"prediction": "argmax_logits"})
def accuracy(logits, labels) -> float:
    """Fraction of samples with argmax_c logits = label (first maximum on ties)."""
    z, y = _logits_and_labels(logits, labels)
    return float(np.mean(np.argmax(z, axis=1) == y))


@declare_conventions(fixed={"loss_reduction": "mean"})
def cross_entropy(logits, labels) -> float:
    """Mean over samples of −log softmax(z)_y = logsumexp(z) − z_y, in float64 with the
    stable log-sum-exp (shift by the row maximum)."""
    z, y = _logits_and_labels(logits, labels)
    top = z.max(axis=1)
    lse = top + np.log(np.sum(np.exp(z - top[:, None]), axis=1))
    return float(np.mean(lse - z[np.arange(len(z)), y]))
