"""block-np: block-wise negative-positive transformation with a secret key (MaungMaung and Kiya 2021).

One key for all M x M blocks and images: block vector entry k (length L = 3 M^2, (row, col,
channel) order) becomes ``255 - x[k]`` where ``mask[k] = 1``. Compiles into one XOR mask over
the image (255 - p == p ^ 255 for uint8), applied in a single pass.
"""
from __future__ import annotations

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField
from ppattack.solvers.component_map import ComponentMap, in_block, majority
from ppattack.functional import GatherXor, block_components
from ppattack.keys import Key, Shape


class BlockNp(BlockCipher):
    """Block-wise negative-positive: invert the 3M^2 block-vector entries a mask selects (MaungMaung and Kiya 2021)."""

    name = "block-np"
    paper = ("MaungMaung, Kiya: A protection method of trained CNN model with a secret key from "
             "unauthorized access (APSIPA Trans. Signal and Information Processing 10, 2021)")

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size)

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        return {"mask": KeyField((shape[0] * self.block_size ** 2,), high=2)}

    def key_space_bits(self, shape: Shape) -> float:
        return float(shape[0] * self.block_size ** 2)

    def separable_bits(self, shape: Shape) -> float:
        """One mask bit: each decides one block-vector position alone."""
        return 1.0

    def compile(self, key: Key, device: torch.device) -> GatherXor:
        components = block_components(*key.shape, self.block_size)
        mask = np.zeros(components.size, dtype=np.uint8)
        mask[components] = 255 * key.material["mask"][None, :]
        return GatherXor.from_numpy(None, mask, device)

    def apply(self, x: torch.Tensor, plan: GatherXor, inverse: bool) -> torch.Tensor:
        return plan(x.reshape(len(x), -1)).view(x.shape)  # an involution: decrypt = encrypt

    def key_from_map(self, shape: Shape, found: ComponentMap) -> dict[str, np.ndarray] | None:
        """mask by majority over the blocks."""
        moved = in_block(shape, self.block_size, found)
        return None if moved is None else {"mask": majority(moved[1], axis=0)}
