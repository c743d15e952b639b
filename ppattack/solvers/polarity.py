"""Whether restored pictures are negatives: a linear discriminant of a picture against its
negative (``255 - x``), fitted on public images and summed over many pictures.

An unpaired generator keeps the sign of the correlation it starts with: from some seeds it
restores every picture as its negative, which is as readable to a person (and as damaging to
the cipher) as the picture itself, yet scores below zero. Natural photographs and their
negatives differ in ways a linear prior sees: where light and colour sit (a sky above, shadows
below), and the skew of their histograms (few bright highlights, many mid-dark tones). On
CIFAR-10, fitted on 1000 public pictures, it prefers the picture over its negative for 83 % of
single held-out pictures, so the vote of a hundred restored pictures is decisive.

Every feature is odd under negation (the layout and mean move to ``1 - v``, the skew changes
sign), so the prior compares a picture with its negative, never with another picture.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Side of the colour layout the features read (pictures pooled to LAYOUT_SIDE x LAYOUT_SIDE).
LAYOUT_SIDE = 4
#: Public pictures the prior is fitted on at most (each with its negative: twice as many).
MAX_PUBLIC = 1000
#: Ridge added to the standardised features' covariance (their variances are 1).
RIDGE = 0.1


def polarity_features(pictures: torch.Tensor) -> torch.Tensor:
    """Pictures ``(M, C, H, W)`` with values in [0, 255] -> ``(M, C * (LAYOUT_SIDE^2 + 2))``
    float32: each channel's values in [0, 1] average-pooled to LAYOUT_SIDE x LAYOUT_SIDE, its
    mean, and its skewness."""
    x = pictures.float() / 255.0
    layout = F.adaptive_avg_pool2d(x, LAYOUT_SIDE).flatten(1)
    mean = x.mean(dim=(2, 3))
    centred = x - mean[..., None, None]
    spread = centred.pow(2).mean(dim=(2, 3))
    skew = centred.pow(3).mean(dim=(2, 3)) / (spread.pow(1.5) + 1e-6)
    return torch.cat([layout, mean, skew], 1)


@dataclass(frozen=True)
class PolarityPrior:
    """A linear score of :func:`polarity_features`: higher for a picture than for its negative
    (on most natural pictures)."""

    centre: torch.Tensor  # (F,) feature means over the public pictures and their negatives
    scale: torch.Tensor  # (F,) their deviations
    weights: torch.Tensor  # (F,) Fisher direction, picture minus negative

    def scores(self, pictures: torch.Tensor) -> torch.Tensor:
        """``(M,)`` float32 scores of pictures ``(M, C, H, W)`` in [0, 255]."""
        return ((polarity_features(pictures) - self.centre) / self.scale) @ self.weights


def fit_polarity_prior(public: torch.Tensor) -> PolarityPrior:
    """Fit the prior on public pictures ``(N, C, H, W)`` (uint8, or floats in [0, 255]); at
    most MAX_PUBLIC of them, spread evenly over the set."""
    if len(public) == 0:
        raise ValueError("the polarity prior needs at least one public picture")
    pick = torch.linspace(0, len(public) - 1, min(len(public), MAX_PUBLIC)).round().long()
    chosen = public[pick].float()
    upright, negative = polarity_features(chosen), polarity_features(255.0 - chosen)
    both = torch.cat([upright, negative])
    centre, scale = both.mean(0), both.std(0) + 1e-6
    z_upright, z_negative = (upright - centre) / scale, (negative - centre) / scale
    difference = z_upright.mean(0) - z_negative.mean(0)
    within = torch.cat([z_upright - z_upright.mean(0), z_negative - z_negative.mean(0)])
    covariance = within.T @ within / max(len(within) - 1, 1)
    weights = torch.linalg.solve(covariance + RIDGE * torch.eye(len(centre)), difference)
    return PolarityPrior(centre, scale, weights)


@dataclass(frozen=True)
class PolarityVote:
    """The vote of a set of pictures: are they negatives?

    ``negative``: the summed score of their negatives exceeds theirs; ``margin``: that excess
    per picture (score units, negative when the pictures win); ``agreeing``: the fraction of
    pictures whose own comparison agrees with the verdict."""

    negative: bool
    margin: float
    agreeing: float
    pictures: int


def polarity_vote(prior: PolarityPrior, pictures: torch.Tensor, chunk: int = 4096) -> PolarityVote:
    """Whether ``pictures`` ``(M, C, H, W)`` in [0, 255] are, as a set, negatives of natural
    pictures (one verdict for the whole set: one generator made them all)."""
    differences = []
    for start in range(0, len(pictures), chunk):
        part = pictures[start:start + chunk].float().cpu()
        differences.append(prior.scores(255.0 - part) - prior.scores(part))
    excess = torch.cat(differences) if differences else torch.zeros(0)
    negative = bool(len(excess)) and float(excess.sum()) > 0
    agreeing = float(((excess > 0) == negative).float().mean()) if len(excess) else 0.0
    margin = float(excess.mean()) if len(excess) else 0.0
    return PolarityVote(negative, margin, agreeing, len(excess))
