"""Component maps: what a shared-key cipher that moves and flips bits does to every image.

Many ciphers of the benchmark, and any plugin of the same kind, encrypt every image with one
fixed map over the units of the flattened ``(C, H, W)`` components, where a unit is a group of
``bits`` bits of one component (8: the byte; 4: a nibble; 1: a bit)::

    cipher_unit[i] = plain_unit[index[i]] XOR mask[i]

proposed, block-shuffle and etc move bytes (mask 0 or 255: negative-positive), le and ele move
nibbles (mask 0 or 15). Units are numbered plane by plane, low plane first: unit ``k * n + q``
is bits ``bits*k .. bits*k + bits - 1`` of component q (n components); for nibbles that is the
numbering of ``concat(v & 0x0F, v >> 4)`` in docs/ciphers.md, "Nibbles of le and ele".

Such a map is recovered exactly from chosen images (:func:`from_oracle`: the base-``2^bits``
digits of every unit's index, an all-zero image for the masks, a random image as the check) or
from known pairs (:func:`from_pairs`), and decrypts on its own (:meth:`ComponentMap.decrypt`; the
map itself is :class:`ppattack.unit_map.ComponentMap`, part of the cipher contract),
so an attack needs nothing but the cipher's public ``encrypt`` to use it. The attacker learns
the unit size by mapping keys of its own (:func:`unit_bits_of`: the algorithm is public).
A cipher may turn a map into its own key material (:meth:`ppattack.cipher.Cipher.key_from_map`).

    >>> import ppattack
    >>> cipher = ppattack.create_cipher("le", block_size=2)
    >>> key = cipher.generate_key((3, 4, 4), seed=0)
    >>> found = from_oracle(lambda x: cipher.encrypt(x, key), (3, 4, 4), bits=4)
    >>> x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    >>> bool(torch.equal(found.decrypt(cipher.encrypt(x, key), (3, 4, 4)), x))
    True
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..cipher import Cipher
from ..errors import ParameterError
from ..functional import block_components
from ..keys import Shape
from ..unit_map import ComponentMap, join_units, split_units

# -- chosen images ------------------------------------------------------------------------------

def chosen_images(shape: Shape, bits: int = 8) -> torch.Tensor:
    """The chosen images of :func:`from_oracle` for units of ``bits`` bits: the base-``2^bits``
    digits of every unit's index (``ceil(log_{2^bits} u)`` images for u units), then an all-zero
    image (reveals the masks), then a fixed random image (the check)."""
    n = math.prod(shape)
    units = n * 8 // bits
    digits = max(1, math.ceil(math.log(units, 2 ** bits) - 1e-12))
    q = np.arange(units, dtype=np.int64)
    low = (1 << bits) - 1
    rows = [(q >> (bits * d)) & low for d in range(digits)]
    images = [join_units(torch.from_numpy(r.astype(np.uint8))[None], bits)[0] for r in rows]
    images.append(torch.zeros(n, dtype=torch.uint8))
    images.append(torch.from_numpy(np.random.default_rng(0).integers(0, 256, n).astype(np.uint8)))
    return torch.stack(images).view(len(images), *shape)


def from_oracle(oracle: Callable[[torch.Tensor], torch.Tensor], shape: Shape, bits: int = 8,
                cipher_shape: Shape | None = None) -> ComponentMap:
    """Recover the map exactly with ``ceil(log_{2^bits} u) + 2`` chosen images (u units).

    Args:
        oracle: encrypts a uint8 batch of plain ``shape``.
        shape: the plain shape (C, H, W); ``cipher_shape`` the ciphertexts' (default: the same).
        bits: the unit size to assume; 1 always works for the class, coarser units need fewer
            images.

    Raises:
        ParameterError: the oracle's answers are not those of one shared map of this unit size.
    """
    cipher_shape = tuple(shape) if cipher_shape is None else tuple(cipher_shape)
    chosen = chosen_images(shape, bits)
    answer = oracle(chosen).cpu()
    if tuple(answer.shape) != (len(chosen), *cipher_shape) or answer.dtype != torch.uint8 \
            or math.prod(cipher_shape) != math.prod(shape):
        raise ParameterError(f"the cipher answered {answer.dtype} {tuple(answer.shape[1:])} for uint8 "
                             f"{tuple(shape)}: it does not map components to components")
    units = split_units(answer.reshape(len(chosen), -1), bits).numpy().astype(np.int64)
    mask = units[-2]
    digits = units[:-2] ^ mask
    index = (digits << (bits * np.arange(len(digits)))[:, None]).sum(axis=0)
    found = ComponentMap(bits, index, mask.astype(np.uint8))
    if (index >= index.size).any() or len(np.unique(index)) != index.size or \
            not torch.equal(found.decrypt(answer[-1:], shape), chosen[-1:]):
        raise ParameterError(f"the cipher is not one shared map of {bits}-bit units with XOR masks "
                             "(checked on a random image): outside this attack's class")
    return found


def unit_bits_of(cipher: Cipher, shape: Shape, keys: int = 2) -> int:
    """The largest unit every key of ``cipher`` moves whole, learned from keys of the attacker's
    own (the algorithm is public) mapped bit by bit on the keyed part of the cipher.

    Raises:
        ParameterError: the cipher is outside the class (per-image keys, not a bit map).
    """
    if cipher.key_reuse != "shared":
        raise ParameterError(f"cipher '{cipher.name}' uses a key per image: one map does not "
                             "encrypt every image, so it is outside this attack's class")
    keyed = cipher.keyed_shape(shape)
    out = cipher.encrypted_shape(shape)
    bits = 8
    for seed in range(keys):
        key = cipher.generate_key(shape, seed=10_007 + seed)
        found = from_oracle(lambda z: cipher.encrypt_keyed(z, key), keyed, 1, out)
        bits = min(bits, found.coarsen().bits)
    return bits


# -- known pairs --------------------------------------------------------------------------------

def from_pairs(plain: torch.Tensor, cipher: torch.Tensor, bits: int = 8,
               masks: tuple[int, ...] | None = None) -> ComponentMap:
    """Recover the map from known pairs: match every cipher unit's values over the images.

    A unit's values XOR its value in the first image do not depend on its mask; units whose
    differences match are then paired by their first values through the allowed ``masks``
    (default: any mask). Equal evidence is assigned in order (``ambiguous`` says how often).

    Args:
        plain, cipher: uint8 batches of the same m images (the keyed side and the ciphertexts).

    Raises:
        ParameterError: some cipher unit matches no plain unit (not a shared map of these units).
    """
    m = len(plain)
    p = split_units(plain.reshape(m, -1).cpu(), bits).numpy().astype(np.int64)
    c = split_units(cipher.reshape(m, -1).cpu(), bits).numpy().astype(np.int64)
    if p.shape != c.shape or m == 0:
        raise ParameterError("known pairs must hold the same number of components on both sides")
    # Hash each unit's differences (a column of m - 1 values) to one integer.
    weights = np.random.default_rng(1).integers(1, 2 ** 61, m, dtype=np.int64)

    def digest(columns: np.ndarray) -> np.ndarray:
        return (columns * weights[:, None]).sum(axis=0)

    # A unit's evidence: its differences and its first value, hashed to one integer
    # (int64 arithmetic wraps; a collision of random hashes is negligible).
    p_hash = digest(p ^ p[:1]) * 257 + p[0]
    c_diff = digest(c ^ c[:1]) * 257
    order = np.argsort(p_hash, kind="stable")
    table = p_hash[order]
    allowed = np.arange(1 << bits) if masks is None else np.asarray(masks, np.int64)
    wanted = c_diff[None] + (c[0][None] ^ allowed[:, None])  # (masks, units)
    starts = np.searchsorted(table, wanted, side="left")
    ends = np.searchsorted(table, wanted, side="right")
    count = (ends - starts).sum(axis=0)
    if (count == 0).any():
        missing = float((count == 0).mean())
        raise ParameterError(f"{missing:.1%} of the cipher units match no plain unit: the cipher is "
                             f"not a shared map of {bits}-bit units")
    index = np.full(c.shape[1], -1, np.int64)
    taken = np.zeros(p.shape[1], bool)
    for i in np.argsort(count, kind="stable"):  # the surest first
        for lo, hi in zip(starts[:, i], ends[:, i]):
            free = [j for j in order[lo:hi] if not taken[j]]
            if free:
                index[i] = free[0]
                taken[free[0]] = True
                break
    if (index < 0).any():
        raise ParameterError("the known pairs do not single out a one-to-one map")
    mask = (c[0] ^ p[0][index]).astype(np.uint8)
    tied = count > 1
    return ComponentMap(bits, index, mask, float(tied.mean()), tied)


# -- conversion into key material ---------------------------------------------------------------

def key_material(cipher: Cipher, shape: Shape, found: ComponentMap) -> dict[str, np.ndarray] | None:
    """The cipher's key material (docs/ciphers.md, "Key material") implied by ``found``, through
    the cipher's own :meth:`~ppattack.cipher.Cipher.key_from_map`; None when the cipher does not
    say."""
    return cipher.key_from_map(shape, found)


def majority(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Most frequent non-negative integer along ``axis`` (for converting maps into keys)."""
    values = np.moveaxis(values, axis, -1)
    flat = values.reshape(-1, values.shape[-1])
    top = flat.max() + 1 if flat.size else 1
    counts = np.zeros((flat.shape[0], top), np.int64)
    np.add.at(counts, (np.repeat(np.arange(flat.shape[0]), flat.shape[1]), flat.ravel()), 1)
    return counts.argmax(axis=1).reshape(values.shape[:-1])


def repair(perm: np.ndarray) -> np.ndarray:
    """Turn a majority vote into a permutation: repeated values give way to missing ones."""
    perm = perm.copy()
    seen = set()
    missing = iter(sorted(set(range(len(perm))) - set(perm.tolist())))
    for i, v in enumerate(perm):
        if int(v) in seen:
            perm[i] = next(missing)
        seen.add(int(perm[i]))
    return perm


def in_block(shape: Shape, block_size: int, found: ComponentMap) -> tuple[np.ndarray, np.ndarray] | None:
    """A byte map seen block-vector by block-vector: the source entry k' and the flip of every
    (block, entry k), each ``(N_b, L)``; None when the map does not move whole bytes."""
    found = found.coarsen()
    if found.bits != 8:
        return None
    comps = block_components(*shape, block_size)  # (N_b, L)
    where = np.empty(comps.size, np.int64)
    where[comps.ravel()] = np.tile(np.arange(comps.shape[1]), comps.shape[0])
    return where[found.index[comps]], found.flip[comps]
