"""kpa: exact key recovery from known (plain, cipher) pairs (attacks.md, "kpa / cpa key recovery").

A shared-key cipher that only moves (and possibly inverts) components maps every image the same
way, so each cipher component's values over a few known images single out its source component
(:func:`ppattack.component_map.from_pairs`). The map is turned into the cipher's key material by
majority over blocks (proposed, block-shuffle, block-np, etc, plain), which absorbs components
that the known images could not tell apart, and the victim ciphertexts are decrypted with the
cipher itself; for other signed component maps the recovered map decrypts directly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ppattack.attack import Attack, AttackResult
from ppattack.component_map import SignedMap, from_pairs, key_material
from ppattack.errors import ParameterError
from ppattack.keys import Key
from ppattack.threat import ThreatView


def decrypt_with(view: ThreatView, found: SignedMap, facts: dict[str, Any]) -> AttackResult:
    """Decrypt the victim ciphertexts with the cipher's key implied by ``found`` (or ``found``)."""
    cipher, shape = view.cipher, tuple(view.plain_shape)
    material = key_material(cipher, shape, found)
    if material is None:
        return AttackResult(found.decrypt(view.ciphertexts), facts)
    images = cipher.decrypt(view.ciphertexts, Key(cipher.name, cipher.params, shape, material))
    facts["recovered_key"] = {part: np.asarray(v).tolist() for part, v in material.items()}
    return AttackResult(images, facts)


class KPA(Attack):
    """Known-plaintext key recovery for shared-key component-permutation ciphers (exact)."""

    name = "kpa"
    paper = "attacks.md 'kpa / cpa key recovery'"
    threat_models = ("kpa",)

    def reconstruct(self, view: ThreatView) -> AttackResult:
        if view.known_pairs is None or not len(view.known_pairs[0]):
            raise ParameterError("kpa needs known (plain, cipher) pairs (threat model kpa)")
        if view.cipher.key_reuse != "shared":
            raise ParameterError(f"kpa recovers shared keys; cipher '{view.cipher.name}' uses a "
                                 "key per image")
        plain, cipher = view.known_pairs
        if tuple(cipher.shape[1:]) != tuple(plain.shape[1:]) or cipher.dtype != plain.dtype:
            raise ParameterError(f"cipher '{view.cipher.name}' changes the image format: "
                                 "not a component map")
        found = from_pairs(plain, cipher)
        facts = {"pairs_used": min(8, len(plain)), "ambiguous_components": found.ambiguous}
        return decrypt_with(view, found, facts)
