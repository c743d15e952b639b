"""le: learnable image encryption (Tanaka, ICCE-TW 2018).

Every B x B block vector v (length d = 3 B^2, (row, col, channel) order) is split into 2d
nibbles ``u = concat(v & 15, v >> 4)``; one key for every block and image: u ^= 15 where
``flip``, ``u = u[perm]``, u ^= 15 where ``flip`` (the same mask again), then re-packed as
``v' = (u[d:] << 4) | u[:d]``. Reference implementations derive ``flip`` from the
permutation; here the two are independent, as the paper describes.

The whole key compiles into one nibble gather and one XOR mask: output nibble i is input
nibble ``perm[i]`` XOR ``15 * (flip[perm[i]] ^ flip[i])``.
"""
from __future__ import annotations

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField, log2_factorial
from ppattack.functional import (GatherXor, block_components, gather_components, invert_gather_xor,
                                 join_nibbles, split_nibbles)
from ppattack.keys import Key, Shape


def nibble_maps(components: np.ndarray, source_block: np.ndarray, perms: np.ndarray,
                flips: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Nibble gather map and byte XOR mask of LE applied block-wise, then block scrambling.

    ``components``: :func:`block_components` of the image ``(N_b, d)``; ``length`` = C*H*W.
    Output block i holds input block ``source_block[i]`` encrypted with LE key
    ``(perms[source_block[i]], flips[source_block[i]])`` (each ``(N_b, 2d)``). Nibbles are
    numbered low plane first: nibble ``j < L`` is the low nibble of component j, ``L + j`` its
    high nibble. Returns the map over 2L nibbles and a uint8 mask over the L output bytes.
    """
    nibbles = np.concatenate([components, components + length], axis=1)  # (N_b, 2d)
    perm, flip = perms[source_block], flips[source_block]
    index = np.empty(2 * length, dtype=np.int64)
    index[nibbles] = np.take_along_axis(nibbles[source_block], perm, axis=1)
    nibble_mask = np.zeros(2 * length, dtype=np.uint8)
    nibble_mask[nibbles] = 15 * (np.take_along_axis(flip, perm, axis=1) ^ flip)
    return index, nibble_mask


def nibble_plans(index: np.ndarray, nibble_mask: np.ndarray, device: torch.device) -> dict[str, GatherXor]:
    """Forward and inverse plans of :func:`nibble_maps` (masks packed into output bytes)."""
    length = index.size // 2

    def plan(idx: np.ndarray, mask: np.ndarray) -> GatherXor:
        packed = mask[:length] | (mask[length:] << 4)
        return GatherXor.from_numpy(idx, packed, device)

    return {"forward": plan(index, nibble_mask), "inverse": plan(*invert_gather_xor(index, nibble_mask))}


def apply_nibble_plan(x: torch.Tensor, plan: GatherXor) -> torch.Tensor:
    """Split ``x`` into nibbles, gather them with ``plan.index``, re-pack, XOR ``plan.mask``."""
    nibbles = split_nibbles(x.reshape(x.shape[0], -1))
    out = join_nibbles(nibbles if plan.index is None else gather_components(nibbles, plan.index))
    if plan.mask is not None:
        out.bitwise_xor_(plan.mask)
    return out.view(x.shape)


class Le(BlockCipher):
    """LE: one nibble permutation and nibble-flip key for every 3B^2 block vector (Tanaka 2018)."""

    name = "le"
    paper = "Tanaka: Learnable image encryption (IEEE ICCE-TW 2018)"

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size)

    def nibbles(self, shape: Shape) -> int:
        """2d: the number of nibbles in a block vector."""
        return 2 * shape[0] * self.block_size ** 2

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        return {"perm": KeyField((self.nibbles(shape),), permutation=True),
                "flip": KeyField((self.nibbles(shape),), high=2)}

    def key_space_bits(self, shape: Shape) -> float:
        """(2d)! * 2^(2d). (Distinct encryption functions are fewer: flip and its complement agree.)"""
        return log2_factorial(self.nibbles(shape)) + self.nibbles(shape)

    def compile(self, key: Key, device: torch.device) -> dict[str, GatherXor]:
        c, h, w = key.shape
        components = block_components(c, h, w, self.block_size)
        blocks = np.arange(len(components))
        perm = np.broadcast_to(key.material["perm"], (len(blocks), self.nibbles(key.shape)))
        flip = np.broadcast_to(key.material["flip"], perm.shape)
        return nibble_plans(*nibble_maps(components, blocks, perm, flip, c * h * w), device)

    def apply(self, x: torch.Tensor, plan: dict[str, GatherXor], inverse: bool) -> torch.Tensor:
        return apply_nibble_plan(x, plan["inverse" if inverse else "forward"])
