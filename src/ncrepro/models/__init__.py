"""Architectures, each with ONE definition of its penultimate features.

Every model built here is a `PenultimateModel`:

- `backbone(x)` -> N×b, the architecture's own features (below);
- `penultimate(x)` -> N×d, the input of the final linear layer: `backbone(x)`, or the
  output of an optional embedding head on it (`head`, see `PenultimateModel.set_head`);
- `classifier`, that final `nn.Linear` (W = `classifier.weight`, b = `classifier.bias`,
  None with `classifier={"bias": False}`), or None with `classifier="none"` (encoder);
- `feature_dim` = d, `backbone_dim` = b; `forward(x)` = `classifier(penultimate(x))`, by
  definition; `outputs(x)` gives backbone output, features and logits of one pass.

Backbone features per architecture (b at width 1) and the small-image changes
versus torchvision (details in each class's docstring):

- mlp: activation output of the last of `depth` hidden layers (b = hidden); input flattened.
- resnet18, resnet50: global-average-pooled last stage (b = 512, 2048);
  3×3 stride-1 stem, no max-pool.
- vgg11_bn, vgg13_bn, vgg16_bn (and vgg11, vgg13, vgg16 without batch norm): the conv
  features average-pooled to 1×1 (b = 512), or
  the last optional `hidden` layer; max-pools skipped at 1×1, no 4096-wide MLP head.
- densenet121, densenet201: ReLU → global average pool of the final dense features
  (b = 1024, 1920); 3×3 stride-1 stem, no initial pool, transition pools skipped at 1×1.

Every architecture takes `activation` "relu" (default, torchvision's) or "silu".
`width` multiplies every channel / hidden count (rounded, at least 1); the CPU quick
preset uses 1/8. Every architecture accepts 1 or 3 input channels and square images
from 8×8 (scikit-learn digits) to 96×96 (STL-10). Initialisation follows torchvision and
draws only from torch's global RNG, so `torch.manual_seed(s)` before `build_model`
fixes the parameters. Pretrained weights are never loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ncrepro.models.base import Outputs, PenultimateModel, check_width, scaled
from ncrepro.models.densenet import BLOCK_CONFIGS, SmallImageDenseNet, densenet
from ncrepro.models.mlp import MLP
from ncrepro.models.resnet import BLOCKS, SmallImageResNet, resnet
from ncrepro.models.vgg import CONFIGS, SmallImageVGG, vgg

__all__ = [
    "ARCHITECTURES",
    "MLP",
    "Outputs",
    "PenultimateModel",
    "SmallImageDenseNet",
    "SmallImageResNet",
    "SmallImageVGG",
    "arch_params_of",
    "build_model",
    "count_parameters",
    "scaled",
]


def _mlp(
    arch, *, in_channels, image_size, num_classes, width, depth=3, hidden=1024, activation="relu"
):
    return MLP(
        in_channels * image_size * image_size,
        num_classes,
        depth=depth,
        hidden=hidden,
        width=width,
        activation=activation,
    )


_BUILDERS: dict[str, Callable[..., PenultimateModel]] = {
    "mlp": _mlp,
    **dict.fromkeys(BLOCKS, resnet),
    **dict.fromkeys(CONFIGS, vgg),
    **dict.fromkeys(BLOCK_CONFIGS, densenet),
}

ARCHITECTURES: tuple[str, ...] = tuple(_BUILDERS)
_COMMON = ("arch", "in_channels", "image_size", "num_classes", "width")


def arch_params_of(arch: str) -> dict[str, object]:
    """The `arch_params` an architecture accepts, with their defaults."""
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    parameters = inspect.signature(_BUILDERS[arch]).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in _COMMON}


def build_model(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float = 1.0,
    head: dict | None = None,
    classifier: dict | str | None = None,
    **arch_params,
) -> PenultimateModel:
    """A freshly initialised `arch` for `in_channels`×`image_size`×`image_size` inputs.

    `width` multiplies channel / hidden counts; `arch_params` are the architecture's own
    options (see `arch_params_of`): all: activation ("relu" | "silu"); mlp: depth,
    hidden; resnet*: zero_init_residual; vgg*: hidden (list of hidden-layer widths before
    the classifier), dropout; densenet*: bn_size, drop_rate, memory_efficient.
    `head` and `classifier` (None: none / unchanged) are `PenultimateModel.set_head`'s.
    """
    allowed = arch_params_of(arch)
    unknown = sorted(set(arch_params) - set(allowed))
    if unknown:
        raise ValueError(
            f"{arch} does not take {', '.join(unknown)}; its parameters are: "
            f"{', '.join(allowed) or 'none'}"
        )
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if int(image_size) < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    model = _BUILDERS[arch](
        arch,
        in_channels=int(in_channels),
        image_size=int(image_size),
        num_classes=int(num_classes),
        width=check_width(width),
        **arch_params,
    )
    if head is not None or classifier is not None:
        model.set_head(head, classifier)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of `model`; buffers (BN statistics) excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
