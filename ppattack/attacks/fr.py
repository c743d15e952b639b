"""fr: feature reconstruction, edge-based (Chang and Case 2020, arXiv 2004.13263).

The basic attack folds every component, ``d = min(v, 255 - v)``, which removes any
negative-positive transform, and outputs ``2 * d`` (clipped to 255). The edge-based solver
for ciphers with a small per-unit candidate set builds on this fold.
"""
from __future__ import annotations

import torch

from ppattack.attack import Attack
from ppattack.errors import ShapeError
from ppattack.threat import ThreatView


def fold(x: torch.Tensor) -> torch.Tensor:
    """``min(v, 255 - v)`` per component, doubled and clipped to 255 (uint8 in, uint8 out)."""
    folded = torch.minimum(x, 255 - x).to(torch.int16) * 2
    return folded.clamp_(max=255).to(torch.uint8)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels, repeated to three channels (removes colour shuffling)."""
    return x.float().mean(dim=1, keepdim=True).round().to(torch.uint8).expand_as(x).contiguous()


class FR(Attack):
    """Feature reconstruction: fold out negative-positive flips (Chang and Case 2020)."""

    name = "fr"
    paper = "Chang and Case: Privacy-preserving image classification using ... (arXiv 2004.13263, 2020)"
    threat_models = ("coa",)

    def __init__(self, *, grayscale: bool = False, **common):
        super().__init__(**common)
        self.grayscale = bool(grayscale)

    @property
    def params(self) -> dict:
        return {**super().params, "grayscale": self.grayscale}

    def reconstruct(self, view: ThreatView) -> torch.Tensor:
        if tuple(view.ciphertexts.shape[1:]) != tuple(view.plain_shape):
            raise ShapeError(f"fr needs ciphertexts of the plain shape {view.plain_shape}, got "
                             f"{tuple(view.ciphertexts.shape[1:])}")
        out = fold(view.ciphertexts)
        return to_gray(out) if self.grayscale else out
