"""etc-gray: grayscale-based Encryption-then-Compression (Chuman, Sirichotedumrong, Kiya 2019).

The seed paper's "EtC". An RGB image (3, H, W) is converted to YCbCr (JPEG full-range BT.601,
exact integer arithmetic, round half up: :func:`ppattack.functional.rgb_to_ycbcr`); Y, Cb and
Cr are put side by side into one grayscale image (1, H, 3W), which gets etc's steps 1-3 on
B x B blocks (block scrambling, rotation/flip, negative-positive; no colour shuffle).
Ciphertexts have shape (1, H, 3W); decryption restores YCbCr exactly and RGB within 2 per
component (colour conversion rounding).

Conversion, concatenation, scrambling, rotation and inversion compile into one gather and one
XOR mask after the colour conversion.

Per-block candidate numbering (``unit_transforms``: 16 per block): ``t = 2 * transform + np``.
"""
from __future__ import annotations

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField, UnitTransforms, log2_factorial
from ppattack.functional import GatherXor, rgb_to_ycbcr, undo_dihedral, ycbcr_to_rgb
from ppattack.keys import Key, Shape

from .etc import etc_maps, gather_xor_plans


class EtcGray(BlockCipher):
    """Grayscale-based EtC: YCbCr side by side as one (1, H, 3W) image, then block scrambling, rotation/flip, negative-positive (Chuman et al. 2019)."""

    name = "etc-gray"
    paper = ("Chuman, Sirichotedumrong, Kiya: Encryption-then-compression systems using "
             "grayscale-based image encryption for JPEG images (IEEE TIFS 14(6), 2019)")
    max_round_trip_error = 2

    def __init__(self, block_size: int = 8) -> None:
        super().__init__(block_size)

    def encrypted_shape(self, shape: Shape) -> Shape:
        return (1, shape[1], 3 * shape[2])

    def blocks(self, shape: Shape) -> int:
        """N_g = 3HW / B^2 blocks of the grayscale image."""
        return 3 * (shape[1] // self.block_size) * (shape[2] // self.block_size)

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        n = self.blocks(shape)
        return {"block_perm": KeyField((n,), permutation=True), "transform": KeyField((n,), high=8),
                "np": KeyField((n,), high=2)}

    def key_space_bits(self, shape: Shape) -> float:
        n = self.blocks(shape)
        return log2_factorial(n) + n * 4.0

    def separable_bits(self, shape: Shape) -> float:
        """Block permutation, or one block's 16 transforms (each acts on its own block)."""
        return max(log2_factorial(self.blocks(shape)), 4.0)

    def compile(self, key: Key, device: torch.device) -> dict[str, GatherXor]:
        _, h, w = key.shape
        m = key.material
        gray, mask = etc_maps(self.encrypted_shape(key.shape), self.block_size,
                              m["block_perm"], m["transform"], m["np"], None)
        # Grayscale pixel (row, col) holds plane col // W of the planar YCbCr image at (row, col % W).
        rows, cols = np.divmod(np.arange(h * 3 * w), 3 * w)
        planar = (cols // w) * (h * w) + rows * w + cols % w
        plans = gather_xor_plans(planar[gray], mask, device)
        keyed = gather_xor_plans(gray, mask, device)
        return {**plans, "keyed_forward": keyed["forward"], "keyed_inverse": keyed["inverse"]}

    def apply(self, x: torch.Tensor, plan: dict[str, GatherXor], inverse: bool) -> torch.Tensor:
        n, _, h, w = x.shape
        if inverse:
            planes = plan["inverse"](x.reshape(n, -1))
            return ycbcr_to_rgb(planes.view(n, 3, h, w // 3))
        return plan["forward"](rgb_to_ycbcr(x).view(n, -1)).view(n, 1, h, 3 * w)

    # The keyless step (public): YCbCr planes side by side; the keyed part: etc steps 1-3.
    def keyless_step(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(rgb_to_ycbcr(x).unbind(1), dim=-1)[:, None]

    def undo_keyless_step(self, z: torch.Tensor) -> torch.Tensor:
        return ycbcr_to_rgb(torch.stack(z[:, 0].chunk(3, dim=-1), dim=1).contiguous())

    def keyed_shape(self, shape: Shape) -> Shape:
        return self.encrypted_shape(shape)

    def encrypt_keyed(self, z: torch.Tensor, key: Key) -> torch.Tensor:
        self._check_batch(z, key, self.encrypted_shape(key.shape), "keyed-part inputs")
        return self._plan(key, z.device)["keyed_forward"](z.reshape(len(z), -1)).view(z.shape)

    def decrypt_keyed(self, y: torch.Tensor, key: Key) -> torch.Tensor:
        self._check_batch(y, key, self.encrypted_shape(key.shape), "ciphertexts")
        return self._plan(key, y.device)["keyed_inverse"](y.reshape(len(y), -1)).view(y.shape)

    def unit_transforms(self, shape: Shape) -> UnitTransforms:
        """16 candidates per block of the grayscale image: ``t = 2 * transform + np``."""
        def undo(units: torch.Tensor, t: int) -> torch.Tensor:
            g, negative = divmod(t, 2)
            if negative:
                units = 255 - units
            return undo_dihedral(units, g).contiguous()

        def key_parts(t: np.ndarray) -> dict[str, np.ndarray]:
            return {"transform": t // 2, "np": t % 2}

        return UnitTransforms(unit="block", unit_size=self.block_size, count=16, undo=undo,
                              key_parts=key_parts)
