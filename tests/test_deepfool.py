"""Batched DeepFool: the exact distance to an affine classifier's nearest decision
boundary, candidate restriction, batch = one sample at a time, and the registered probe."""

import numpy as np
import pytest
import torch
from torch import nn

from ncrepro.probes.deepfool import deepfool, deepfool_probe, robustness
from ncrepro.probes.registry import PROBES, probe_function
from ncrepro.train.device_data import Normalizer


def _affine(num_classes=5, shape=(3, 4, 4), seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), num_classes))
    return model.eval()


def _exact_distances(model, x):
    """Per sample: min over k ≠ l of |f_k − f_l| / ‖W_k − W_l‖ and the argmin k."""
    W, b = model[1].weight.double(), model[1].bias.double()
    f = x.flatten(1).double() @ W.T + b
    label = f.argmax(1)
    dist = []
    for i in range(len(x)):
        d = (f[i] - f[i, label[i]]).abs() / (W - W[label[i]]).norm(dim=1)
        d[label[i]] = float("inf")
        dist.append((d.min().item(), int(d.argmin())))
    return dist


@pytest.mark.parametrize("step_eps", [0.0, 1e-4])
def test_affine_classifier_exact_distance_times_one_plus_overshoot(step_eps):
    model = _affine()
    x = torch.randn(16, 3, 4, 4)
    out = deepfool(model, x, num_candidates=None, overshoot=0.02, step_eps=step_eps)
    norms = out["perturbation"].flatten(1).norm(dim=1)
    for i, (d, k) in enumerate(_exact_distances(model, x)):
        assert norms[i].item() == pytest.approx((d + step_eps) * 1.02, rel=1e-5)
        assert out["fooled_label"][i].item() == k  # crossed into the nearest class
    assert out["fooled"].all() and (out["iterations"] == 1).all()
    assert torch.equal(out["label"], model(x).argmax(1))
    # the perturbed inputs are classified as the fooled labels
    assert torch.equal(model(x + out["perturbation"]).argmax(1), out["fooled_label"])
    torch.testing.assert_close(robustness(x, out["perturbation"]), norms / x.flatten(1).norm(dim=1))


def test_candidates_are_the_top_clean_logits():
    """With 2 candidates only the runner-up class is considered: the distance to its
    boundary, which is >= the exact minimum over all classes."""
    model = _affine(num_classes=8, seed=1)
    x = torch.randn(32, 3, 4, 4)
    out = deepfool(model, x, num_candidates=2, overshoot=0.0, step_eps=0.0)
    W, b = model[1].weight.double(), model[1].bias.double()
    f = x.flatten(1).double() @ W.T + b
    top2 = f.argsort(1, descending=True)[:, :2]
    for i, (d_min, _) in enumerate(_exact_distances(model, x)):
        top, k = top2[i]
        d2 = ((f[i, k] - f[i, top]).abs() / (W[k] - W[top]).norm()).item()
        assert out["perturbation"][i].norm().item() == pytest.approx(d2, rel=1e-4, abs=1e-6)
        assert d2 >= d_min - 1e-9


def _small_net():
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.SiLU(),
        nn.Flatten(),
        nn.Linear(64, 6),
    )
    net.train()
    net(torch.randn(64, 3, 4, 4))  # non-trivial running statistics
    return net.eval()


def test_batched_equals_one_at_a_time_and_fools_a_nonlinear_net():
    net = _small_net()
    x = torch.randn(10, 3, 4, 4)
    batched = deepfool(net, x)
    assert batched["fooled"].all()
    assert torch.equal(net(x + batched["perturbation"]).argmax(1), batched["fooled_label"])
    for i in range(len(x)):
        single = deepfool(net, x[i : i + 1])
        torch.testing.assert_close(single["perturbation"], batched["perturbation"][i : i + 1])
        assert single["iterations"].item() == batched["iterations"][i].item()


def test_deepfool_needs_eval_mode_and_two_classes():
    net = _small_net().train()
    with pytest.raises(ValueError, match="eval mode"):
        deepfool(net, torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="at least 2"):
        deepfool(_affine(), torch.randn(2, 3, 4, 4), num_candidates=1)


class _Context:
    """What the probe reads of a RunContext."""

    def __init__(self, model, images):
        self.model, self.images, self.run = model, images, "fake-run"
        self.spec = {"seed": 0}
        self.normalizer = Normalizer.fit(images, "channel")
        self.torch_device = torch.device("cpu")

    def checkpoints(self):
        return [{"step": 5}, {"step": 20}]

    def view(self, split):
        return self.images, np.zeros(len(self.images), int), np.arange(len(self.images))

    def model_at(self, step):
        assert step == 20  # "last"
        return self.model.train()  # the probe must switch to eval itself


def test_registered_probe_rows():
    assert "deepfool" in PROBES
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 3, 4, 4), dtype=np.uint8)
    context = _Context(_small_net(), images)
    rows = probe_function("deepfool")(
        context, {"n_images": 12, "batch_size": 5}, log=lambda m: None
    )
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {
        "deepfool_robustness",
        "deepfool_robustness_median",
        "deepfool_fooled_fraction",
        "deepfool_iterations_mean",
    }
    row = by_metric["deepfool_robustness"]
    assert row["step"] == 20 and row["split"] == "test" and row["deepfool_n_images"] == 12
    assert row["value"] > 0 and by_metric["deepfool_fooled_fraction"]["value"] == 1.0
    # the same images, one batch: the same number
    again = deepfool_probe(context, {"n_images": 12, "batch_size": 12}, log=lambda m: None)
    assert again[0]["value"] == pytest.approx(row["value"], rel=1e-6)
    with pytest.raises(ValueError, match="does not take"):
        deepfool_probe(context, {"images": 3})
