"""kpa / cpa: exact key recovery of shared-key component-map ciphers (known answers)."""
from __future__ import annotations

import pytest
import torch

import ppattack
from ppattack.component_map import chosen_images, from_oracle, from_pairs, key_material
from ppattack.keyscore import score_recovery
from ppattack.threat import ThreatView
from smooth import smooth_images

SHAPE = (3, 32, 32)
CIPHERS = [name for name in ("plain", "proposed", "block-shuffle", "block-np", "etc")
           if name in ppattack.list_ciphers()]


def make(name: str):
    cipher = ppattack.create_cipher(name, **({} if name == "plain" else {"block_size": 4}))
    return cipher, cipher.generate_key(SHAPE, seed=7)


def test_chosen_images_are_few():
    assert len(chosen_images((3, 224, 224))) == 3 + 2  # ceil(log_256 150528) digits, zero, check
    assert len(chosen_images(SHAPE)) == 2 + 2


@pytest.mark.parametrize("name", CIPHERS)
@pytest.mark.parametrize("threat", ["kpa", "cpa"])
def test_exact_key_recovery(name, threat):
    cipher, key = make(name)
    targets = smooth_images(6, 32, seed=1, cells=12)
    public = smooth_images(8, 32, seed=2, cells=12)
    extra = ({"known_pairs": (public, cipher.encrypt(public, key))} if threat == "kpa"
             else {"oracle": lambda x: cipher.encrypt(x, key)})
    view = ThreatView(threat, cipher, SHAPE, cipher.encrypt(targets, key), public, **extra)
    result = ppattack.create_attack(threat, threat=threat)(view)
    scores = score_recovery(cipher, key, result.facts.pop("recovered_key"))
    assert scores["complete"] == 1.0, scores
    assert torch.equal(result.images, targets)


def test_pairs_with_repeated_values_still_give_the_key():
    """Flat regions repeat value vectors; the majority over blocks settles them."""
    cipher, key = make("proposed")
    plain = smooth_images(8, 32, seed=3)
    plain[:, :, :3, :3] = 128  # a flat corner in every known image
    found = from_pairs(plain, cipher.encrypt(plain, key))
    assert found.ambiguous > 0
    material = key_material(cipher, SHAPE, found)
    assert all((material[k] == key.material[k]).all() for k in key.material)


def test_non_component_ciphers_are_refused():
    cipher = ppattack.create_cipher("le", block_size=4)
    key = cipher.generate_key(SHAPE, seed=0)
    with pytest.raises(ppattack.ParameterError, match="component"):
        from_oracle(lambda x: cipher.encrypt(x, key), SHAPE)
    images = smooth_images(8, 32)
    with pytest.raises(ppattack.ParameterError, match="component"):
        from_pairs(images, cipher.encrypt(images, key))


def test_signed_map_decrypts_directly():
    cipher, key = make("block-np")
    found = from_oracle(lambda x: cipher.encrypt(x, key), SHAPE)
    images = smooth_images(2, 32)
    assert torch.equal(found.decrypt(cipher.encrypt(images, key)), images)
    assert found.flip.sum() > 0
