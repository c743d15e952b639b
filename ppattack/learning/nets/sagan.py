"""The networks of SIA-GAN (Madono, Tanaka, Onishi, Ogawa 2021): a generator whose first stage
adapts to every block position, and a SAGAN-style discriminator (Zhang et al. 2019).

Generator: an adaptation stage maps every ``B x B`` block with its OWN spectrally-normalised
linear map (a ``B x B`` stride-``B`` conv without bias, ``C -> features * B * B`` channels) for
each block position (all initialised alike: the stage starts as one shared conv), then
BatchNorm + LeakyReLU(0.1) and PixelShuffle(B) back to a ``features x H x W`` map; a decoder
follows (SN conv3x3 -> 64, BN, LeakyReLU, three residual blocks, SN conv3x3 64 -> 64, SN
conv3x3 64 -> C, tanh). When one map per position is too large (224x224 with B = 16 would
need 617M weights), ``shared=True`` uses one SN conv for every position plus a learned
per-position embedding added to its output.

Discriminator: spectral norm throughout; three stages [conv3x3 + LReLU(0.1), conv4x4 stride 2
+ LReLU(0.1)] of widths w, 2w, 4w; self-attention; conv3x3 to 8w; self-attention; flattened
(the authors' code; SAGAN sums over positions instead) and a linear map to one logit (w = 128
in the paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn(module: nn.Module) -> nn.Module:
    return spectral_norm(module)


class PositionwiseSNLinear(nn.Module):
    """One spectrally-normalised linear map per block position, applied to the block vectors.

    Equivalent to a separate ``B x B`` stride-``B`` conv (no bias) for every block position,
    all initialised alike (the stage starts as one shared conv; see ``__init__``).
    The spectral norm of each map is estimated by one power iteration per training forward
    (as ``torch.nn.utils.spectral_norm`` does for a single weight), batched over positions.

    Shape: ``(N, C, H, W)`` -> ``(N, out_channels, H / B, W / B)``.
    """

    def __init__(self, channels: int, out_channels: int, block_size: int, grid: tuple[int, int]):
        super().__init__()
        self.block_size = block_size
        self.grid = grid
        positions, d_in = grid[0] * grid[1], channels * block_size * block_size
        # Every position starts from the SAME map (one draw at the default conv scale), so the
        # stage starts as a shared conv whose features mean the same at every position and the
        # decoder can read its input from the first step; training then lets the maps part where
        # a key differs per position. Independent draws per position start it as a per-position
        # random mixing that the shared decoder cannot read: the identity is then learned ~6x
        # slower even by regression, and adversarial training settles on textures first.
        bound = 1.0 / d_in**0.5  # the default conv initialisation's scale
        first = torch.empty(1, out_channels, d_in).uniform_(-bound, bound)
        self.weight = nn.Parameter(first.repeat(positions, 1, 1))
        self.register_buffer("u", F.normalize(torch.randn(1, out_channels), dim=1).repeat(positions, 1))
        self.register_buffer("v", F.normalize(torch.randn(1, d_in), dim=1).repeat(positions, 1))

    def normalised_weight(self) -> torch.Tensor:
        w = self.weight
        if self.training:
            with torch.no_grad():
                v = F.normalize(torch.einsum("pod,po->pd", w, self.u), dim=1, eps=1e-12)
                u = F.normalize(torch.einsum("pod,pd->po", w, v), dim=1, eps=1e-12)
                self.u.copy_(u)
                self.v.copy_(v)
        sigma = torch.einsum("po,pod,pd->p", self.u, w, self.v)
        return w / sigma.view(-1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block_size
        blocks = F.unfold(x, b, stride=b)  # (N, C*B*B, P), conv weight order
        out = torch.einsum("pod,ndp->nop", self.normalised_weight().to(blocks.dtype), blocks)
        return out.reshape(x.shape[0], -1, *self.grid)


class SharedSNAdaptation(nn.Module):
    """One SN ``B x B`` stride-``B`` conv for every position plus a learned position embedding."""

    def __init__(self, channels: int, out_channels: int, block_size: int, grid: tuple[int, int]):
        super().__init__()
        self.conv = sn(nn.Conv2d(channels, out_channels, block_size, stride=block_size, bias=False))
        self.embedding = nn.Parameter(torch.zeros(1, out_channels, *grid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.embedding


class ResidualBlock(nn.Module):
    """x + BN(SNconv(LReLU(BN(SNconv(x))))), then LeakyReLU(0.1)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            sn(nn.Conv2d(width, width, 3, padding=1)), nn.BatchNorm2d(width), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(width, width, 3, padding=1)), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.1)


