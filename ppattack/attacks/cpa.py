"""cpa: exact key recovery with chosen images (docs/attacks.md, "kpa / cpa key recovery").

For a shared-key cipher whose keyed part moves units of b bits (bytes, nibbles, bits) and XORs
a mask, ``ceil(log_{2^b} u)`` chosen images whose units are the base-``2^b`` digits of every
unit's index reveal where each unit goes, an all-zero image reveals the masks and a random
image checks the answer (:func:`ppattack.solvers.component_map.from_oracle`; Li and Lo's bound for
permutation-only ciphers). The unit size b is learned first from keys of the attacker's own, so
at most ``ceil(log2(8n)) + 2`` images are asked for (n components). Ciphers outside the class
(a key per image, ciphertexts that are not 8-bit, a keyless step that chosen plain images
cannot drive, a check image that does not decrypt) are reported as such.
"""
from __future__ import annotations

import torch

from ppattack.attack import Attack, AttackResult
from ppattack.attacks.kpa import decrypt_with
from ppattack.solvers.component_map import chosen_images, from_oracle, unit_bits_of
from ppattack.errors import ParameterError
from ppattack.threat import ThreatView


class CPA(Attack):
    """Chosen-plaintext key recovery for shared-key ciphers that move and flip bits (exact)."""

    name = "cpa"
    paper = ("docs/attacks.md 'kpa / cpa key recovery'; Li and Lo: optimal quantitative cryptanalysis "
             "of permutation-only multimedia ciphers against plaintext attacks (Signal Processing 2011)")
    threat_models = ("cpa",)

    def reconstruct(self, view: ThreatView) -> AttackResult:
        if view.oracle is None:
            raise ParameterError("cpa needs an encryption oracle (threat model cpa)")
        cipher, shape = view.cipher, tuple(view.plain_shape)
        bits = unit_bits_of(cipher, shape)
        chosen = chosen_images(shape, bits)
        if tuple(cipher.keyed_shape(shape)) != shape or not torch.equal(cipher.keyless_step(chosen), chosen):
            raise ParameterError(f"cipher '{cipher.name}' transforms images by a keyless step before the "
                                 "key acts, so chosen plain images cannot set the keyed part's input: "
                                 "outside this attack's class (use keyrec or kpa)")
        found = from_oracle(lambda x: view.oracle(x.to(view.device)), shape, bits,
                            cipher.encrypted_shape(shape))
        return decrypt_with(view, found, {"chosen_images": len(chosen), "unit_bits": bits})
