"""Supervised contrastive loss (Khosla et al. 2020, "Supervised Contrastive Learning",
eq. 2, L^sup_out), the building block of SupCon objectives (ib_supcon's encoders, lpc's
SCL and LPC-SCL models).

For anchors i over all N·V embeddings (N samples, V views each, L2-normalized):

    L = (scale / |A|) Σ_{i∈A} −1/|P(i)| Σ_{p∈P(i)} log( exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ) )

P(i): the other embeddings with i's label (other views of i included); A: the anchors
with at least one positive (an anchor alone in its class has no term, rather than a NaN).
`scale` = τ / base_temperature: 1 in the paper's equation; the authors' public code
(HobbitLong/SupContrast) multiplies by τ/0.07, a constant factor on the loss — set
`base_temperature=0.07` to follow it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supcon_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 0.1,
    base_temperature: float | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """SupCon loss of `embeddings` (N×V×d, or N×d for one view) with `labels` (N).

    `normalize` L2-normalizes each embedding first (the SupCon projection head's output
    is normalized). Computed in float32 whatever the input dtype (autocast on CUDA).
    No host sync: the mean over the anchors with a positive is a masked sum divided by
    their count on the device (the same bits as a mean over the selected anchors when
    every anchor has one, as with V >= 2 views; else equal up to float32 rounding)."""
    if embeddings.ndim == 2:
        embeddings = embeddings[:, None, :]
    if embeddings.ndim != 3 or embeddings.shape[0] != labels.shape[0]:
        raise ValueError(
            f"embeddings must be N×V×d or N×d with N = len(labels), got "
            f"{tuple(embeddings.shape)} for {labels.shape[0]} labels"
        )
    n, views, _ = embeddings.shape
    z = embeddings.float().transpose(0, 1).reshape(n * views, -1)  # view-major, as SupCon
    if normalize:
        z = F.normalize(z, dim=1)
    if n * views < 2:  # one embedding: no positive, no signal; keep the graph
        return z.sum() * 0.0
    y = labels.repeat(views)
    logits = z @ z.T / temperature
    self_mask = torch.eye(n * views, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # a ≠ i in the denominator
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = positives.sum(1)
    has = n_pos > 0
    # the mean over the anchors `has` as a masked sum, not a selection: the number of
    # anchors stays on the device (no host sync); 0 when no anchor has a positive
    mean_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1) / n_pos.clamp(min=1)
    total = torch.where(has, mean_log_prob, 0.0).sum()
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    return -scale * (total / has.sum().clamp(min=1))
