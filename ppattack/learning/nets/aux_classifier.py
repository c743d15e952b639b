"""The classifier that the unpaired GAN attacks can train jointly on their generated images.

SIA-GAN's authors (Madono et al. 2021, their public training code) add to the generator's loss
the cross-entropy of a classifier trained at the same time on the GENERATED images with the
labels of the encrypted images they came from: an output must keep its input's class, which
ties it to its input's content. Their classifier is a PyramidNet-110; this one is a small CNN
whose width is a parameter, so that the term fits a CPU budget.
"""
from __future__ import annotations

import torch
from torch import nn


class AuxClassifier(nn.Module):
    """Small CNN: three stages [conv3x3, BN, LeakyReLU(0.1)] of widths w, 2w, 4w (the last two
    with stride 2), global average pooling, a linear layer to ``classes`` logits.

    Shape: ``(N, C, H, W)`` in [-1, 1] -> ``(N, classes)`` logits.

    >>> AuxClassifier(10, width=4)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, classes: int, width: int = 32, channels: int = 3):
        super().__init__()
        if classes < 2 or width < 1:
            raise ValueError(f"AuxClassifier needs >= 2 classes and width >= 1, got {classes}, {width}")
        layers: list[nn.Module] = []
        in_ch = channels
        for i, stride in enumerate((1, 2, 2)):
            out_ch = width * 2**i
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.1)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
