"""etc: colour-based Encryption-then-Compression (Kurihara, Kikuchi, Imaizumi, Shiota, Kiya 2015).

Four block-wise steps on B x B blocks, every key indexed by OUTPUT block position i:
1. block scrambling: output block i = input block ``block_perm[i]``;
2. rotation and inversion: dihedral element ``transform[i] = 4 f + r`` rotates the block by
   r * 90 degrees counter-clockwise (``torch.rot90``, k = r, on the (H, W) dims), then flips it
   left-right if f = 1;
3. negative-positive: every component becomes 255 - p where ``np[i] = 1``;
4. colour component shuffling: output channel c = input channel ``COLOR_PERMS[color[i]][c]``.

The key compiles into one component gather and one XOR mask.

Per-block candidate numbering (``unit_transforms``: 96 per block):
``t = 12 * transform + 6 * np + color``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField, UnitTransforms, log2_factorial
from ppattack.solvers.component_map import ComponentMap, majority, repair
from ppattack.functional import COLOR_PERMS, GatherXor, dihedral_offsets, invert_gather_xor, undo_dihedral
from ppattack.keys import Key, Shape


def etc_maps(shape: Shape, block_size: int, block_perm: np.ndarray, transform: np.ndarray,
             negative: np.ndarray, color: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Component gather map and XOR mask (both over C*H*W) of etc steps 1-4 (3 without ``color``).

    ``out[q] = x[index[q]] ^ mask[q]`` over flattened ``(C, H, W)`` components.
    """
    channels, height, width = shape
    b, per_row, plane = block_size, width // block_size, height * width
    blocks = np.arange(len(block_perm))
    offsets = np.arange(b * b)

    def pixels(block: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return ((block // per_row)[:, None] * b + offset // b) * width + (block % per_row)[:, None] * b + offset % b

    out_pixels = pixels(blocks, offsets[None, :])  # (N, B*B)
    src_pixels = pixels(np.asarray(block_perm), dihedral_offsets(b)[transform])
    src_channels = (COLOR_PERMS[color] if color is not None
                    else np.zeros((len(blocks), channels), np.int64))  # (N, C)
    out = np.arange(channels)[:, None, None] * plane + out_pixels[None]
    index = np.empty(channels * plane, dtype=np.int64)
    index[out] = src_channels.T[:, :, None] * plane + src_pixels[None]
    mask = np.zeros(channels * plane, dtype=np.uint8)
    mask[out] = 255 * np.asarray(negative)[None, :, None]
    return index, mask


def gather_xor_plans(index: np.ndarray, mask: np.ndarray, device: torch.device) -> dict[str, GatherXor]:
    """Forward and inverse :class:`GatherXor` plans of one component map."""
    return {"forward": GatherXor.from_numpy(index, mask, device),
            "inverse": GatherXor.from_numpy(*invert_gather_xor(index, mask), device)}


class Etc(BlockCipher):
    """EtC: block scrambling, rotation/flip, negative-positive, colour shuffling (Kurihara/Kiya et al.)."""

    name = "etc"
    paper = ("Kurihara, Kikuchi, Imaizumi, Shiota, Kiya: An encryption-then-compression system for "
             "JPEG / Motion JPEG standard (IEICE Trans. Fundamentals E98-A(11), 2015)")

    def __init__(self, block_size: int = 16) -> None:
        super().__init__(block_size)

    def blocks(self, shape: Shape) -> int:
        return (shape[1] // self.block_size) * (shape[2] // self.block_size)

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        n = self.blocks(shape)
        return {"block_perm": KeyField((n,), permutation=True), "transform": KeyField((n,), high=8),
                "np": KeyField((n,), high=2), "color": KeyField((n,), high=6)}

    def key_space_bits(self, shape: Shape) -> float:
        n = self.blocks(shape)
        return log2_factorial(n) + n * math.log2(8 * 2 * 6)

    def separable_bits(self, shape: Shape) -> float:
        """Block permutation, or one block's 96 transforms (each acts on its own block)."""
        return max(log2_factorial(self.blocks(shape)), math.log2(96))

    def compile(self, key: Key, device: torch.device) -> dict[str, GatherXor]:
        m = key.material
        maps = etc_maps(key.shape, self.block_size, m["block_perm"], m["transform"], m["np"], m["color"])
        return gather_xor_plans(*maps, device)

    def apply(self, x: torch.Tensor, plan: dict[str, GatherXor], inverse: bool) -> torch.Tensor:
        return plan["inverse" if inverse else "forward"](x.reshape(len(x), -1)).view(x.shape)

    def unit_transforms(self, shape: Shape) -> UnitTransforms:
        """96 candidates per block: ``t = 12 * transform + 6 * np + color`` (module docstring)."""
        def undo(units: torch.Tensor, t: int) -> torch.Tensor:
            g, rest = divmod(t, 12)
            negative, q = divmod(rest, 6)
            inverse = torch.as_tensor(np.argsort(COLOR_PERMS[q]), device=units.device)
            units = units.index_select(1, inverse)
            if negative:
                units = 255 - units
            return undo_dihedral(units, g).contiguous()

        def key_parts(t: np.ndarray) -> dict[str, np.ndarray]:
            return {"transform": t // 12, "np": t % 12 // 6, "color": t % 6}

        return UnitTransforms(unit="block", unit_size=self.block_size, count=96, undo=undo,
                              key_parts=key_parts)

    def key_from_map(self, shape: Shape, found: ComponentMap) -> dict[str, np.ndarray] | None:
        """Every part by majority over each block's components."""
        found = found.coarsen()
        if found.bits != 8:
            return None
        channels, h, w = shape
        block, plane = self.block_size, h * w
        per_row = w // block
        n_blocks = (h // block) * per_row
        offsets = np.arange(block * block)
        base = ((np.arange(n_blocks) // per_row * block)[:, None] * w
                + (np.arange(n_blocks) % per_row * block)[:, None])
        pixels = base + (offsets // block) * w + offsets % block  # (N, B*B) output pixels
        where = np.arange(channels)[:, None, None] * plane + pixels[None]  # (C, N, B*B)
        src_channel, src_pixel = np.divmod(found.index[where], plane)
        src_rows, src_cols = np.divmod(src_pixel, w)
        src_block = (src_rows // block) * per_row + src_cols // block
        block_perm = repair(majority(src_block.transpose(1, 0, 2).reshape(n_blocks, -1), axis=1))
        src_offset = (src_rows % block) * block + src_cols % block
        votes = (src_offset[0][:, None, :] == dihedral_offsets(block)[None]).sum(-1)  # (N, 8)
        colour = majority(src_channel.transpose(1, 0, 2), axis=2)  # (N, C)
        colour_number = (colour[:, None, :] == COLOR_PERMS[None]).all(-1).argmax(axis=1)
        negative = majority(found.flip[where].transpose(1, 0, 2).reshape(n_blocks, -1), axis=1)
        return {"block_perm": block_perm, "transform": votes.argmax(axis=1), "np": negative,
                "color": colour_number}
