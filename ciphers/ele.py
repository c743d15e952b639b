"""ele: extended learnable image encryption (Madono, Tanaka, Onishi, Ogawa, AAAI-WS 2020).

LE (see :mod:`ppattack_ciphers.le`) with a different LE key for every block position, then
block scrambling: input block j is encrypted with key j (its position before scrambling),
and output block i is processed input block ``block_perm[i]``. Everything compiles into one
nibble gather and one XOR mask.

Key JSON: ``{"block_perm": [...N], "blocks": [{"perm": [...2d], "flip": [...2d]}, ... N]}``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField, log2_factorial
from ppattack.errors import KeyFileError
from ppattack.functional import GatherXor, block_components
from ppattack.keys import Key, Shape, as_int_array, check_permutation, check_range
from ppattack.rng import KeyRNG

from .le import apply_nibble_plan, nibble_maps, nibble_plans


class Ele(BlockCipher):
    """ELE: LE with one key per block position, then block scrambling (Madono et al. 2020)."""

    name = "ele"
    paper = ("Madono, Tanaka, Onishi, Ogawa: Block-wise scrambled image recognition using "
             "adaptation network (AAAI Workshop on AI of Things, 2020)")
    per_position_keys = True

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size)

    def _counts(self, shape: Shape) -> tuple[int, int]:
        """(N blocks, 2d nibbles per block vector)."""
        _, h, w = shape
        return (h // self.block_size) * (w // self.block_size), 2 * shape[0] * self.block_size ** 2

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        """Flat view of the material; the key JSON nests the per-block fields under "blocks"."""
        blocks, nibbles = self._counts(shape)
        return {"block_perm": KeyField((blocks,), permutation=True),
                "blocks.perm": KeyField((blocks, nibbles), permutation=True),
                "blocks.flip": KeyField((blocks, nibbles), high=2)}

    def key_space_bits(self, shape: Shape) -> float:
        blocks, nibbles = self._counts(shape)
        return log2_factorial(blocks) + blocks * (log2_factorial(nibbles) + nibbles)

    def separable_bits(self, shape: Shape) -> float:
        """Block permutation, or one block's LE key (each acts on its own block only)."""
        blocks, nibbles = self._counts(shape)
        return max(log2_factorial(blocks), log2_factorial(nibbles) + nibbles)

    def generate_key(self, shape: Shape, seed: int | None = None) -> Key:
        shape = tuple(int(s) for s in shape)
        self.check_shape(shape)
        fields, rng = self.key_fields(shape), KeyRNG(seed)
        perms, flips = fields["blocks.perm"].draw(rng), fields["blocks.flip"].draw(rng)
        material = {"block_perm": fields["block_perm"].draw(rng),
                    "blocks": [{"perm": p, "flip": f} for p, f in zip(perms, flips)]}
        return Key(self.name, self.params, shape, material)

    def parse_material(self, raw: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
        blocks, nibbles = self._counts(shape)
        unknown = sorted(set(raw) - {"block_perm", "blocks"})
        if unknown:
            raise KeyFileError(f"field 'material.{unknown[0]}' is not a key field of cipher "
                               f"'{self.name}' (expected ['block_perm', 'blocks'])")
        for name in ("block_perm", "blocks"):
            if name not in raw:
                raise KeyFileError(f"field 'material.{name}' is missing")
        block_perm = check_permutation(as_int_array(raw["block_perm"], "block_perm", (blocks,)), "block_perm")
        items = raw["blocks"]
        if not isinstance(items, list) or len(items) != blocks:
            raise KeyFileError(f"field 'material.blocks' must be a list of {blocks} objects "
                               "{\"perm\": [...], \"flip\": [...]}")
        parsed = []
        for j, item in enumerate(items):
            where = f"blocks[{j}]"
            if not isinstance(item, dict) or set(item) != {"perm", "flip"}:
                raise KeyFileError(f"field 'material.{where}' must be an object with exactly the "
                                   "fields 'perm' and 'flip'")
            perm = check_permutation(as_int_array(item["perm"], f"{where}.perm", (nibbles,)), f"{where}.perm")
            flip = check_range(as_int_array(item["flip"], f"{where}.flip", (nibbles,)), f"{where}.flip", 2)
            parsed.append({"perm": perm, "flip": flip})
        return {"block_perm": block_perm, "blocks": parsed}

    def compile(self, key: Key, device: torch.device) -> dict[str, GatherXor]:
        c, h, w = key.shape
        blocks = key.material["blocks"]
        perms = np.stack([b["perm"] for b in blocks])
        flips = np.stack([b["flip"] for b in blocks])
        components = block_components(c, h, w, self.block_size)
        maps = nibble_maps(components, np.asarray(key.material["block_perm"]), perms, flips, c * h * w)
        return nibble_plans(*maps, device)

    def apply(self, x: torch.Tensor, plan: dict[str, GatherXor], inverse: bool) -> torch.Tensor:
        return apply_nibble_plan(x, plan["inverse" if inverse else "forward"])
