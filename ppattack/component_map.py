"""Signed component maps: what a shared-key permutation cipher does to every component.

Many block ciphers of the benchmark (proposed, block-shuffle, block-np, etc, plain) encrypt
every image with the same map over the flattened ``(C, H, W)`` components::

    cipher[q] = plain[index[q]]          where flip[q] = 0
    cipher[q] = 255 - plain[index[q]]    where flip[q] = 1

Such a map is recovered exactly from a few known (plain, cipher) pairs (:func:`from_pairs`) or
from ``ceil(log_256 n) + 2`` chosen images (:func:`from_oracle`), and then converted into the
cipher's own key material (:func:`key_material`) by majority over blocks, which also absorbs
the few components that the known images could not tell apart.

    >>> import ppattack
    >>> cipher = ppattack.create_cipher("proposed", block_size=4)
    >>> key = cipher.generate_key((3, 8, 8), seed=0)
    >>> found = from_oracle(lambda x: cipher.encrypt(x, key), (3, 8, 8))
    >>> material = key_material(cipher, (3, 8, 8), found)
    >>> bool((material["block_perm"] == key.material["block_perm"]).all())
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .cipher import Cipher
from .errors import ParameterError
from .functional import COLOR_PERMS, block_components, dihedral_offsets
from .keys import Shape


@dataclass(frozen=True)
class SignedMap:
    """``cipher[q] = plain[index[q]]``, inverted where ``flip[q]``; plus how sure the match was.

    ``ambiguous``: fraction of components whose source the evidence could not single out
    (their value vectors were shared by several components; resolved arbitrarily).
    """

    index: np.ndarray
    flip: np.ndarray
    ambiguous: float = 0.0

    def decrypt(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        """Invert the map on a uint8 batch ``(N, C, H, W)``."""
        n = len(ciphertexts)
        flat = ciphertexts.reshape(n, -1)
        mask = torch.from_numpy(self.flip.astype(np.uint8) * 255).to(flat.device)
        out = torch.zeros_like(flat)
        out[:, torch.from_numpy(self.index).to(flat.device)] = flat ^ mask
        return out.view(ciphertexts.shape)


def _pack(values: np.ndarray) -> np.ndarray:
    """``(m, L)`` uint8, m <= 8 -> one uint64 per component (byte i = image i)."""
    packed = np.zeros(values.shape[1], np.uint64)
    for i, row in enumerate(values):
        packed |= row.astype(np.uint64) << np.uint64(8 * i)
    return packed


def from_pairs(plain: torch.Tensor, cipher: torch.Tensor) -> SignedMap:
    """Recover the map from known pairs: match every cipher component's value vector.

    Args:
        plain, cipher: uint8 ``(m, C, H, W)``, the same m images (at most the first 8 are used).

    Raises:
        ParameterError: some cipher component matches no plain component, directly or inverted
            (the cipher is not a signed component map, or the key is not shared).
    """
    m = min(8, len(plain))
    p = plain[:m].reshape(m, -1).cpu().numpy()
    c = cipher[:m].reshape(m, -1).cpu().numpy()
    if p.shape != c.shape:
        raise ParameterError("known pairs must have the same shape on both sides")
    pk, ck = _pack(p), _pack(c)
    full = np.uint64((1 << (8 * m)) - 1) if m < 8 else np.uint64(0xFFFFFFFFFFFFFFFF)
    order = np.argsort(pk, kind="stable")
    sorted_keys = pk[order]

    def present(keys: np.ndarray) -> np.ndarray:
        at = np.searchsorted(sorted_keys, keys).clip(max=len(sorted_keys) - 1)
        return sorted_keys[at] == keys

    direct = present(ck)
    inverted = present(ck ^ full)
    if not (direct | inverted).all():
        missing = float(1 - (direct | inverted).mean())
        raise ParameterError(f"{missing:.1%} of the cipher components match no plain component: "
                             "the cipher is not a shared signed component map")
    flip = ~direct
    canonical = np.where(flip, ck ^ full, ck)
    # One-to-one: equal value vectors are assigned in order (sorted on both sides).
    c_order = np.argsort(canonical, kind="stable")
    index = np.empty(len(ck), np.int64)
    if np.array_equal(canonical[c_order], sorted_keys):
        index[c_order] = order
    else:  # not a bijection on the evidence: take any matching source
        index[:] = order[np.searchsorted(sorted_keys, canonical).clip(max=len(order) - 1)]
    _, counts = np.unique(pk, return_counts=True)
    ambiguous = float(counts[counts > 1].sum() / len(pk))
    return SignedMap(index, flip.astype(np.int64), ambiguous)


def chosen_images(shape: Shape) -> torch.Tensor:
    """The chosen images of :func:`from_oracle`: base-256 digits of every component's index,
    then an all-zero image (reveals inversions), then a fixed random image (a check)."""
    n = math.prod(shape)
    digits = max(1, math.ceil(math.log(n, 256)))
    q = np.arange(n, dtype=np.int64)
    rows = [(q >> (8 * d)) & 255 for d in range(digits)] + [np.zeros(n, np.int64)]
    rows.append(np.random.default_rng(0).integers(0, 256, n))
    return torch.from_numpy(np.stack(rows).astype(np.uint8)).view(len(rows), *shape)


def from_oracle(oracle: Callable[[torch.Tensor], torch.Tensor], shape: Shape) -> SignedMap:
    """Recover the map exactly with ``ceil(log_256 n) + 2`` chosen images (n = C*H*W).

    Raises:
        ParameterError: the oracle's answers are not those of one signed component map.
    """
    chosen = chosen_images(shape)
    answer = oracle(chosen).cpu()
    if tuple(answer.shape) != tuple(chosen.shape) or answer.dtype != torch.uint8:
        raise ParameterError(f"the oracle returned {answer.dtype} {tuple(answer.shape)}, not uint8 "
                             f"{tuple(chosen.shape)}: the cipher is not a component map")
    flat = answer.reshape(len(chosen), -1).numpy().astype(np.int64)
    zero = flat[-2]
    if not np.isin(zero, (0, 255)).all():
        raise ParameterError("the cipher does not map components to components (zero image)")
    flip = (zero == 255).astype(np.int64)
    digits = flat[:-2] ^ (flip * 255)
    index = (digits << (8 * np.arange(len(digits)))[:, None]).sum(axis=0)
    found = SignedMap(index, flip)
    n = math.prod(shape)
    check = chosen[-1:]
    if (index >= n).any() or len(np.unique(index)) != n or \
            not torch.equal(found.decrypt(answer[-1:]), check):
        raise ParameterError("the oracle is not one shared signed component map: "
                             "this attack does not apply to the cipher")
    return found


# -- conversion into key material ---------------------------------------------------------------

def _majority(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Most frequent non-negative integer along ``axis``."""
    values = np.moveaxis(values, axis, -1)
    flat = values.reshape(-1, values.shape[-1])
    top = flat.max() + 1 if flat.size else 1
    counts = np.zeros((flat.shape[0], top), np.int64)
    np.add.at(counts, (np.repeat(np.arange(flat.shape[0]), flat.shape[1]), flat.ravel()), 1)
    return counts.argmax(axis=1).reshape(values.shape[:-1])


