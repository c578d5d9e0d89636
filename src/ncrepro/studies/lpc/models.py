"""The eleven models of the LPC paper (Sbailò & Ghiringhelli, Table 3 and Appendix C):
which penultimate layer each adds to the backbone and which objective it trains with.

Every model shares the backbone (ResNet with SiLU), the bias-free classifier and the
optimizer; they differ only in

- `head`: None (the classifier reads the backbone output), "linear" (a linear
  penultimate layer of `width` units) or "activated" (a SiLU layer, NonlinPen);
- `width`: which of the dataset's penultimate widths (intermediate / wide / narrow);
- `loss`: "ce" (cross-entropy), "penalty" (cross-entropy + γ_e mean(z²) on the
  classifier's input z), "supcon" (cross-entropy + SupCon on the backbone output),
  "supcon_penalty" (both), "arcface", "cosface" (replacing cross-entropy).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    name: str
    head: str | None
    width: str | None
    loss: str

    @property
    def penalized(self) -> bool:
        return self.loss in ("penalty", "supcon_penalty")


MODELS: tuple[Model, ...] = (
    Model("LPC", "linear", "intermediate", "penalty"),
    Model("LPC-Wide", "linear", "wide", "penalty"),
    Model("LPC-Narrow", "linear", "narrow", "penalty"),
    Model("LPC-NoPen", None, None, "penalty"),
    Model("LPC-SCL", "linear", "intermediate", "supcon_penalty"),
    Model("LinPen", "linear", "intermediate", "ce"),
    Model("NonlinPen", "activated", "intermediate", "ce"),
    Model("SCL", None, None, "supcon"),
    Model("ArcFace", None, None, "arcface"),
    Model("CosFace", None, None, "cosface"),
    Model("NoPen", None, None, "ce"),
)
BY_NAME = {m.name: m for m in MODELS}
NAMES = tuple(BY_NAME)
WIDTHS = ("intermediate", "wide", "narrow")

# The paper's groups (Sec. III): the penalty on a linear penultimate layer, and the
# models Table 4 / Fig. 4 analyse for binarity (a linear penultimate layer).
LPC_LINEAR = ("LPC", "LPC-Wide", "LPC-Narrow", "LPC-SCL")
BINARITY_MODELS = (*LPC_LINEAR, "LinPen")
MARGIN_BASELINES = ("SCL", "ArcFace", "CosFace")
BASELINE = "NoPen"
