"""The contract every architecture follows, the optional embedding head and classifier
options, and the width and activation helpers the architectures share."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Outputs(NamedTuple):
    """What one forward pass gives a training objective."""

    backbone: torch.Tensor  # the architecture's own features (N×backbone_dim)
    features: torch.Tensor  # the classifier's input = penultimate(x) (N×feature_dim)
    logits: torch.Tensor | None  # N×K, or None for a model without classifier


class PenultimateModel(nn.Module):
    """A classifier split into a backbone, an optional embedding head and one final
    `nn.Linear`.

    Subclasses define `backbone(x) -> N×b` once and set `self.classifier`.
    `penultimate(x)` = `embedding(backbone(x))`, or `backbone(x)` without a head: the
    input of the classifier, always. `forward(x)` is *defined* as
    `classifier(penultimate(x))`, so the logits the network trains on and the features
    the metrics read can never disagree. W = `classifier.weight` (K×d), b =
    `classifier.bias` (K, or None for a bias-free classifier). `set_head` adds a head
    or changes the classifier (see there); `classifier` is None for an encoder.
    """

    classifier: nn.Linear | None

    def __init__(self):
        super().__init__()
        self.embedding: nn.Module | None = None
        self._backbone_dim: int | None = None  # set by set_head
        self._feature_dim: int | None = None

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return h if self.embedding is None else self.embedding(h)

    def outputs(self, x: torch.Tensor) -> Outputs:
        """Backbone output, classifier input and logits of one forward pass."""
        h = self.backbone(x)
        z = h if self.embedding is None else self.embedding(h)
        return Outputs(h, z, None if self.classifier is None else self.classifier(z))

    @property
    def feature_dim(self) -> int:
        """d, the width of the penultimate features (= `classifier.in_features`)."""
        if self.classifier is None:
            return int(self._feature_dim)
        return int(self.classifier.in_features)

    @property
    def backbone_dim(self) -> int:
        """The width of `backbone(x)` (= feature_dim without a head)."""
        return self.feature_dim if self._backbone_dim is None else int(self._backbone_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("this model has no classifier (an encoder): use penultimate(x)")
        return self.classifier(self.penultimate(x))

    def set_head(self, head: dict | None = None, classifier: dict | str | None = None) -> None:
        """Insert an embedding head before the classifier and/or change the classifier.

        head: None (no head) or {"kind": "linear" | "nonlinear" | "activated", "width": w, ...}:
          linear: z = Linear(b, w)(h); nonlinear: z = Linear(m, w)(act(Linear(b, m)(h)))
          with "hidden": m (default b) and "activation": "relu" (default) | "silu"
          (SimCLR's linear / non-linear projection heads); activated: z = act(Linear(b,
          w)(h)) (a non-linear penultimate layer, LPC's NonlinPen). `width` is a unit count, not
          scaled by the model width.
        classifier: None or {"bias": True} (unchanged), {"bias": False} (no bias), or
          "none" (no classifier: an encoder whose output is the embedding).

        Without a head the classifier keeps the architecture's initial weight (and loses
        its bias with bias False), so these options draw nothing from the RNG; after a
        head it is a new nn.Linear(w, K) with PyTorch's default initialisation, as are
        the head's layers. Call once, right after construction (initialisation order).
        """
        if classifier is None:
            classifier = {}
        valid = classifier == "none" or (
            isinstance(classifier, dict)
            and set(classifier) <= {"bias"}
            and isinstance(classifier.get("bias", True), bool)
        )
        if not valid:
            raise ValueError(f'classifier must be "none" or {{"bias": bool}}, got {classifier!r}')
        keep = classifier != "none"
        bias = keep and classifier.get("bias", True)
        num_classes, d = self.classifier.out_features, self.classifier.in_features
        if head is not None:
            self._backbone_dim = d
            del self.classifier  # re-registered below, so the state_dict lists it last
            self.embedding = make_head(head, d)
            d = int(head["width"])
            self.classifier = nn.Linear(d, num_classes, bias=bias) if keep else None
        elif not keep:
            self.classifier = None
        elif not bias:
            self.classifier.register_parameter("bias", None)  # as nn.Linear(bias=False) does
        self._feature_dim = d


def make_head(config: dict, in_features: int) -> nn.Sequential:
    """The embedding head of `config` (see PenultimateModel.set_head) on b inputs."""
    kind = config.get("kind")
    allowed = {
        "linear": {"kind", "width"},
        "nonlinear": {"kind", "width", "hidden", "activation"},
        "activated": {"kind", "width", "activation"},
    }
    if kind not in allowed:
        raise ValueError(f"head kind must be linear, nonlinear or activated, got {kind!r}")
    unknown = sorted(set(config) - allowed[kind])
    if unknown:
        raise ValueError(f"a {kind} head does not take {', '.join(unknown)}")
    width = _positive_int(config.get("width"), "head width")
    if kind == "linear":
        return nn.Sequential(nn.Linear(in_features, width))
    if kind == "activated":
        act = activation_module(config.get("activation", "relu"), inplace=False)
        return nn.Sequential(nn.Linear(in_features, width), act)
    hidden = _positive_int(config.get("hidden", in_features), "head hidden")
    act = activation_module(config.get("activation", "relu"), inplace=False)
    return nn.Sequential(nn.Linear(in_features, hidden), act, nn.Linear(hidden, width))


def _positive_int(value, what: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


# ------------------------------------------------------------------------ activations
ACTIVATIONS = ("relu", "silu")


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return name


def activation_module(name: str, *, inplace: bool = True) -> nn.Module:
    """nn.ReLU (in place, as torchvision's) or nn.SiLU (never in place: its backward
    needs its input)."""
    if check_activation(name) == "relu":
        return nn.ReLU(inplace=inplace)
    return nn.SiLU()


def activation_function(name: str):
    return {"relu": F.relu, "silu": F.silu}[check_activation(name)]


def replace_relus(module: nn.Module, name: str) -> None:
    """Swap every nn.ReLU inside `module` for the `name` activation. Activations have
    no parameters, so names, the state_dict and the initialisation are unchanged;
    "relu" leaves the module as built."""
    if check_activation(name) == "relu":
        return
    relus = [
        (parent, child_name)
        for parent in module.modules()
        for child_name, child in parent.named_children()
        if isinstance(child, nn.ReLU)
    ]
    for parent, child_name in relus:
        setattr(parent, child_name, activation_module(name))


# ----------------------------------------------------------------------------- widths
def scaled(channels: int, width: float) -> int:
    """`channels × width`, rounded half up, at least 1."""
    return max(1, math.floor(channels * width + 0.5))


def check_width(width: float) -> float:
    if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    return float(width)


def outputs_of(model: nn.Module, x: torch.Tensor) -> Outputs:
    """`model.outputs(x)`, or the same from any module with `penultimate` and
    `classifier` (test doubles, external models): backbone = features there."""
    if isinstance(model, PenultimateModel):
        return model.outputs(x)
    z = model.penultimate(x)
    return Outputs(z, z, model.classifier(z))
