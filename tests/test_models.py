"""Models: the penultimate/classifier contract of every architecture, input sizes, width,
seeding, channels_last and state_dict round trips. Small widths keep this fast on CPU."""

import io
import types

import pytest
import torch
from torch import nn

from ncrepro.models import (
    ARCHITECTURES,
    PenultimateModel,
    arch_params_of,
    build_model,
    count_parameters,
)

WIDTH = 0.0625  # 1/16: 4 channels in the first ResNet/VGG stage, growth 2 in DenseNets
SMALL = {"mlp": {"hidden": 256}}  # × WIDTH = 16 hidden units
CONV_ARCHS = [a for a in ARCHITECTURES if a != "mlp"]
K = 7


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: a second intra-op thread only adds synchronisation, and on a
    busy machine it makes the tests 10-100x slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(arch, shape, width=WIDTH, seed=0, **params):
    torch.manual_seed(seed)
    return build_model(
        arch,
        num_classes=K,
        in_channels=shape[0],
        image_size=shape[1],
        width=width,
        **{**SMALL.get(arch, {}), **params},
    )


def check_contract(model, shape, n=4):
    """Shapes, forward == classifier(penultimate) exactly, gradients reach every parameter."""
    assert isinstance(model, PenultimateModel)
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == model.feature_dim
    x = torch.randn(n, *shape)
    model.eval()
    with torch.no_grad():
        h = model.penultimate(x)
        out = model(x)
    assert h.shape == (n, model.feature_dim)
    assert out.shape == (n, K)
    assert torch.equal(out, model.classifier(h))
    assert torch.isfinite(out).all()

    model.train()
    x.requires_grad_(True)
    nn.functional.cross_entropy(model(x), torch.arange(n) % K).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert x.grad is not None and x.grad.abs().sum() > 0  # input Jacobians (GC) are possible


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)], ids=["1x8x8", "3x32x32"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_contract(arch, shape):
    check_contract(make(arch, shape), shape)


@pytest.mark.parametrize(
    "arch,shape,width",
    [
        ("resnet50", (3, 96, 96), 0.0625),
        ("vgg11_bn", (1, 28, 28), WIDTH),
        ("densenet121", (1, 28, 28), WIDTH),
        ("mlp", (1, 28, 28), 1.0),
        ("densenet121", (1, 4, 4), WIDTH),  # the third transition pool is skipped
        ("vgg16_bn", (3, 96, 96), WIDTH),  # ends at 3×3, averaged to 1×1
    ],
)
def test_other_input_sizes(arch, shape, width):
    check_contract(make(arch, shape, width), shape, n=2)


def test_feature_dims():
    """d per architecture: the documented penultimate widths."""
    dims = {
        "mlp": 1024,
        "resnet18": 512,
        "resnet50": 2048,
        "vgg11_bn": 512,
        "vgg13_bn": 512,
        "vgg16_bn": 512,
        "vgg11": 512,
        "vgg13": 512,
        "vgg16": 512,
        "densenet121": 1024,
        "densenet201": 1920,
    }
    assert set(dims) == set(ARCHITECTURES)
    with torch.device("meta"):  # full width without allocating or initialising memory
        for arch, d in dims.items():
            model = build_model(arch, num_classes=10, in_channels=3, image_size=32)
            assert model.feature_dim == d, arch
        assert make("resnet50", (3, 32, 32), width=0.125).feature_dim == 256
        assert make("vgg11_bn", (3, 32, 32), hidden=[64, 32]).feature_dim == 2  # 32 × 1/16


def test_reference_parameter_counts():
    """Width 1 matches the usual CIFAR-10 versions of these networks."""
    expected = {"resnet18": 11_173_962, "resnet50": 23_520_842, "vgg11_bn": 9_231_114}
    with torch.device("meta"):
        for arch, n in expected.items():
            model = build_model(arch, num_classes=10, in_channels=3, image_size=32)
            assert count_parameters(model) == n, arch
        mlp = build_model("mlp", num_classes=10, in_channels=1, image_size=28, depth=3)
    assert count_parameters(mlp) == 784 * 1024 + 2 * 1024 * 1024 + 3 * 1024 + 10 * 1024 + 10


def test_width_reduces_parameters():
    for arch in ARCHITECTURES:
        small = count_parameters(make(arch, (3, 32, 32), width=0.0625))
        large = count_parameters(make(arch, (3, 32, 32), width=0.125))
        assert small < large, arch
    assert count_parameters(make("resnet18", (3, 32, 32), width=0.03)) > 0  # rounds to >= 1


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_seeding(arch):
    a, b = make(arch, (1, 8, 8), seed=1), make(arch, (1, 8, 8), seed=1)
    c = make(arch, (1, 8, 8), seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert list(sa) == list(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_state_dict_round_trip(arch):
    shape = (3, 32, 32)
    model = make(arch, shape, seed=0)
    model.train()
    model(torch.randn(4, *shape))  # move the BatchNorm running statistics off their init
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = make(arch, shape, seed=5)
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(3, *shape)
    model.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
        assert torch.equal(model.penultimate(x), clone.penultimate(x))


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", CONV_ARCHS)
def test_channels_last(arch, device):
    """Training, features and probes run image models channels_last on every device
    (ncrepro.train.steps.place_model): same outputs as the default layout, and backward
    works (4-channel convolutions at width 1/16 included)."""
    shape = (3, 32, 32)
    model = make(arch, shape).eval().to(device)
    x = torch.randn(4, *shape, device=device)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
        h = model.penultimate(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    assert torch.equal(out, model.classifier(h))
    model.train()
    model(x.contiguous(memory_format=torch.channels_last)).sum().backward()


def test_vgg_pools_and_hidden_head():
    def pools(size):
        model = make("vgg11_bn", (1, size, size))
        return sum(isinstance(m, nn.MaxPool2d) for m in model.features)

    assert [pools(s) for s in (8, 28, 32, 96)] == [3, 4, 5, 5]
    model = make("vgg13_bn", (3, 32, 32), hidden=[128, 64], dropout=0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pooled = torch.flatten(model.avgpool(model.features(x)), 1)
        assert torch.equal(model.penultimate(x), model.head(pooled))
    assert model.feature_dim == 4 and (model.penultimate(x) >= 0).all()  # last hidden ReLU


def test_mlp_penultimate_is_last_hidden_relu():
    model = make("mlp", (1, 8, 8), depth=2, hidden=64, width=1.0)
    linears = [m for m in model.body if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [64, 64] and linears[0].in_features == 64
    x = torch.randn(5, 1, 8, 8)
    expected = torch.relu(linears[1](torch.relu(linears[0](x.flatten(1)))))
    torch.testing.assert_close(model.penultimate(x), expected, rtol=0, atol=0)


def test_arch_params_and_errors():
    assert arch_params_of("mlp") == {"depth": 3, "hidden": 1024, "activation": "relu"}
    assert set(arch_params_of("densenet201")) == {
        "bn_size",
        "drop_rate",
        "memory_efficient",
        "activation",
    }
    assert all(arch_params_of(a)["activation"] == "relu" for a in ARCHITECTURES)
    with pytest.raises(ValueError, match="unknown architecture 'alexnet'"):
        build_model("alexnet", num_classes=2, in_channels=1, image_size=8)
    with pytest.raises(ValueError, match="resnet18 does not take hidden"):
        build_model("resnet18", num_classes=2, in_channels=1, image_size=8, hidden=[10])
    with pytest.raises(ValueError, match="width must be a positive number"):
        build_model("vgg11_bn", num_classes=2, in_channels=1, image_size=8, width=0)
    with pytest.raises(ValueError, match="depth >= 1"):
        build_model("mlp", num_classes=2, in_channels=1, image_size=8, depth=0)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        build_model("resnet18", num_classes=2, in_channels=1, image_size=8, activation="gelu")


# --------------------------------------- activation, embedding head, classifier options
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_silu_swaps_every_relu_and_nothing_else(arch):
    """SiLU instead of ReLU everywhere; the same parameters, names and initial values
    (activations have none, so the RNG draws are the same)."""
    relu, silu = make(arch, (1, 8, 8), seed=4), make(arch, (1, 8, 8), seed=4, activation="silu")
    assert any(isinstance(m, nn.ReLU) for m in relu.modules())
    assert not any(isinstance(m, nn.ReLU) for m in silu.modules())
    n_relu = sum(isinstance(m, nn.ReLU) for m in relu.modules())
    assert sum(isinstance(m, nn.SiLU) for m in silu.modules()) == n_relu
    _same_state(relu, silu)
    check_contract(silu, (1, 8, 8))
    x = torch.randn(3, 1, 8, 8)
    relu.eval(), silu.eval()
    with torch.no_grad():
        assert not torch.equal(relu.penultimate(x), silu.penultimate(x))
        if arch == "mlp":  # no BatchNorm: the features are the activation's outputs
            assert (relu.penultimate(x) >= 0).all() and (silu.penultimate(x) < 0).any()


def test_silu_mlp_and_densenet_closed_form():
    mlp = make("mlp", (1, 8, 8), depth=1, hidden=16, width=1.0, activation="silu")
    x = torch.randn(5, 1, 8, 8)
    linear = mlp.body[1]
    torch.testing.assert_close(mlp.penultimate(x), nn.functional.silu(linear(x.flatten(1))))
    dense = make("densenet121", (1, 8, 8), activation="silu").eval()
    with torch.no_grad():
        expected = nn.functional.silu(dense.features(x)).mean((2, 3))
        torch.testing.assert_close(dense.penultimate(x), expected, rtol=1e-5, atol=1e-6)


HEADS = {
    "linear": {"kind": "linear", "width": 5},
    "nonlinear": {"kind": "nonlinear", "width": 5, "hidden": 12, "activation": "silu"},
}


@pytest.mark.parametrize("kind", HEADS)
@pytest.mark.parametrize("arch", ["mlp", "resnet18", "vgg11_bn", "densenet121"])
def test_head_is_the_input_of_the_classifier(arch, kind):
    plain = make(arch, (1, 8, 8), seed=2)
    model = make(arch, (1, 8, 8), seed=2, head=HEADS[kind])
    # the backbone is built (and its RNG drawn) first: the same weights as without head
    state = model.state_dict()
    for key, value in plain.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(state[key], value), key
    check_contract(model, (1, 8, 8))
    assert model.feature_dim == 5 and model.backbone_dim == plain.feature_dim
    assert model.classifier.in_features == 5 and model.classifier.out_features == K
    assert list(model.state_dict())[-2:] == ["classifier.weight", "classifier.bias"]
    model.eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        h = model.backbone(x)
        first = model.embedding[0](h)
        z = first if kind == "linear" else model.embedding[2](nn.functional.silu(first))
        assert torch.equal(model.penultimate(x), z)
        out = model.outputs(x)
        assert torch.equal(out.backbone, h) and torch.equal(out.features, z)
        assert torch.equal(out.logits, model(x))
    if kind == "nonlinear":
        assert [type(m) for m in model.embedding] == [nn.Linear, nn.SiLU, nn.Linear]
        assert model.embedding[0].out_features == 12


def test_bias_free_classifier_keeps_the_architecture_init():
    """VGG initialises its classifier N(0, 0.01): without bias the weight is the same."""
    plain = make("vgg11_bn", (1, 8, 8), seed=3)
    model = make("vgg11_bn", (1, 8, 8), seed=3, classifier={"bias": False})
    assert model.classifier.bias is None and "classifier.bias" not in model.state_dict()
    assert torch.equal(model.classifier.weight, plain.classifier.weight)
    check_contract(model, (1, 8, 8))
    x = torch.randn(2, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model.penultimate(x) @ model.classifier.weight.T)
    # with a head: a fresh bias-free nn.Linear on the embedding
    headed = make("mlp", (1, 8, 8), head=HEADS["linear"], classifier={"bias": False})
    assert headed.classifier.bias is None and headed.classifier.in_features == 5
    # explicit defaults change nothing
    same = make("vgg11_bn", (1, 8, 8), seed=3, classifier={"bias": True}, head=None)
    _same_state(plain, same)


@pytest.mark.parametrize("head", [None, HEADS["nonlinear"]])
def test_encoder_without_classifier(head):
    model = make("resnet18", (1, 8, 8), head=head, classifier="none")
    assert model.classifier is None
    assert not any(k.startswith("classifier") for k in model.state_dict())
    d = 5 if head else 512 * WIDTH
    assert model.feature_dim == d
    x = torch.randn(2, 1, 8, 8)
    out = model.outputs(x)
    assert out.logits is None and out.features.shape == (2, d)
    assert torch.equal(out.features, model.penultimate(x))
    with pytest.raises(RuntimeError, match="no classifier"):
        model(x)


@pytest.mark.parametrize(
    "head,classifier,match",
    [
        ({"kind": "mlp", "width": 3}, None, "linear, nonlinear or activated"),
        ({"kind": "linear"}, None, "head width must be an integer >= 1"),
        ({"kind": "linear", "width": 0}, None, "head width"),
        ({"kind": "linear", "width": 3, "activation": "relu"}, None, "does not take activation"),
        ({"kind": "nonlinear", "width": 3, "activation": "tanh"}, None, "unknown activation"),
        (None, {"bias": "no"}, "classifier must be"),
        (None, "linear", "classifier must be"),
        (None, {"bias": False, "init": "zero"}, "classifier must be"),
    ],
)
def test_head_and_classifier_errors(head, classifier, match):
    with pytest.raises(ValueError, match=match):
        make("mlp", (1, 8, 8), head=head, classifier=classifier)


def test_build_for_spec_reads_head_and_classifier():
    from ncrepro.train import build_for_spec

    spec = {
        "arch": "mlp",
        "width": 1.0,
        "seed": 6,
        "arch_params": {"hidden": 16, "activation": "silu"},
        "head": HEADS["linear"],
        "classifier": {"bias": False},
    }
    model = build_for_spec(spec, K, (1, 8, 8))
    reference = make(
        "mlp",
        (1, 8, 8),
        width=1.0,
        seed=6,
        hidden=16,
        activation="silu",
        head=HEADS["linear"],
        classifier={"bias": False},
    )
    _same_state(model, reference)
    assert model.feature_dim == 5 and model.classifier.bias is None


# ------------------------------------------- the copied torchvision parts vs torchvision
def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("block_name", ["BasicBlock", "Bottleneck"])
def test_resnet_blocks_match_torchvision(block_name):
    """Same seed -> same names, initial weights and outputs as torchvision's blocks,
    through `_make_layer` (with a stride-2 downsample) in train and eval mode."""
    from torchvision.models import resnet as tv

    from ncrepro.models import torchvision_parts as parts

    def build(make, block):
        holder = types.SimpleNamespace(
            inplanes=16, dilation=1, groups=1, base_width=64, _norm_layer=nn.BatchNorm2d
        )
        torch.manual_seed(0)
        return make(holder, block, 8, 2, stride=2)

    ours = build(parts.make_layer, getattr(parts, block_name))
    theirs = build(tv.ResNet._make_layer, getattr(tv, block_name))
    _same_state(ours, theirs)
    x = torch.randn(4, 16, 8, 8)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        assert torch.equal(ours(x), theirs(x))


def test_densenet_matches_torchvision():
    from torchvision.models import densenet as tv

    from ncrepro.models import torchvision_parts as parts

    args = dict(growth_rate=4, block_config=(2, 3, 2, 2), num_init_features=8, num_classes=5)
    torch.manual_seed(0)
    ours = parts.DenseNet(**args)
    torch.manual_seed(0)
    theirs = tv.DenseNet(**args)
    _same_state(ours, theirs)
    x = torch.randn(2, 3, 64, 64)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        assert torch.equal(ours(x), theirs(x))
    # memory-efficient (checkpointed) layers give the same gradients
    torch.manual_seed(1)
    efficient = parts.DenseNet(**args, memory_efficient=True)
    efficient.load_state_dict(ours.state_dict())
    ours.train(), efficient.train()
    ours(x).sum().backward(), efficient(x).sum().backward()
    grads = zip(ours.parameters(), efficient.parameters(), strict=True)
    assert all(torch.allclose(a.grad, b.grad, atol=1e-6) for a, b in grads)


def test_vgg_configurations_match_torchvision():
    from torchvision.models.vgg import cfgs

    from ncrepro.models.torchvision_parts import VGG_CFGS

    assert VGG_CFGS == cfgs


def test_plain_vgg_is_torchvisions_without_batch_norm():
    """vgg11/13/16: Simonyan & Zisserman's networks (torchvision's vgg13, ...): the same
    convolutions as the _bn variants, no BatchNorm, torchvision's conv stack at width 1."""
    from torchvision.models import vgg13

    plain = make("vgg13", (3, 32, 32), width=1.0)
    with_bn = make("vgg13_bn", (3, 32, 32), width=1.0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    convs = [m.weight.shape for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [m.weight.shape for m in with_bn.modules() if isinstance(m, torch.nn.Conv2d)]
    reference = vgg13(weights=None).features
    assert [k for k in plain.features.state_dict()] == list(reference.state_dict())
    assert sum(p.numel() for p in plain.features.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, K)


def test_models_do_not_import_torchvision():
    """Every job imports the models; torchvision's import costs seconds per process."""
    import subprocess
    import sys

    code = "import sys, ncrepro.models, ncrepro.cli; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
