"""block-shuffle: block-wise pixel shuffling with a secret key (MaungMaung and Kiya 2021).

One key for all M x M blocks and images: every block vector x (length L = 3 M^2, (row, col,
channel) order, channels mixed) becomes ``x'[k] = x[perm[k]]``. A pure permutation of pixel
components; with M equal to a ViT's patch size the model transformation of Kiya et al. (2023)
applies. Compiles into one component gather.
"""
from __future__ import annotations

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField, log2_factorial
from ppattack.solvers.component_map import ComponentMap, in_block, majority, repair
from ppattack.functional import GatherXor, block_components, invert_permutation
from ppattack.keys import Key, Shape


class BlockShuffle(BlockCipher):
    """Block-wise shuffling: one permutation of every 3M^2 block vector (MaungMaung and Kiya 2021)."""

    name = "block-shuffle"
    paper = ("MaungMaung, Kiya: A protection method of trained CNN model with a secret key from "
             "unauthorized access (APSIPA Trans. Signal and Information Processing 10, 2021)")
    component_permutation = True

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size)

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        return {"perm": KeyField((shape[0] * self.block_size ** 2,), permutation=True)}

    def key_space_bits(self, shape: Shape) -> float:
        return log2_factorial(shape[0] * self.block_size ** 2)

    def compile(self, key: Key, device: torch.device) -> dict[str, GatherXor]:
        components = block_components(*key.shape, self.block_size)
        index = np.empty(components.size, dtype=np.int64)
        index[components] = components[:, key.material["perm"]]
        return {"forward": GatherXor.from_numpy(index, None, device),
                "inverse": GatherXor.from_numpy(invert_permutation(index), None, device)}

    def apply(self, x: torch.Tensor, plan: dict[str, GatherXor], inverse: bool) -> torch.Tensor:
        return plan["inverse" if inverse else "forward"](x.reshape(len(x), -1)).view(x.shape)

    def key_from_map(self, shape: Shape, found: ComponentMap) -> dict[str, np.ndarray] | None:
        """perm by majority over the blocks."""
        moved = in_block(shape, self.block_size, found)
        return None if moved is None else {"perm": repair(majority(moved[0], axis=0))}
