"""Pure tensor operations shared by the ciphers: index maps and batched gathers.

Conventions (docs/ciphers.md, "Conventions"): images are uint8 ``(N, C, H, W)``; blocks are ``B x B`` tiles
scanned row-major; "output[i] = input[perm[i]]" everywhere. A key is compiled once into an
index map (a LongTensor) and masks, and applied with one gather per batch (plus an XOR for
negative-positive steps), never with Python loops.

Speed: ``torch.gather`` with an index broadcast over the batch (``expand``, no copy) is the
fastest exact byte gather torch offers on CPU (3-7x ``index_select`` along dim 1); what is
left is the per-element cost of a byte-granular gather, roughly 1 ns per byte on one CPU core.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: The six colour-component permutations of pe and etc; permutation number q maps output
#: channel c to input channel ``COLOR_PERMS[q][c]``.
COLOR_PERMS = np.array([(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)], dtype=np.int64)


def invert_permutation(perm: np.ndarray) -> np.ndarray:
    """The permutation ``inv`` with ``inv[perm[i]] = i`` (along the last axis)."""
    inverse = np.empty_like(perm)
    np.put_along_axis(inverse, perm, np.broadcast_to(np.arange(perm.shape[-1]), perm.shape), -1)
    return inverse


def block_pixel_index(height: int, width: int, block_size: int, block_perm: np.ndarray) -> np.ndarray:
    """Pixel index map of block scrambling: output pixel p comes from input pixel ``map[p]``.

    Output block i = input block ``block_perm[i]``; pixels keep their offset inside the block.
    Returns int64 of shape ``(height * width,)`` over row-major pixel positions.
    """
    rows, cols = np.divmod(np.arange(height * width), width)
    blocks_per_row = width // block_size
    out_block = (rows // block_size) * blocks_per_row + cols // block_size
    src_block = block_perm[out_block]
    src_rows = (src_block // blocks_per_row) * block_size + rows % block_size
    src_cols = (src_block % blocks_per_row) * block_size + cols % block_size
    return src_rows * width + src_cols


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Index map of applying ``inner`` then ``outer``: ``out[p] = x[inner[outer[p]]]``."""
    return inner[outer]


