"""Architectures with one `penultimate(x)` definition each.

Every model has `penultimate(x)` (the last hidden layer: the input of the final
linear classifier), `classifier` (that nn.Linear: W = classifier.weight,
b = classifier.bias), `feature_dim`, and `forward(x) = classifier(penultimate(x))`.
`width` multiplies every channel/hidden count (the quick preset runs at 1/8 width).
Small-image adaptations versus torchvision are stated per architecture.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.densenet import DenseNet
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1


def _scaled(channels: int, width: float, minimum: int = 2) -> int:
    return max(minimum, int(round(channels * width)))


class PenultimateModel(nn.Module):
    """Base: subclasses define `penultimate` and set `classifier`."""

    classifier: nn.Linear

    @property
    def feature_dim(self) -> int:
        return self.classifier.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.penultimate(x))


class MLP(PenultimateModel):
    """`depth` hidden layers of `hidden` ReLU units on the flattened image; penultimate =
    the last hidden layer's activations (the paper's MLP 3×1024: depth 3, hidden 1024)."""

    def __init__(self, in_features, num_classes, depth=3, hidden=1024, width=1.0):
        super().__init__()
        size = _scaled(hidden, width)
        layers, previous = [nn.Flatten()], in_features
        for _ in range(depth):
            layers += [nn.Linear(previous, size), nn.ReLU(inplace=True)]
            previous = size
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(previous, num_classes)

    def penultimate(self, x):
        return self.body(x)


class ResNet(PenultimateModel):
    """torchvision's ResNet blocks with the small-image (CIFAR) stem: a 3×3 stride-1
    convolution and no max-pool. Penultimate = global-average-pooled last stage."""

    def __init__(self, block, layers, in_channels, num_classes, width=1.0):
        super().__init__()
        planes = [_scaled(p, width) for p in (64, 128, 256, 512)]
        self.inplanes = planes[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, planes[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes[0]),
            nn.ReLU(inplace=True),
        )
        stages = [
            self._make_layer(block, p, n, 1 if i == 0 else 2)
            for i, (p, n) in enumerate(zip(planes, layers, strict=True))
        ]
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def penultimate(self, x):
        return self.pool(self.stages(self.stem(x)))


VGG_CFGS = {
    "vgg11_bn": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13_bn": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16_bn": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ],
}


class VGG(PenultimateModel):
    """torchvision's VGG-BN configurations. Small-image changes: a max-pool is skipped
    once the feature map is 1×1, and the head average-pools to 1×1 (torchvision: 7×7,
    which only replicates a 1×1 map for 32×32 inputs) before torchvision's hidden
    layers (2 × 4096 · width, ReLU, dropout). Penultimate = the last hidden layer
    (or the pooled conv features with `hidden=[]`)."""

    def __init__(
        self, cfg, in_channels, image_size, num_classes, width=1.0, hidden=(4096, 4096), dropout=0.5
    ):
        super().__init__()
        layers, channels, size = [], in_channels, image_size
        for v in cfg:
            if v == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2, 2))
                    size //= 2
                continue
            out = _scaled(v, width)
            layers += [
                nn.Conv2d(channels, out, 3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head, previous = [], channels
        for h in hidden:
            size_h = _scaled(h, width)
            head += [nn.Linear(previous, size_h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            previous = size_h
        self.head = nn.Sequential(*head)
        self.classifier = nn.Linear(previous, num_classes)

    def penultimate(self, x):
        return self.head(self.features(x))


class SmallDenseNet(PenultimateModel):
    """torchvision's DenseNet with the small-image stem: 3×3 stride-1 convolution and no
    initial max-pool (torchvision: 7×7 stride 2 + max-pool). Growth rate and initial
    features scale with `width`. Penultimate = ReLU → global average pool of the
    final dense features, exactly torchvision's forward before its classifier."""

    def __init__(self, block_config, in_channels, num_classes, width=1.0):
        super().__init__()
        growth, init = _scaled(32, width), _scaled(64, width)
        net = DenseNet(
            growth_rate=growth,
            block_config=block_config,
            num_init_features=init,
            num_classes=num_classes,
        )
        net.features.conv0 = nn.Conv2d(in_channels, init, 3, 1, 1, bias=False)
        net.features.pool0 = nn.Identity()
        nn.init.kaiming_normal_(net.features.conv0.weight)
        self.features = net.features
        self.pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = net.classifier

    def penultimate(self, x):
        return self.pool(self.features(x))


def build_model(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float = 1.0,
    **arch_params,
) -> PenultimateModel:
    """The architecture `arch`, sized for `in_channels`×`image_size`² inputs."""
    if arch == "mlp":
        return MLP(in_channels * image_size**2, num_classes, width=width, **arch_params)
    if arch == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes, width, **arch_params)
    if arch == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, num_classes, width, **arch_params)
    if arch in VGG_CFGS:
        return VGG(VGG_CFGS[arch], in_channels, image_size, num_classes, width, **arch_params)
    if arch == "densenet121":
        return SmallDenseNet((6, 12, 24, 16), in_channels, num_classes, width, **arch_params)
    if arch == "densenet201":
        return SmallDenseNet((6, 12, 48, 32), in_channels, num_classes, width, **arch_params)
    raise ValueError(f"unknown architecture {arch!r}")


ARCHITECTURES = ["mlp", "resnet18", "resnet50", *VGG_CFGS, "densenet121", "densenet201"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
