"""kpa: exact key recovery from known (plain, cipher) pairs (docs/attacks.md, "kpa / cpa key recovery").

A shared-key cipher whose keyed part moves bits, nibbles or bytes and XORs a mask maps every
image the same way (:mod:`ppattack.solvers.component_map`). The attacker learns the unit size and the
masks that occur from keys of its own (the algorithm is public), then every cipher unit's values
over the known images single out its source unit (:func:`ppattack.solvers.component_map.from_pairs`):
with few pairs some units tie, so pairs are added (8, 16, ...) until none does or all are used.
The attack asks the harness for the pairs its class needs (:func:`pairs_needed`: 8 for byte
maps at 32x32, 64 for bit maps) and, given fewer that leave units tied, says how many to grant.
The victim ciphertexts are decrypted with the cipher's key material when the cipher derives it
from a map (:meth:`ppattack.cipher.Cipher.key_from_map`, a majority over blocks that absorbs
the last ties), else with the map itself.
"""
from __future__ import annotations

from typing import Any

import math

import numpy as np
import torch

from ppattack.attack import Attack, AttackResult
from ppattack.cipher import Cipher
from ppattack.solvers.component_map import ComponentMap, from_oracle, from_pairs, repair, unit_bits_of
from ppattack.errors import ParameterError, PPAttackError
from ppattack.keys import Key, Shape
from ppattack.solvers.structure import compose_map, probe, unit_layout
from ppattack.threat import ThreatView


#: Known pairs tried first (enough for the byte maps of small images).
FIRST_PAIRS = 8
#: The pairs needed, in multiples of what independent uniform unit values would need: natural
#: images repeat values (a high bit is the same in neighbouring pixels of most images), so ties
#: outlast that bound. Measured on CIFAR-10 at 32x32 with a shared map of 1-bit units: 16 pairs (the bound)
#: leave 55 % of the units tied, 32 leave 3.5 %, 64 leave 0.2 % and decrypt exactly.
PAIRS_MARGIN = 4


def pairs_needed(cipher: Cipher, shape: Shape) -> int:
    """Known pairs that single out every unit of ``cipher``'s map on natural images of ``shape``.

    A pair gives each unit ``bits`` bits of evidence, and a cipher unit's source is one of
    ``units x masks`` candidates: ``ceil(log2(units x masks) / bits)`` pairs would do for
    independent uniform values; :data:`PAIRS_MARGIN` times that, at least :data:`FIRST_PAIRS`
    (byte maps: 8 at 32x32, 12 at 224x224; bit maps: 64 at 32x32, 88 at 224x224).

    Raises:
        ParameterError: the cipher is outside the class (:func:`ppattack.solvers.component_map.unit_bits_of`).
    """
    bits = unit_bits_of(cipher, shape)
    units = math.prod(cipher.keyed_shape(shape)) * 8 // bits
    candidates = units * len(occurring_masks(cipher, shape, bits))
    return max(FIRST_PAIRS, PAIRS_MARGIN * math.ceil(math.log2(candidates) / bits))


def occurring_masks(cipher: Cipher, shape: Shape, bits: int, keys: int = 2) -> tuple[int, ...]:
    """The unit masks that keys of the attacker's own put on units of ``bits`` bits."""
    seen: set[int] = set()
    for seed in range(keys):
        key = cipher.generate_key(shape, seed=20_011 + seed)
        found = from_oracle(lambda z: cipher.encrypt_keyed(z, key), cipher.keyed_shape(shape), bits,
                            cipher.encrypted_shape(shape))
        seen.update(int(m) for m in np.unique(found.mask))
    return tuple(sorted(seen))


def settle_by_structure(cipher: Cipher, shape: Shape, found: ComponentMap, plain: torch.Tensor,
                        encrypted: torch.Tensor) -> ComponentMap:
    """Units the known images could not tell apart, settled where every key of the cipher
    shares one in-piece map (learned from own keys): each piece's source is its units'
    majority (or itself, where keys never move pieces), the shared map each position's majority
    over the pieces, counting the units the evidence singled out. Kept only if it still
    explains every known pair; otherwise ``found`` is returned unchanged."""
    structure = probe(cipher, shape)
    if not structure.shared or found.bits != structure.bits:
        return found
    keyed = tuple(cipher.keyed_shape(shape))
    piece, local = unit_layout(keyed, structure.block, found.bits)
    pieces, length = piece.max() + 1, local.max() + 1
    src_piece = np.empty((pieces, length), np.int64)
    src_local = np.empty((pieces, length), np.int64)
    mask = np.empty((pieces, length), np.int64)
    src_piece[piece, local] = piece[found.index]
    src_local[piece, local] = local[found.index]
    mask[piece, local] = found.mask
    # Votes of the units the evidence singled out (a tied unit votes only where none is sure).
    sure = np.ones((pieces, length), bool)
    if found.tied is not None:
        sure[piece, local] = ~found.tied
    cells = repair(_vote(src_piece, sure, axis=1)) if structure.moves else np.arange(pieces)
    shared_src = repair(_vote(src_local, sure, axis=0))
    shared_mask = _vote(mask, sure, axis=0)
    settled = compose_map(keyed, structure.block, found.bits, [shared_src] * pieces,
                          [shared_mask] * pieces, cells)
    if not torch.equal(settled.encrypt(plain), encrypted):
        return found
    return ComponentMap(settled.bits, settled.index, settled.mask.astype(np.uint8), 0.0)