def gather_pixels(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Move whole pixels: ``out[n, c, p] = x[n, c, index[p]]`` over flattened positions.

    Shape: x ``(N, C, H, W)``, index ``(H*W,)`` long on x's device; returns ``(N, C, H, W)``.
    """
    n, c, h, w = x.shape
    return torch.gather(x.reshape(n * c, h * w), 1, index.expand(n * c, h * w)).view(n, c, h, w)


def gather_components(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Move single components: ``out[n, q] = x[n, index[q]]`` over flattened ``C*H*W``
    (``index`` ``(L,)``, or ``(N, L)`` for one map per image)."""
    n = x.shape[0]
    return torch.gather(x.reshape(n, -1), 1, index.expand(n, -1)).view(x.shape)


def block_components(channels: int, height: int, width: int, block_size: int) -> np.ndarray:
    """Flat component index (``c * H * W + row * W + col``) of every block-vector entry.

    Returns int64 ``(N_b, B * B * C)``: row i is block i (row-major blocks), entry k is the
    block vector's k-th component in (row, col, channel) order, channel fastest.

    >>> block_components(1, 2, 4, 2)
    array([[0, 1, 4, 5],
           [2, 3, 6, 7]])
    """
    b = block_size
    blocks_per_row = width // b
    block = np.arange((height // b) * blocks_per_row)[:, None]
    k = np.arange(b * b * channels)[None, :]
    rows = (block // blocks_per_row) * b + k // (b * channels)
    cols = (block % blocks_per_row) * b + (k // channels) % b
    return (k % channels) * (height * width) + rows * width + cols


def dihedral_offsets(block_size: int) -> np.ndarray:
    """Source offsets of the 8 block rotations/flips of etc: int64 ``(8, B * B)``.

    Element t = 4 * f + r rotates a block by r * 90 degrees counter-clockwise (``torch.rot90``
    with k = r on the (H, W) dims), then flips it left-right if f = 1. Row t, entry o (a
    row-major offset in the output block) is the row-major offset it comes from.
    """
    grid = torch.arange(block_size * block_size).view(block_size, block_size)
    maps = []
    for t in range(8):
        moved = torch.rot90(grid, t % 4, dims=(0, 1))
        maps.append(torch.flip(moved, dims=(1,)) if t >= 4 else moved)
    return torch.stack(maps).view(8, -1).numpy().astype(np.int64)


def undo_dihedral(units: torch.Tensor, t: int) -> torch.Tensor:
    """Invert dihedral element ``t`` (see :func:`dihedral_offsets`) on blocks ``(M, C, B, B)``."""
    if t >= 4:
        units = torch.flip(units, dims=(-1,))
    return torch.rot90(units, -(t % 4), dims=(-2, -1))


@dataclass(frozen=True)
class GatherXor:
    """A compiled component map: ``out[n, q] = x[n, index[q]] ^ mask[q]`` over flat images.

    ``index``: int64 ``(L,)`` or ``(N, L)`` on the device, None for no move; ``mask``: uint8
    ``(L,)`` (0 keeps a component, 255 inverts it, 15 / 240 invert nibbles), None for none.
    """

    index: torch.Tensor | None
    mask: torch.Tensor | None

    @classmethod
    def from_numpy(cls, index: np.ndarray | None, mask: np.ndarray | None,
                   device: torch.device) -> "GatherXor":
        """Upload a map; an all-zero mask or an identity index is dropped (saves a pass)."""
        if index is not None and np.array_equal(index, np.arange(index.size)):
            index = None
        if mask is not None and not mask.any():
            mask = None
        return cls(None if index is None else torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)).to(device),
                   None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8)).to(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to ``x`` of shape ``(N, L)``; returns a new ``(N, L)`` tensor."""
        if self.index is None:
            return x.clone() if self.mask is None else torch.bitwise_xor(x, self.mask)
        out = gather_components(x, self.index)
        return out if self.mask is None else out.bitwise_xor_(self.mask)


def invert_gather_xor(index: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of ``out[q] = x[index[q]] ^ mask[q]``: ``x[p] = out[inv[p]] ^ mask[inv[p]]``."""
    inverse = invert_permutation(index)
    return inverse, mask[inverse]


def split_nibbles(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, L)`` -> ``(N, 2L)``: low nibbles ``x & 15``, then high nibbles ``x >> 4``."""
    n, length = x.shape
    out = torch.empty((n, 2, length), dtype=torch.uint8, device=x.device)
    torch.bitwise_and(x, 15, out=out[:, 0])
    torch.bitwise_right_shift(x, 4, out=out[:, 1])
    return out.view(n, 2 * length)


def join_nibbles(u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_nibbles`: ``(N, 2L)`` nibbles -> ``(high << 4) | low``, ``(N, L)``."""
    length = u.shape[1] // 2
    out = torch.bitwise_left_shift(u[:, length:], 4)
    return out.bitwise_or_(u[:, :length])


# Exact JPEG (JFIF) full-range BT.601 colour conversion. Every value is floor(v + 1/2) of the
# real-valued formula with the decimal coefficients in the docstrings, clipped to 0..255.
# Computed as floor((integer numerator) / denominator) with elementwise float ops: every
# partial sum is an integer below 2^24 (float32) or 2^53 (float64), so it is exact, and a
# correctly rounded division cannot cross an integer. Same result on every device.
# Rows: (coefficient of plane 0, 1, 2, offset, denominator); forward coefficients are the
# decimal ones divided by their common factor (Cb, Cr: 10^6 / 16 = 62500).
_TO_YCBCR = ((299, 587, 114, 500, 1000),
             (-10_546, -20_704, 31_250, 128 * 62_500 + 31_250, 62_500),
             (31_250, -26_168, -5_082, 128 * 62_500 + 31_250, 62_500))
_TO_RGB = ((1_000_000, 0, 1_402_000, 500_000 - 128 * 1_402_000, 1_000_000),
           (1_000_000, -344_136, -714_136, 500_000 + 128 * (344_136 + 714_136), 1_000_000),
           (1_000_000, 1_772_000, 0, 500_000 - 128 * 1_772_000, 1_000_000))


def _affine_floor(x: torch.Tensor, rows: tuple, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` -> uint8: plane k = clip(floor((sum_j a_kj x_j + o_k) / d_k), 0, 255)."""
    n = x.shape[0]
    planes = x.reshape(n, 3, -1).to(dtype).unbind(1)
    out = torch.empty((n, 3, planes[0].shape[-1]), dtype=dtype, device=x.device)
    for k, (a0, a1, a2, offset, denominator) in enumerate(rows):
        v = torch.mul(planes[0], a0, out=out[:, k])
        v.add_(planes[1], alpha=a1).add_(planes[2], alpha=a2).add_(offset).div_(denominator)
    return out.floor_().clamp_(0, 255).to(torch.uint8).view(x.shape)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``(N, 3, H, W)`` -> uint8 YCbCr (JPEG full range, round half up, clipped).

    Y = 0.299 R + 0.587 G + 0.114 B; Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B;
    Cr = 128 + 0.5 R - 0.418688 G - 0.081312 B.
    """
    return _affine_floor(x, _TO_YCBCR, torch.float32)


def ycbcr_to_rgb(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (R = Y + 1.402 (Cr-128), G = Y - 0.344136 (Cb-128) -
    0.714136 (Cr-128), B = Y + 1.772 (Cb-128); round half up, clipped). For all 2^24 colours
    ``ycbcr_to_rgb(rgb_to_ycbcr(x))`` is within 1 of x per component."""
    return _affine_floor(y, _TO_RGB, torch.float64)
