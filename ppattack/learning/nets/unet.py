"""U-Net (Ronneberger, Fischer, Brox 2015), as used by the inverse transformation network.

Double 3x3 conv blocks (conv-BN-ReLU twice), ``depth`` 2x2 max-poolings with a doubling width
on the way down, transposed-conv upsampling and skip connections on the way up, and a 1x1
output conv with no activation (targets are images in [-1, 1]; the output is clipped only when
it is turned back into pixels, so no saturating sigmoid/tanh fights the loss).
"""
from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """(conv3x3 -> BN -> ReLU) x 2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net with widths ``width * 2**i`` for i = 0..depth (the original: width 64, depth 4).

    Args:
        in_channels / out_channels: image channels (3 for RGB).
        width: channels of the first level.
        depth: number of poolings; H and W must be multiples of ``2**depth``.

    Shape: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H, W)``.

    >>> UNet(3, 3, width=4, depth=2)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64, depth: int = 4):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0])] +
                                  [DoubleConv(widths[i], widths[i + 1]) for i in range(depth)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([DoubleConv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)
