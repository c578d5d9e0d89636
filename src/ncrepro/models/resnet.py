"""torchvision's ResNet with the small-image (CIFAR) stem and a channel-width multiplier."""

from __future__ import annotations

import torch
from torch import nn

from ncrepro.models.base import PenultimateModel, replace_relus, scaled
from ncrepro.models.torchvision_parts import BasicBlock, Bottleneck, make_layer

BLOCKS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


class SmallImageResNet(PenultimateModel):
    """torchvision's ResNet (same blocks, `_make_layer`, module names and init), changed
    for small images and width:

    - stem: 3×3 convolution, stride 1, padding 1, from `in_channels` (1 or 3), and
      **no max-pool** (torchvision: 7×7 stride 2 conv + 3×3 stride 2 max-pool, 3 channels);
      the four stages then run at full, 1/2, 1/4, 1/8 resolution (32² → 4², 8² → 1²);
    - stage widths 64/128/256/512 (× 4 for Bottleneck outputs) are multiplied by
      `width`; `groups` = 1 and `width_per_group` = 64, so a Bottleneck's inner width is
      its scaled `planes` and every width is valid;
    - the final linear layer is `classifier` (torchvision: `fc`);
    - `activation` "silu" swaps every ReLU for a SiLU (default "relu": torchvision's).

    **Backbone** (the penultimate features without a head) = global average pool of the
    last stage, flattened: b = 512·width (BasicBlock) or 2048·width (Bottleneck) —
    exactly torchvision's input to `fc`.
    """

    # torchvision's stage builder (copied); reads inplanes/dilation/groups/base_width/_norm_layer
    _make_layer = make_layer

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        *,
        in_channels: int,
        num_classes: int,
        width: float = 1.0,
        zero_init_residual: bool = False,
        activation: str = "relu",
    ):
        super().__init__()
        planes = [scaled(p, width) for p in (64, 128, 256, 512)]
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(
            in_channels, planes[0], kernel_size=3, stride=1, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(planes[3] * block.expansion, num_classes)

        # torchvision's initialisation (the Linear keeps PyTorch's default, as `fc` does).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)
        replace_relus(self, activation)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def resnet(
    arch: str,
    *,
    in_channels,
    image_size,
    num_classes,
    width,
    zero_init_residual=False,
    activation="relu",
):
    """`arch` in BLOCKS; `image_size` is not needed (stride-2 3×3 convs keep 1×1 at 1×1)."""
    del image_size
    block, layers = BLOCKS[arch]
    return SmallImageResNet(
        block,
        layers,
        in_channels=in_channels,
        num_classes=num_classes,
        width=width,
        zero_init_residual=zero_init_residual,
        activation=activation,
    )
