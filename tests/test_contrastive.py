"""The supervised contrastive loss against a per-anchor loop written from eq. 2."""

import math

import torch

from ncrepro.train.contrastive import supcon_loss


def reference(z, labels, temperature):
    """Khosla et al. eq. 2 (L_out), anchor by anchor, in float64."""
    n, views, _ = z.shape
    flat = torch.nn.functional.normalize(z.double().transpose(0, 1).reshape(n * views, -1), dim=1)
    y = labels.repeat(views)
    terms = []
    for i in range(n * views):
        others = [a for a in range(n * views) if a != i]
        denominator = sum(math.exp(float(flat[i] @ flat[a]) / temperature) for a in others)
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue
        log_probs = [
            float(flat[i] @ flat[p]) / temperature - math.log(denominator) for p in positives
        ]
        terms.append(-sum(log_probs) / len(positives))
    return sum(terms) / len(terms)


def test_matches_the_equation_for_two_views_and_one():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 2, 5, generator=gen)
    labels = torch.tensor([0, 1, 0, 2, 1, 2])
    got = supcon_loss(z, labels, temperature=0.1)
    assert abs(float(got) - reference(z, labels, 0.1)) < 1e-5
    # one view, a class with a single sample (label 3): that anchor has no term
    single = torch.tensor([0, 1, 0, 3, 1, 2])
    assert (
        abs(float(supcon_loss(z[:, 0], single, temperature=0.5)) - reference(z[:, :1], single, 0.5))
        < 1e-5
    )


def test_base_temperature_scales_and_collapse_minimises():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(4, 2, 3, generator=gen)
    labels = torch.tensor([0, 0, 1, 1])
    plain = supcon_loss(z, labels, temperature=0.1)
    scaled = supcon_loss(z, labels, temperature=0.1, base_temperature=0.07)
    assert torch.allclose(scaled, plain * 0.1 / 0.07)
    # classes collapsed to antipodal points: the loss is near its floor, log of the
    # number of positives among the denominator's terms
    collapsed = torch.tensor([[1.0, 0.0, 0.0]] * 2 + [[-1.0, 0.0, 0.0]] * 2)[:, None, :].repeat(
        1, 2, 1
    )
    assert float(supcon_loss(collapsed, labels, temperature=0.1)) < float(plain)
    assert abs(float(supcon_loss(collapsed, labels, temperature=0.1)) - math.log(3)) < 1e-6
