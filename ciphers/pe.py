"""pe: pixel-based image encryption without key management (Sirichotedumrong, Kinoshita, Kiya 2019).

No blocks. For every pixel: negative-positive transformation of each colour component whose
key bit is 1 (``p' = 255 - p``, bits indexed by INPUT channel), then colour component
shuffling with permutation number q in 0..5 (output channel c = input channel
``COLOR_PERMS[q][c]``).

Key modes:

- ``key_mode="per-image"`` (the paper's default, "without key management"): the key file holds
  only ``{"seed": s}``; image n (``encrypt(x, key, indices=...)``, default 0..N-1) gets its own
  key derived from s and n with SHAKE-256:
  ``stream = SHAKE256(b"ppattack-pe-v1" || s as 32-byte big-endian || n as 8-byte big-endian)``;
  bytes >= 240 are skipped and the p-th kept byte b gives pixel p (row-major) the code
  ``t = b % 48`` (uniform). :meth:`Pe.image_key` returns image n's key in shared form.
- ``key_mode="shared"``: one key ``{"np": (3, H, W) bits, "color": (H, W) 0..5}`` for all images.

Per-pixel candidate numbering (``unit_transforms``: 48 per pixel) and per-pixel codes:
``t = 6 * m + q`` where bit c of m (``m = np[0] + 2 np[1] + 4 np[2]``) is input channel c's
negative-positive bit and q the colour permutation number.

A compiled key is three uint8 masks per component (source channel 0, source channel 1,
negative-positive), applied with bitwise operations only (no gather):
``out = x2 ^ ((x1 ^ x2) & from1) ^ ((x0 ^ x2) & from0) ^ negative``.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Mapping

import numpy as np
import torch

from ppattack.cipher import Cipher, KeyField, UnitTransforms
from ppattack.errors import KeyFileError, ParameterError
from ppattack.functional import COLOR_PERMS
from ppattack.keys import Key, Shape
from ppattack.rng import KeyRNG

KEY_MODES = ("per-image", "shared")
CODES = 48
_DOMAIN = b"ppattack-pe-v1"
_SEED_BYTES = 32


def _code_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each code t and output channel c: (source channel, XOR value) of encryption and
    decryption, as uint8 ``(2, 48, 3)`` each."""
    source, mask = np.zeros((2, CODES, 3), np.uint8), np.zeros((2, CODES, 3), np.uint8)
    for t in range(CODES):
        m, q = divmod(t, 6)
        perm = COLOR_PERMS[q]
        inverse = np.argsort(perm)
        for c in range(3):
            # encrypt: out[c] = x[perm[c]] ^ 255 * bit(m, perm[c])
            source[0, t, c], mask[0, t, c] = perm[c], 255 * ((m >> perm[c]) & 1)
            # decrypt: x[c] = out[inverse[c]] ^ 255 * bit(m, c)
            source[1, t, c], mask[1, t, c] = inverse[c], 255 * ((m >> c) & 1)
    return source, mask


SOURCE, MASK = _code_tables()
#: Per direction, the lookup tables (from0, from1, negative) x channel x code, uint8 0/255.
LOOKUP = np.stack([np.stack([255 * (SOURCE[d] == 0), 255 * (SOURCE[d] == 1), MASK[d]]).transpose(0, 2, 1)
                   for d in range(2)]).astype(np.uint8, order="C")  # (2, 3, 3, 48)


def derive_codes(seed: int, index: int, pixels: int) -> np.ndarray:
    """Image ``index``'s per-pixel codes 0..47 (uint8, ``(pixels,)``) from the key's seed."""
    prefix = _DOMAIN + seed.to_bytes(_SEED_BYTES, "big") + int(index).to_bytes(8, "big")
    length = pixels + pixels // 8 + 64
    while True:
        stream = np.frombuffer(hashlib.shake_256(prefix).digest(length), dtype=np.uint8)
        kept = stream[stream < 240]
        if kept.size >= pixels:
            return kept[:pixels] % CODES
        length *= 2


def code_masks(codes: np.ndarray, direction: int) -> np.ndarray:
    """Per-pixel codes ``(N, P)`` -> uint8 masks ``(3, N, 3, P)``: from0, from1, negative."""
    n, pixels = codes.shape
    index = codes.astype(np.intp)
    out = np.empty((3, n, 3, pixels), dtype=np.uint8)
    for quantity in range(3):  # nine table look-ups, each over the whole batch
        for c in range(3):
            np.take(LOOKUP[direction, quantity, c], index, out=out[quantity, :, c], mode="clip")
    return out


