"""Which of a picture and its mirror image is the original: a weak learned cue, summed over many.

When a key may mirror single pieces, a solved picture and its mirror image are two equally valid
keys: edges cannot choose, and hand-made statistics of natural pictures are nearly mirror
symmetric. Pictures are not exactly so (visual chirality: Lin, Sun, Davis and Snavely, CVPR 2020):
a small network trained on public images to score each image above its own mirror image is right
on a little more than half of single pictures (about 54 % on held-out CIFAR-10 images from 4,000
training images). Under ONE key the mirror is one choice for all restored pictures, so the
scores summed over hundreds of them decide it. The cue is whatever the public images carry
(content, lighting, compression): it transfers to the targets when they come from the same source
as the public images, which is the coa+public threat model's assumption.

The score is antisymmetric by construction, ``score(x) = g(x) - g(mirror(x))``, so a picture and
its mirror image always get opposite scores and the vote has no bias towards either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

MAX_SIDE = 64  # pictures are centre-cropped to at most 64 x 64 pixels (a crop keeps pixel-level cues)
BATCH = 64

#: Pictures per forward pass of the vote (each at most MAX_SIDE x MAX_SIDE).
SCORE_CHUNK = 256


class MirrorScore(nn.Module):
    """``(M, C, H, W)`` pictures (any value range) -> ``(M,)`` scores; positive: "as given",
    negative: "mirrored". Each picture is standardised first (mean 0, deviation 1)."""

    def __init__(self, channels: int, width: int = 32):
        super().__init__()

        def conv(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]

        self.body = nn.Sequential(
            *conv(channels, width), *conv(width, width), nn.MaxPool2d(2),
            *conv(width, 2 * width), *conv(2 * width, 2 * width), nn.MaxPool2d(2),
            *conv(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _prepare(x)
        return (self.body(x) - self.body(x.flip(-1))).squeeze(1)


def _prepare(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = max(0, (h - MAX_SIDE) // 2), max(0, (w - MAX_SIDE) // 2)
    x = x[..., top:top + min(h, MAX_SIDE), left:left + min(w, MAX_SIDE)].float()
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / (x.std(dim=(1, 2, 3), keepdim=True) + 1e-6)


def fit_mirror_score(public: torch.Tensor, *, steps: int, seed: int = 0, width: int = 32) -> MirrorScore:
    """Train a :class:`MirrorScore` on public pictures ``(M, C, H, W)`` (originals only: the
    antisymmetric score makes each one's mirror image the negative example). ``steps`` batches
    of 64 with Adam at 1e-3, on the CPU, deterministic for a seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MirrorScore(public.shape[1], width)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.enable_grad():
        for _ in range(steps):
            batch = public[torch.randint(len(public), (min(BATCH, len(public)),), generator=generator)]
            loss = nn.functional.softplus(-model(batch)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


@dataclass(frozen=True)
class MirrorVote:
    """The summed evidence that pictures are shown as their originals (``z > 0``) or mirrored.

    ``z``: the mean score over its standard error (a z-score; |z| < 2 is weak evidence).
    ``agree``: the fraction of pictures whose own score points the same way as the sum."""

    z: float
    agree: float
    pictures: int

    @property
    def mirrored(self) -> bool:
        return self.z < 0


@torch.no_grad()
def mirror_vote(model: MirrorScore, pictures: torch.Tensor) -> MirrorVote:
    """Sum ``model``'s scores over ``pictures`` ``(M, C, H, W)``, scored :data:`SCORE_CHUNK` at a time."""
    scores = torch.cat([model(pictures[i:i + SCORE_CHUNK])
                        for i in range(0, len(pictures), SCORE_CHUNK)]).double()
    n = len(scores)
    spread = float(scores.std()) if n > 1 else 1.0
    z = float(scores.mean()) / (spread / math.sqrt(n) + 1e-12)
    agree = float(((scores > 0) == (z > 0)).double().mean())
    return MirrorVote(z=z, agree=agree, pictures=n)
