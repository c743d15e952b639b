"""kpa / cpa: exact key recovery of every shared-key cipher that moves and flips bits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ppattack
from ppattack.solvers.component_map import ComponentMap, chosen_images, from_oracle, from_pairs, key_material
from ppattack.harness import key_recovery_scores
from ppattack.threat import ThreatView
from smooth import smooth_images

SHAPE = (3, 32, 32)
# Every shared-key cipher of the class: kpa/cpa name none of them.
CIPHERS = [name for name in ("plain", "proposed", "block-shuffle", "block-np", "etc", "le", "ele")
           if name in ppattack.list_ciphers()]


def make(name: str):
    cipher = ppattack.create_cipher(name, **({} if name == "plain" else {"block_size": 4}))
    return cipher, cipher.generate_key(SHAPE, seed=7)


def test_chosen_images_are_few():
    assert len(chosen_images((3, 224, 224))) == 3 + 2  # ceil(log_256 150528) digits, zero, check
    assert len(chosen_images(SHAPE)) == 2 + 2
    assert len(chosen_images(SHAPE, bits=4)) == 4 + 2  # 6144 nibbles: ceil(log_16 6144) = 4
    assert len(chosen_images(SHAPE, bits=1)) == 15 + 2  # ceil(log2(8 * 3072)) = 15


def test_chosen_images_hold_every_unit_index():
    """Hand-worked: 1x1x2 image, nibble units 0..3 (low plane first): digits of 0,1,2,3."""
    images = chosen_images((1, 1, 2), bits=4)
    # units (low c0, low c1, high c0, high c1) = (0, 1, 2, 3): one base-16 digit.
    assert images[0].flatten().tolist() == [0x20, 0x31]
    assert images[1].flatten().tolist() == [0, 0]


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
    scores = key_recovery_scores(cipher, key, result.recovered_key,
                                 result.recovered_map)
    assert scores["complete"] == 1.0 and scores["decrypts_exactly"] == 1.0, scores
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


def test_nibble_ciphers_are_no_byte_maps_but_nibble_maps():
    cipher = ppattack.create_cipher("le", block_size=4)
    key = cipher.generate_key(SHAPE, seed=0)
    with pytest.raises(ppattack.ParameterError, match="not one shared map of 8-bit units"):
        from_oracle(lambda x: cipher.encrypt(x, key), SHAPE)
    images = smooth_images(8, 32)
    with pytest.raises(ppattack.ParameterError, match="match no plain unit"):
        from_pairs(images, cipher.encrypt(images, key))
    found = from_oracle(lambda x: cipher.encrypt(x, key), SHAPE, bits=4)
    assert found.bits == 4 and set(found.mask.tolist()) <= {0, 15}
    assert found.as_bits().coarsen().bits == 4  # nibbles move whole, bytes do not


def test_map_units_round_trip():
    rng = np.random.default_rng(0)
    bit_map = ComponentMap(1, rng.permutation(8 * 12), rng.integers(0, 2, 8 * 12).astype(np.uint8))
    x = torch.randint(0, 256, (3, 3, 2, 2), dtype=torch.uint8)
    assert torch.equal(bit_map.decrypt(bit_map.encrypt(x)), x)
    byte_map = ComponentMap.signed(rng.permutation(12), rng.integers(0, 2, 12))
    back = byte_map.as_bits().coarsen()
    assert back.bits == 8 and (back.index == byte_map.index).all() and (back.mask == byte_map.mask).all()
    assert torch.equal(byte_map.as_bits().encrypt(x), byte_map.encrypt(x))


@pytest.mark.parametrize("name,reason", [("pe", "key per image"), ("block-ffx", "components")])
@pytest.mark.parametrize("threat", ["kpa", "cpa"])
def test_ciphers_outside_the_class_are_reported(name, threat, reason):
    if name not in ppattack.list_ciphers():
        pytest.skip(f"{name} not installed")
    cipher = ppattack.create_cipher(name)
    key = cipher.generate_key(SHAPE, seed=0)
    public = smooth_images(8, 32, seed=2)
    extra = ({"known_pairs": (public, cipher.encrypt(public, key))} if threat == "kpa"
             else {"oracle": lambda x: cipher.encrypt(x, key)})
    view = ThreatView(threat, cipher, SHAPE, cipher.encrypt(public[:2], key), public, **extra)
    with pytest.raises(ppattack.ParameterError, match=reason):
        ppattack.create_attack(threat, threat=threat)(view)


def test_cpa_refuses_a_keyless_step_it_cannot_drive():
    cipher = ppattack.create_cipher("etc-gray", block_size=4)
    key = cipher.generate_key(SHAPE, seed=0)
    view = ThreatView("cpa", cipher, SHAPE, cipher.encrypt(smooth_images(2, 32), key),
                      oracle=lambda x: cipher.encrypt(x, key))
    with pytest.raises(ppattack.ParameterError, match="keyless step"):
        ppattack.create_attack("cpa", threat="cpa")(view)


def test_signed_map_decrypts_directly():
    cipher, key = make("block-np")
    found = from_oracle(lambda x: cipher.encrypt(x, key), SHAPE)
    images = smooth_images(2, 32)
    assert torch.equal(found.decrypt(cipher.encrypt(images, key)), images)
    assert found.flip.sum() > 0


def test_kpa_settles_ties_of_a_shared_nibble_map_by_its_structure():
    """le with known images that share a flat corner: units there tie on the evidence; the map
    every block shares (learned from own keys) settles them, and decryption is exact."""
    cipher, key = make("le")
    known = smooth_images(8, 32, seed=3)
    known[:, :, :8, :8] = 128
    targets = smooth_images(4, 32, seed=4)
    view = ThreatView("kpa", cipher, SHAPE, cipher.encrypt(targets, key), known,
                      known_pairs=(known, cipher.encrypt(known, key)))
    result = ppattack.create_attack("kpa", threat="kpa")(view)
    assert result.facts["ambiguous_units"] > 0 and result.facts["settled_by_structure"] is True
    scores = key_recovery_scores(cipher, key, None, result.recovered_map)
    assert scores["decrypts_exactly"] == 1.0
    assert torch.equal(result.images, targets)
