"""Smooth synthetic images for known-answer tests of the statistical attacks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_images(count: int, size: int, seed: int = 0, cells: int = 5) -> torch.Tensor:
    """uint8 ``(count, 3, size, size)`` random low-frequency colour fields (bicubic from a coarse
    grid), with channel-specific levels as in photographs (red brightest, blue darkest)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, cells, cells, generator=generator)
    coarse = 0.6 * coarse + 0.4 * coarse.mean(1, keepdim=True)  # correlated channels
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    levels = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    return (fine.clamp(0, 1) * levels * 230 + 12).round().to(torch.uint8)