def _vote(values: np.ndarray, sure: np.ndarray, axis: int) -> np.ndarray:
    """Majority of ``values`` along ``axis`` counting the sure entries (all, where none is)."""
    top = int(values.max()) + 1
    weight = np.where(sure, 1.0, 1e-6)
    v, w = np.moveaxis(values, axis, -1), np.moveaxis(weight, axis, -1)
    counts = np.zeros((*v.shape[:-1], top))
    np.put_along_axis(counts, v, 0, axis=-1)
    rows = np.indices(v.shape[:-1]).reshape(v.ndim - 1, -1)
    for k in range(v.shape[-1]):
        np.add.at(counts, (*rows, v[..., k].reshape(-1)), w[..., k].reshape(-1))
    return counts.argmax(axis=-1)


def decrypt_with(view: ThreatView, found: ComponentMap, facts: dict[str, Any]) -> AttackResult:
    """Decrypt the victim ciphertexts with the key material implied by ``found`` (when the
    cipher derives it) or with ``found`` itself; the map and material go to the harness."""
    cipher, shape = view.cipher, tuple(view.plain_shape)
    material = cipher.key_from_map(shape, found)
    if material is None:
        images = cipher.undo_keyless_step(found.decrypt(view.ciphertexts, cipher.keyed_shape(shape)))
        return AttackResult(images, facts, recovered_map=found)
    images = cipher.decrypt(view.ciphertexts, Key(cipher.name, cipher.params, shape, material))
    return AttackResult(images, facts, recovered_key={part: np.asarray(v).tolist() for part, v in material.items()},
                        recovered_map=found)


class KPA(Attack):
    """Known-plaintext key recovery for shared-key ciphers that move and flip bits (exact)."""

    name = "kpa"
    paper = ("docs/attacks.md 'kpa / cpa key recovery'; Li and Lo: optimal quantitative cryptanalysis "
             "of permutation-only multimedia ciphers against plaintext attacks (Signal Processing 2011)")
    threat_models = ("kpa",)

    def known_pairs_wanted(self, cipher: Cipher, shape: Shape) -> int | None:
        """:func:`pairs_needed`; None for a cipher outside the class (reconstruct says why)."""
        try:
            return pairs_needed(cipher, shape)
        except PPAttackError:
            return None

    def reconstruct(self, view: ThreatView) -> AttackResult:
        if view.known_pairs is None or not len(view.known_pairs[0]):
            raise ParameterError("kpa needs known (plain, cipher) pairs (threat model kpa)")
        cipher, shape = view.cipher, tuple(view.plain_shape)
        bits = unit_bits_of(cipher, shape)
        masks = occurring_masks(cipher, shape, bits)
        plain, encrypted = view.known_pairs
        keyed = cipher.keyless_step(plain.cpu())
        found, used = None, 0
        while used < len(plain):
            used = min(len(plain), max(FIRST_PAIRS, 2 * used))
            found = from_pairs(keyed[:used], encrypted[:used].cpu(), bits, masks)
            if found.ambiguous == 0:
                break
        needed = pairs_needed(cipher, shape)
        facts = {"pairs_used": used, "pairs_needed": needed, "unit_bits": bits, "ambiguous_units": found.ambiguous}
        if found.ambiguous:
            found = settle_by_structure(cipher, shape, found, keyed[:used], encrypted[:used].cpu())
            facts["settled_by_structure"] = found.ambiguous == 0
        if found.ambiguous and len(plain) < needed:
            raise ParameterError(f"kpa: {len(plain)} known pairs leave {found.ambiguous:.1%} of the {bits}-bit "
                                 f"units tied; this cipher needs {needed} at this image size: pass "
                                 f"--param known_pairs={needed}")
        return decrypt_with(view, found, facts)
