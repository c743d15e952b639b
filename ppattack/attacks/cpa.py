"""cpa: exact key recovery with chosen images (attacks.md, "kpa / cpa key recovery").

For a shared-key cipher that only moves (and possibly inverts) components, ``ceil(log_256 n)``
chosen images whose values are the base-256 digits of every component's index reveal where each
component goes; one all-zero image reveals the inversions and one random image checks the
answer (:func:`ppattack.component_map.from_oracle`). The map becomes the cipher's key material
(proposed, block-shuffle, block-np, etc, plain) and the victim ciphertexts are decrypted.
"""
from __future__ import annotations

from ppattack.attack import Attack, AttackResult
from ppattack.attacks.kpa import decrypt_with
from ppattack.component_map import chosen_images, from_oracle
from ppattack.errors import ParameterError
from ppattack.threat import ThreatView


class CPA(Attack):
    """Chosen-plaintext key recovery for shared-key component-permutation ciphers (exact)."""

    name = "cpa"
    paper = "attacks.md 'kpa / cpa key recovery'"
    threat_models = ("cpa",)

    def reconstruct(self, view: ThreatView) -> AttackResult:
        if view.oracle is None:
            raise ParameterError("cpa needs an encryption oracle (threat model cpa)")
        if view.cipher.key_reuse != "shared":
            raise ParameterError(f"cpa recovers shared keys; cipher '{view.cipher.name}' uses a "
                                 "key per image")
        shape = tuple(view.plain_shape)
        found = from_oracle(lambda x: view.oracle(x.to(view.device)), shape)
        return decrypt_with(view, found, {"chosen_images": len(chosen_images(shape))})
