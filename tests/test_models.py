"""Models: one penultimate() per architecture, shapes for every input size, width, seeds."""

import pytest
import torch

from ncrepro.models import ARCHITECTURES, build_model, count_parameters

SMALL = {"mlp": {"hidden": 64}}


def make(arch, shape, width=0.0625, seed=0):
    torch.manual_seed(seed)
    return build_model(
        arch,
        num_classes=7,
        in_channels=shape[0],
        image_size=shape[1],
        width=width,
        **SMALL.get(arch, {}),
    )


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_shapes_and_penultimate(arch, shape):
    model = make(arch, shape).eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        h = model.penultimate(x)
        out = model(x)
    assert out.shape == (3, 7)
    assert h.shape == (3, model.feature_dim)
    assert torch.equal(out, model.classifier(h))


@pytest.mark.parametrize(
    "arch,shape",
    [("resnet50", (3, 96, 96)), ("vgg11_bn", (1, 28, 28)), ("densenet121", (1, 28, 28))],
)
def test_other_input_sizes(arch, shape):
    model = make(arch, shape, width=0.03)
    model.train()
    loss = model(torch.randn(2, *shape)).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_width_and_seed():
    small, large = make("resnet18", (3, 32, 32), 0.125), make("resnet18", (3, 32, 32), 0.25)
    assert count_parameters(small) < count_parameters(large) / 3
    a, b = make("vgg11_bn", (3, 32, 32), seed=1), make("vgg11_bn", (3, 32, 32), seed=1)
    c = make("vgg11_bn", (3, 32, 32), seed=2)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_state_dict_round_trip_and_channels_last():
    model = make("densenet121", (3, 32, 32)).eval()
    clone = make("densenet121", (3, 32, 32), seed=5).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
        cl = model.to(memory_format=torch.channels_last)
        out = cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, clone(x), atol=1e-5)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture 'alexnet'"):
        build_model("alexnet", num_classes=2, in_channels=1, image_size=8)