def _repair(perm: np.ndarray) -> np.ndarray:
    """Turn a majority vote into a permutation: repeated values give way to missing ones."""
    perm = perm.copy()
    seen = set()
    missing = iter(sorted(set(range(len(perm))) - set(perm.tolist())))
    for i, v in enumerate(perm):
        if int(v) in seen:
            perm[i] = next(missing)
        seen.add(int(perm[i]))
    return perm


def _proposed(cipher: Cipher, shape: Shape, found: SignedMap) -> dict[str, np.ndarray]:
    _, h, w = shape
    block, half = cipher.block_size, cipher.block_size // 2
    src = found.index[:h * w]  # channel 0 plane: pixels move with all their channels
    rows, cols = np.divmod(np.arange(h * w), w)
    src_rows, src_cols = np.divmod(src % (h * w), w)
    per_row = w // block
    out_block = (rows // block) * per_row + cols // block
    src_block = (src_rows // block) * per_row + src_cols // block
    n_blocks = (h // block) * per_row
    block_perm = _majority(np.stack([src_block[out_block == i] for i in range(n_blocks)]), axis=1)
    k = (rows % half) * half + cols % half
    src_k = (src_rows % half) * half + src_cols % half
    order = np.argsort(k, kind="stable")
    pixel_perm = _majority(src_k[order].reshape(half * half, -1), axis=1)
    return {"block_perm": _repair(block_perm), "pixel_perm": _repair(pixel_perm)}


def _in_block(cipher: Cipher, shape: Shape, found: SignedMap) -> tuple[np.ndarray, np.ndarray]:
    """Block-vector view: (source entry k', flip) of every (block, entry k)."""
    comps = block_components(*shape, cipher.block_size)  # (N_b, L)
    where = np.empty(comps.size, np.int64)
    where[comps.ravel()] = np.tile(np.arange(comps.shape[1]), comps.shape[0])
    return where[found.index[comps]], found.flip[comps]


def _block_shuffle(cipher: Cipher, shape: Shape, found: SignedMap) -> dict[str, np.ndarray]:
    src, _ = _in_block(cipher, shape, found)
    return {"perm": _repair(_majority(src, axis=0))}


def _block_np(cipher: Cipher, shape: Shape, found: SignedMap) -> dict[str, np.ndarray]:
    _, flip = _in_block(cipher, shape, found)
    return {"mask": _majority(flip, axis=0)}


def _etc(cipher: Cipher, shape: Shape, found: SignedMap) -> dict[str, np.ndarray]:
    channels, h, w = shape
    block, plane = cipher.block_size, h * w
    per_row = w // block
    n_blocks = (h // block) * per_row
    offsets = np.arange(block * block)
    base = (np.arange(n_blocks) // per_row * block)[:, None] * w + (np.arange(n_blocks) % per_row * block)[:, None]
    pixels = base + (offsets // block) * w + offsets % block  # (N, B*B) output pixels
    src = found.index[np.arange(channels)[:, None, None] * plane + pixels[None]]  # (C, N, B*B)
    src_channel, src_pixel = np.divmod(src, plane)
    src_rows, src_cols = np.divmod(src_pixel, w)
    src_block = (src_rows // block) * per_row + src_cols // block
    block_perm = _repair(_majority(src_block.transpose(1, 0, 2).reshape(n_blocks, -1), axis=1))
    src_offset = (src_rows % block) * block + src_cols % block  # (C, N, B*B)
    table = dihedral_offsets(block)  # (8, B*B)
    votes = (src_offset[0][:, None, :] == table[None]).sum(-1)  # (N, 8)
    transform = votes.argmax(axis=1)
    colour = _majority(src_channel.transpose(1, 0, 2), axis=2)  # (N, C)
    colour_number = (colour[:, None, :] == COLOR_PERMS[None]).all(-1).argmax(axis=1)
    negative = _majority(found.flip[np.arange(channels)[:, None, None] * plane + pixels[None]]
                         .transpose(1, 0, 2).reshape(n_blocks, -1), axis=1)
    return {"block_perm": block_perm, "transform": transform, "np": negative, "color": colour_number}


#: cipher name -> conversion of a signed component map into that cipher's key material.
CONVERTERS: dict[str, Callable[[Cipher, Shape, SignedMap], dict[str, np.ndarray]]] = {
    "plain": lambda cipher, shape, found: {},
    "proposed": _proposed,
    "block-shuffle": _block_shuffle,
    "block-np": _block_np,
    "etc": _etc,
}


def key_material(cipher: Cipher, shape: Shape, found: SignedMap) -> dict[str, np.ndarray] | None:
    """The cipher's key material (ciphers.md) implied by ``found``; None for other ciphers."""
    convert = CONVERTERS.get(cipher.name)
    return None if convert is None else convert(cipher, shape, found)
