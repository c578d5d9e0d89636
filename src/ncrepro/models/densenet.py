"""torchvision's DenseNet-BC with a small-image stem and a width multiplier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ncrepro.models.base import PenultimateModel, activation_function, replace_relus, scaled
from ncrepro.models.torchvision_parts import DenseNet, _Transition

BLOCK_CONFIGS = {
    "densenet121": (6, 12, 24, 16),
    "densenet201": (6, 12, 48, 32),
}


class SmallImageDenseNet(PenultimateModel):
    """torchvision's DenseNet (its `features` and `classifier` modules, names and init),
    changed for small images and width:

    - stem: 3×3 convolution, stride 1, padding 1, from `in_channels`, and **no initial
      max-pool** (torchvision: 7×7 stride 2 conv + 3×3 stride 2 max-pool, 3 channels);
      the four dense blocks run at full, 1/2, 1/4, 1/8 resolution;
    - a transition's 2×2 average pool is replaced by the identity when the map is
      already 1×1 (not needed for 8², 28², 32², 96² inputs; kept for smaller ones);
    - growth rate 32 and initial features 64 are multiplied by `width`
      (`bn_size`, `drop_rate`, `memory_efficient` are passed to torchvision);
    - `activation` "silu" swaps every ReLU (and the final one) for a SiLU (default
      "relu": torchvision's).

    **Backbone** (the penultimate features without a head) = ReLU → global average pool
    → flatten of the final dense features (after `norm5`), exactly torchvision's input
    to `classifier`; d is the channel
    count after the last dense block (1024 for DenseNet121, 1920 for DenseNet201 at
    width 1).
    """

    def __init__(
        self,
        block_config: tuple[int, ...],
        *,
        in_channels: int,
        image_size: int,
        num_classes: int,
        width: float = 1.0,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        activation: str = "relu",
    ):
        super().__init__()
        init_features = scaled(64, width)
        net = DenseNet(
            growth_rate=scaled(32, width),
            block_config=block_config,
            num_init_features=init_features,
            bn_size=bn_size,
            drop_rate=drop_rate,
            num_classes=num_classes,
            memory_efficient=memory_efficient,
        )
        features = net.features
        features.conv0 = nn.Conv2d(
            in_channels, init_features, kernel_size=3, stride=1, padding=1, bias=False
        )
        nn.init.kaiming_normal_(features.conv0.weight)  # torchvision's init for convs
        features.pool0 = nn.Identity()
        size = image_size
        for module in features:
            if isinstance(module, _Transition):
                if size >= 2:
                    size //= 2
                else:
                    module.pool = nn.Identity()
        self.features = features
        self.classifier = net.classifier
        replace_relus(self, activation)
        self.final_activation = activation_function(activation)  # torchvision: F.relu

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_activation(self.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)


def densenet(
    arch: str,
    *,
    in_channels,
    image_size,
    num_classes,
    width,
    bn_size=4,
    drop_rate=0.0,
    memory_efficient=False,
    activation="relu",
):
    """`arch` in BLOCK_CONFIGS."""
    return SmallImageDenseNet(
        BLOCK_CONFIGS[arch],
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        width=width,
        bn_size=bn_size,
        drop_rate=drop_rate,
        memory_efficient=memory_efficient,
        activation=activation,
    )