class SIAGenerator(nn.Module):
    """SIA-GAN generator.

    Args:
        block_size: B (1 for pixel-wise ciphers).
        image_size: (H, W) of the images (the number of block positions follows).
        width: decoder width (64 in the paper).
        features: channels per pixel after the adaptation stage (16 in the paper).
        shared: one shared conv plus a position embedding instead of one conv per position.
        residual_blocks: number of residual blocks (3).

    Shape: ``(N, C, H, W)`` in [-1, 1] -> the same in [-1, 1].

    >>> SIAGenerator(4, (8, 8), width=8)(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(self, block_size: int, image_size: tuple[int, int], width: int = 64,
                 features: int = 16, shared: bool = False, residual_blocks: int = 3, channels: int = 3):
        super().__init__()
        b = block_size
        grid = (image_size[0] // b, image_size[1] // b)
        adapt = SharedSNAdaptation if shared else PositionwiseSNLinear
        self.adaptation = nn.Sequential(
            adapt(channels, features * b * b, b, grid), nn.BatchNorm2d(features * b * b),
            nn.LeakyReLU(0.1), nn.PixelShuffle(b))
        self.decoder = nn.Sequential(
            sn(nn.Conv2d(features, width, 3, padding=1)), nn.BatchNorm2d(width), nn.LeakyReLU(0.1),
            *[ResidualBlock(width) for _ in range(residual_blocks)],
            sn(nn.Conv2d(width, width, 3, padding=1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(width, channels, 3, padding=1)), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.adaptation(x))


def adaptation_parameters(block_size: int, image_size: tuple[int, int], features: int = 16,
                          channels: int = 3) -> int:
    """Weights of the per-position adaptation stage (to decide when to share it)."""
    positions = (image_size[0] // block_size) * (image_size[1] // block_size)
    return positions * channels * block_size**2 * features * block_size**2


#: The discriminator's heads: flatten the last map (position-aware) or sum it over positions.
HEADS = ("flatten", "sum")


class SelfAttention(nn.Module):
    """SAGAN self-attention: ``x + gamma * softmax(q k^T) v`` with SN 1x1 projections, gamma = 0."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = sn(nn.Conv2d(channels, inner, 1, bias=False))
        self.key = sn(nn.Conv2d(channels, inner, 1, bias=False))
        self.value = sn(nn.Conv2d(channels, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, c')
        k = self.key(x).flatten(2)  # (N, c', HW)
        attention = torch.softmax(torch.bmm(q, k), dim=-1)  # (N, HW, HW)
        out = torch.bmm(self.value(x).flatten(2), attention.transpose(1, 2)).view(n, c, h, w)
        return x + self.gamma * out


class SAGANDiscriminator(nn.Module):
    """SAGAN-style discriminator with widths ``width * (1, 2, 4, 8)`` (paper: 128).

    ``head="flatten"`` (the SIA-GAN authors' code): the last feature map, ``8w x H/8 x W/8``, is
    flattened into one linear logit, so the discriminator knows WHERE a feature is (a sky above,
    the ground below); ``head="sum"`` (SAGAN's): summed over positions first, nearly blind to
    where. ``image_size`` (H, W) sizes the flattened head.

    Shape: ``(N, C, H, W)`` -> ``(N,)`` logits (hinge loss).

    >>> SAGANDiscriminator(width=8)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    def __init__(self, width: int = 128, channels: int = 3, head: str = "flatten",
                 image_size: tuple[int, int] = (32, 32)):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"discriminator head must be one of {HEADS}, got {head!r}")
        layers: list[nn.Module] = []
        in_ch = channels
        for i in range(3):
            out_ch = width * 2**i
            layers += [sn(nn.Conv2d(in_ch, out_ch, 3, padding=1)), nn.LeakyReLU(0.1),
                       sn(nn.Conv2d(out_ch, out_ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.1)]
            in_ch = out_ch
        layers += [SelfAttention(in_ch), sn(nn.Conv2d(in_ch, width * 8, 3, padding=1)), nn.LeakyReLU(0.1),
                   SelfAttention(width * 8)]
        self.features = nn.Sequential(*layers)
        self.head = head
        cells = (image_size[0] // 8) * (image_size[1] // 8) if head == "flatten" else 1
        self.linear = sn(nn.Linear(width * 8 * cells, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        pooled = features.flatten(1) if self.head == "flatten" else features.sum(dim=(2, 3))
        return self.linear(pooled).squeeze(1)