def select_and_xor(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``out[n, c, p] = x[n, s, p] ^ negative[., c, p]`` for 3-channel ``x (N, 3, P)``; the source
    channel s is 0 where ``from0`` = 255, 1 where ``from1`` = 255, else 2.

    ``masks``: uint8 ``(3, 1 or N, 3, P)`` (from0, from1, negative), see :func:`code_masks`.
    """
    from0, from1, negative = masks
    x0, x1, x2 = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    out = torch.bitwise_and(x1 ^ x2, from1)
    out ^= (x0 ^ x2) & from0
    out ^= x2
    return out.bitwise_xor_(negative)


def folded_and_sorted(images: torch.Tensor) -> torch.Tensor:
    """pe's canonical form in closed form: each pixel's components folded, ``min(v, 255 - v)``,
    in ascending order (the least of its 48 candidates: any component may be negated and sit
    anywhere). uint8 ``(N, 3, H, W)`` -> the same."""
    return torch.minimum(images, 255 - images).sort(dim=1).values


class Pe(Cipher):
    """PE: per-pixel negative-positive and colour shuffling, a fresh key per image (Sirichotedumrong et al. 2019)."""

    name = "pe"
    paper = ("Sirichotedumrong, Kinoshita, Kiya: Pixel-based image encryption without key "
             "management for privacy-preserving deep neural networks (IEEE Access 7, 2019)")
    key_reuse = "per-image"

    def __init__(self, key_mode: str = "per-image") -> None:
        if key_mode not in KEY_MODES:
            raise ParameterError(f"parameter key_mode must be one of {', '.join(KEY_MODES)}, got {key_mode!r}")
        super().__init__(key_mode=key_mode)
        self.key_mode = key_mode
        self.key_reuse = "per-image" if key_mode == "per-image" else "shared"

    # -- keys ------------------------------------------------------------------------------------
    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        """Shared mode: the per-pixel arrays. Per-image mode: one integer seed in [0, 2^256)."""
        _, h, w = shape
        if self.key_mode == "per-image":
            return {"seed": KeyField((), high=2 ** (8 * _SEED_BYTES))}
        return {"np": KeyField((3, h, w), high=2), "color": KeyField((h, w), high=6)}

    def key_space_bits(self, shape: Shape) -> float:
        """Per image: 2^(3HW) * 6^(HW) (per-image mode draws each image's key from this space)."""
        pixels = shape[1] * shape[2]
        return pixels * (3 + math.log2(6))

    def separable_bits(self, shape: Shape) -> float:
        """One pixel's 48 candidates: every pixel's key acts on that pixel alone."""
        return math.log2(CODES)

    def generate_key(self, shape: Shape, seed: int | None = None) -> Key:
        if self.key_mode == "shared":
            return super().generate_key(shape, seed)
        shape = tuple(int(s) for s in shape)
        self.check_shape(shape)
        return Key(self.name, self.params, shape, {"seed": KeyRNG(seed).seed_word()})

    def parse_material(self, raw: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
        if self.key_mode == "shared":
            return super().parse_material(raw, shape)
        unknown = sorted(set(raw) - {"seed"})
        if unknown:
            raise KeyFileError(f"field 'material.{unknown[0]}' is not a key field of cipher "
                               f"'{self.name}' in key_mode per-image (expected ['seed'])")
        if "seed" not in raw:
            raise KeyFileError("field 'material.seed' is missing")
        seed = raw["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** (8 * _SEED_BYTES):
            raise KeyFileError(f"field 'material.seed' must be an integer in 0..2^{8 * _SEED_BYTES}-1")
        return {"seed": seed}

    def image_key(self, key: Key, index: int) -> Key:
        """Image ``index``'s key under a per-image ``key``, as a ``key_mode="shared"`` key."""
        self.check_key(key)
        if self.key_mode != "per-image":
            raise ParameterError("image_key needs a per-image pe key")
        if int(index) < 0:
            raise ParameterError(f"image index must be >= 0, got {index}")
        _, h, w = key.shape
        codes = derive_codes(key.material["seed"], index, h * w).astype(np.int64)
        bits = np.stack([(codes // 6 >> c) & 1 for c in range(3)]).reshape(3, h, w)
        return Key(self.name, {"key_mode": "shared"}, key.shape,
                   {"np": bits, "color": (codes % 6).reshape(h, w)})

    # -- encryption --------------------------------------------------------------------------
    def compile(self, key: Key, device: torch.device) -> dict[str, torch.Tensor] | None:
        """Shared mode: masks of both directions ``(3, 1, 3, H*W)``; per-image mode: nothing."""
        if self.key_mode == "per-image":
            return None
        bits, color = key.material["np"], key.material["color"]
        codes = (6 * (bits[0] + 2 * bits[1] + 4 * bits[2]) + color).reshape(1, -1).astype(np.uint8)
        return {name: torch.from_numpy(code_masks(codes, direction)).to(device)
                for direction, name in enumerate(("forward", "inverse"))}

    def image_plan(self, plan: None, key: Key, indices: np.ndarray, device: torch.device) -> np.ndarray:
        """Per-image mode: the batch's per-pixel codes ``(N, H*W)``, derived from the seed."""
        _, h, w = key.shape
        return np.stack([derive_codes(key.material["seed"], n, h * w) for n in indices.tolist()])

    def apply(self, x: torch.Tensor, plan: dict[str, torch.Tensor] | np.ndarray, inverse: bool) -> torch.Tensor:
        n, c, h, w = x.shape
        if isinstance(plan, np.ndarray):  # per-image codes: masks for this direction only
            masks = torch.from_numpy(code_masks(plan, int(inverse))).to(x.device)
        else:
            masks = plan["inverse" if inverse else "forward"]
        return select_and_xor(x.reshape(n, c, h * w), masks).view(n, c, h, w)

    def unit_transforms(self, shape: Shape) -> UnitTransforms:
        """48 candidates per pixel, numbered ``t = 6 * m + q`` (see the module docstring)."""
        def undo(units: torch.Tensor, t: int) -> torch.Tensor:
            source = torch.as_tensor(SOURCE[1, t].astype(np.int64), device=units.device)
            mask = torch.as_tensor(MASK[1, t], device=units.device).view(1, 3, 1, 1)
            return units.index_select(1, source).bitwise_xor_(mask)

        return UnitTransforms(unit="pixel", unit_size=1, count=CODES, undo=undo, canonical_form=folded_and_sorted)
