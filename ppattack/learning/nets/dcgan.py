"""The networks of the ``gan`` attack (Sirichotedumrong and Kiya 2020): a block-wise generator
and a DCGAN discriminator (Radford, Metz, Chintala 2016).

The generator sees one ``B x B`` block at a time: a ``B x B`` stride-``B`` conv turns each block
into a vector, two 1x1 convs transform it (a per-block MLP shared by all block positions, which
can learn the inverse of a key used for every block), PixelShuffle puts ``B x B`` pixels of
``shuffle_channels`` features back, and a 1x1 conv with tanh gives RGB in [-1, 1]. With ``B = 1``
it is a per-pixel MLP (the variant for pixel-based encryption).
"""
from __future__ import annotations

import torch
from torch import nn


class BlockwiseGenerator(nn.Module):
    """Block-wise generator.

    Args:
        block_size: B (1 for pixel-wise ciphers).
        hidden: width of the per-block MLP (default ``max(3 * B * B, 64)``).
        shuffle_channels: features per pixel after PixelShuffle (32).

    Shape: ``(N, C, H, W)`` in [-1, 1] -> ``(N, C, H, W)`` in [-1, 1]; H, W multiples of B.

    >>> BlockwiseGenerator(4)(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(self, block_size: int, hidden: int | None = None, shuffle_channels: int = 32,
                 channels: int = 3):
        super().__init__()
        b = block_size
        hidden = hidden or max(channels * b * b, 64)
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, b, stride=b), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, shuffle_channels * b * b, 1), nn.BatchNorm2d(shuffle_channels * b * b),
            nn.ReLU(inplace=True),
            nn.PixelShuffle(b),
            nn.Conv2d(shuffle_channels, channels, 1), nn.Tanh())
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: 4x4 stride-2 convs (widths ``width * 2**i``, capped at 8x), BN after
    the first, LeakyReLU(0.2), down to a small map, then one conv to a logit per image.

    Shape: ``(N, C, H, W)`` -> ``(N,)`` logits (use with ``BCEWithLogits``).

    >>> DCGANDiscriminator(width=8)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    def __init__(self, width: int = 64, channels: int = 3, image_size: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        size, in_ch, out_ch, first = image_size, channels, width, True
        while size > 4 and size % 2 == 0:
            layers.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=first))
            if not first:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            size, in_ch, out_ch, first = size // 2, out_ch, min(out_ch * 2, width * 8), False
        layers.append(nn.Conv2d(in_ch, 1, size, bias=False))  # one logit from the remaining map
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1).mean(1)


def init_dcgan(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
