"""Pure tensor operations shared by the ciphers: index maps and batched gathers.

Conventions (ciphers.md): images are uint8 ``(N, C, H, W)``; blocks are ``B x B`` tiles
scanned row-major; "output[i] = input[perm[i]]" everywhere. A key is compiled once into an
index map (a LongTensor) and applied with one gather per batch, never with Python loops.
"""
from __future__ import annotations

import numpy as np
import torch


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
    return x.reshape(n * c, h * w).index_select(1, index).view(n, c, h, w)


def gather_components(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Move single components: ``out[n, q] = x[n, index[q]]`` over flattened ``C*H*W``."""
    n = x.shape[0]
    return x.reshape(n, -1).index_select(1, index).view(x.shape)
