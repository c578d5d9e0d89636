"""Accuracy and cross-entropy of logits, in float64."""

from __future__ import annotations

import numpy as np

from .conventions import declare_conventions

# Rows per block of `cross_entropy` (its float64 temporaries stay in cache).
_BLOCK_ROWS = 4096


def _logits_and_labels(logits, labels):
    z = np.asarray(logits)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (len(z),):
        raise ValueError(f"logits must be N×K and labels (N,), got {z.shape} and {y.shape}")
    if len(z) == 0:
        raise ValueError("no samples")
    return z, y.astype(np.int64)


@declare_conventions(fixed={"prediction": "argmax_logits"})
def accuracy(logits, labels) -> float:
    """Fraction of samples with argmax_c logits = label (first maximum on ties)."""
    z, y = _logits_and_labels(logits, labels)  # (float32 → float64 keeps the argmax)
    return float(np.mean(np.argmax(z, axis=1) == y))


@declare_conventions(fixed={"loss_reduction": "mean"})
def cross_entropy(logits, labels) -> float:
    """Mean over samples of −log softmax(z)_y = logsumexp(z) − z_y, in float64 with the
    stable log-sum-exp (shift by the row maximum)."""
    z, y = _logits_and_labels(logits, labels)
    loss = np.empty(len(z))
    for start in range(0, len(z), _BLOCK_ROWS):
        block = z[start : start + _BLOCK_ROWS].astype(np.float64)
        top = block.max(axis=1)
        picked = block[np.arange(len(block)), y[start : start + _BLOCK_ROWS]]
        block -= top[:, None]
        np.exp(block, out=block)
        loss[start : start + _BLOCK_ROWS] = top + np.log(np.sum(block, axis=1)) - picked
    return float(np.mean(loss))
