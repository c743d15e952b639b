"""proposed: block-wise encryption for ViT (Qi, MaungMaung, Kinoshita, Kiya 2022).

Block scrambling of M x M blocks with key K1, then ONE pixel shuffle K2 shared by every
(M/2) x (M/2) sub-block of every block and image; channels move together. Both keys compose
into a single pixel index map, applied as one gather per batch.
"""
from __future__ import annotations

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField, log2_factorial
from ppattack.solvers.component_map import ComponentMap, majority, repair
from ppattack.functional import block_pixel_index, gather_pixels, invert_permutation
from ppattack.keys import Key, Shape


def subblock_pixel_index(height: int, width: int, block_size: int, pixel_perm: np.ndarray) -> np.ndarray:
    """Pixel index map of the shared in-sub-block shuffle: ``v'(k) = v(pixel_perm[k])``.

    Positions inside each (M/2)x(M/2) sub-block are numbered row-major. Returns int64
    ``(height * width,)``: output pixel p comes from input pixel ``map[p]``.
    """
    half = block_size // 2
    rows, cols = np.divmod(np.arange(height * width), width)
    k = (rows % half) * half + cols % half
    src_rows = rows - rows % half + pixel_perm[k] // half
    src_cols = cols - cols % half + pixel_perm[k] % half
    return src_rows * width + src_cols


class Proposed(BlockCipher):
    """Block scrambling (K1) + one shared pixel shuffle in every sub-block (K2), for ViT."""

    name = "proposed"
    paper = "Qi, MaungMaung, Kinoshita, Kiya: Privacy-preserving image classification using vision transformer (2022)"
    component_permutation = True
    even_block_size = True

    def __init__(self, block_size: int = 16) -> None:
        super().__init__(block_size)

    def _counts(self, shape: Shape) -> tuple[int, int]:
        _, h, w = shape
        return (h // self.block_size) * (w // self.block_size), (self.block_size // 2) ** 2

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        blocks, positions = self._counts(shape)
        return {"block_perm": KeyField((blocks,), permutation=True),
                "pixel_perm": KeyField((positions,), permutation=True)}

    def key_space_bits(self, shape: Shape) -> float:
        blocks, positions = self._counts(shape)
        return log2_factorial(blocks) + log2_factorial(positions)

    def separable_bits(self, shape: Shape) -> float:
        blocks, positions = self._counts(shape)
        return max(log2_factorial(blocks), log2_factorial(positions))

    def index_map(self, key: Key) -> np.ndarray:
        """The composed pixel map: ciphertext pixel p = plain pixel ``map[p]``."""
        _, h, w = key.shape
        scramble = block_pixel_index(h, w, self.block_size, key.material["block_perm"])
        shuffle = subblock_pixel_index(h, w, self.block_size, key.material["pixel_perm"])
        # Encrypted = shuffle(scramble(x)): out[p] = scrambled[shuffle[p]] = x[scramble[shuffle[p]]].
        return scramble[shuffle]

    def compile(self, key: Key, device: torch.device) -> dict[str, torch.Tensor]:
        forward = self.index_map(key)
        return {"forward": torch.from_numpy(forward).to(device),
                "inverse": torch.from_numpy(invert_permutation(forward)).to(device)}

    def apply(self, x: torch.Tensor, plan: dict[str, torch.Tensor], inverse: bool) -> torch.Tensor:
        return gather_pixels(x, plan["inverse" if inverse else "forward"])

    def key_from_map(self, shape: Shape, found: ComponentMap) -> dict[str, np.ndarray] | None:
        """block_perm and pixel_perm by majority over blocks and sub-blocks (absorbs the few
        components a known-plaintext map could not single out)."""
        found = found.coarsen()
        if found.bits != 8:
            return None
        _, h, w = shape
        block, half = self.block_size, self.block_size // 2
        src = found.index[:h * w]  # channel 0 plane: pixels move with all their channels
        rows, cols = np.divmod(np.arange(h * w), w)
        src_rows, src_cols = np.divmod(src % (h * w), w)
        per_row = w // block
        out_block = (rows // block) * per_row + cols // block
        src_block = (src_rows // block) * per_row + src_cols // block
        n_blocks = (h // block) * per_row
        block_perm = majority(np.stack([src_block[out_block == i] for i in range(n_blocks)]), axis=1)
        k = (rows % half) * half + cols % half
        src_k = (src_rows % half) * half + src_cols % half
        order = np.argsort(k, kind="stable")
        pixel_perm = majority(src_k[order].reshape(half * half, -1), axis=1)
        return {"block_perm": repair(block_perm), "pixel_perm": repair(pixel_perm)}
