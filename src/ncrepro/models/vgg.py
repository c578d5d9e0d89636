"""VGG with and without batch norm: torchvision's layer configurations and a CIFAR-style
head. `vgg11`, `vgg13`, `vgg16` are the plain networks of Simonyan & Zisserman (2015)
(Conv → ReLU, no batch norm; torchvision's `vgg11` ... `vgg16`), the `_bn` ones add BN."""

from __future__ import annotations

import torch
from torch import nn

from ncrepro.models.base import PenultimateModel, replace_relus, scaled
from ncrepro.models.torchvision_parts import VGG_CFGS as TV_CFGS

CONFIGS = {
    "vgg11_bn": TV_CFGS["A"],
    "vgg13_bn": TV_CFGS["B"],
    "vgg16_bn": TV_CFGS["D"],
    "vgg11": TV_CFGS["A"],
    "vgg13": TV_CFGS["B"],
    "vgg16": TV_CFGS["D"],
}


class SmallImageVGG(PenultimateModel):
    """torchvision's VGG convolutional stack (same configurations, Conv3×3 → BN → ReLU, or
    Conv3×3 → ReLU with `batch_norm=False`, 2×2 max-pools, same init), changed for small
    images and width:

    - conv widths (64 … 512) are multiplied by `width`; the first conv reads `in_channels`;
    - a max-pool is **skipped** when the feature map is already 1×1 (8×8 inputs keep 3 of
      the 5 pools, 28×28 keeps 4; 32×32 keeps all 5 and ends at 1×1; 96×96 ends at 3×3);
    - the head is CIFAR-style instead of torchvision's 7×7 average pool → 4096 → 4096:
      adaptive average pool to 1×1 → flatten → `hidden` linear layers (default none;
      each Linear(·, h·width) → ReLU → Dropout(`dropout`), as torchvision's) → `classifier`;
    - `activation` "silu" swaps every ReLU for a SiLU (default "relu": torchvision's).

    **Backbone** (the penultimate features without a head) = the pooled conv features
    (b = 512·width) with the default `hidden=()`, or the output of the last hidden layer
    (b = hidden[-1]·width) when hidden layers are given (dropout is the identity in eval
    mode).
    """

    def __init__(
        self,
        config: list[int | str],
        *,
        in_channels: int,
        image_size: int,
        num_classes: int,
        width: float = 1.0,
        hidden: tuple[int, ...] | list[int] = (),
        dropout: float = 0.5,
        activation: str = "relu",
        batch_norm: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for v in config:
            if v == "M":
                if size >= 2:  # a 2×2 pool of a 1×1 map would be empty
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                    size //= 2
                continue
            out = scaled(int(v), width)
            layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        head: list[nn.Module] = []
        for h in hidden:
            size_h = scaled(int(h), width)
            head += [nn.Linear(channels, size_h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            channels = size_h
        self.head = nn.Sequential(*head)
        self.classifier = nn.Linear(channels, num_classes)

        # torchvision's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
        replace_relus(self, activation)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.head(x)


def vgg(
    arch: str,
    *,
    in_channels,
    image_size,
    num_classes,
    width,
    hidden=(),
    dropout=0.5,
    activation="relu",
):
    """`arch` in CONFIGS; the names ending in `_bn` have batch norm."""
    return SmallImageVGG(
        CONFIGS[arch],
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        width=width,
        hidden=hidden,
        dropout=dropout,
        activation=activation,
        batch_norm=arch.endswith("_bn"),
    )
