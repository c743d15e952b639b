"""Keys: generation, files (0600, atomic, never shown), and validation that names the field."""
from __future__ import annotations

import json
import stat

import numpy as np
import pytest

import ppattack
from ppattack.errors import KeyFileError, ShapeError
from ppattack.rng import KeyRNG

SHAPE = (3, 8, 8)


def proposed_key(seed=0):
    return ppattack.create_cipher("proposed", block_size=4).generate_key(SHAPE, seed=seed)


def test_seeded_keys_are_deterministic_and_unseeded_keys_differ():
    a, b = proposed_key(5), proposed_key(5)
    assert np.array_equal(a.material["block_perm"], b.material["block_perm"])
    cipher = ppattack.create_cipher("proposed", block_size=16)
    draws = {tuple(cipher.generate_key((3, 64, 64)).material["block_perm"]) for _ in range(4)}
    assert len(draws) == 4  # 16! keys: four CSPRNG draws collide with negligible probability


def test_csprng_draws_are_valid():
    rng = KeyRNG(None)
    assert rng.secure
    assert sorted(rng.permutation(100).tolist()) == list(range(100))
    values = rng.integers(6, (1000,))
    assert values.min() >= 0 and values.max() <= 5 and len(set(values.tolist())) == 6


def test_key_repr_hides_material():
    key = proposed_key()
    assert "block_perm" not in repr(key) and "<hidden>" in repr(key)


def test_material_is_read_only():
    key = proposed_key()
    with pytest.raises(ValueError):
        key.material["block_perm"][0] = 1


def test_save_load_round_trip_with_0600(tmp_path):
    key = proposed_key(1)
    path = tmp_path / "k.json"
    ppattack.save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == "ppattack-key/1" and document["shape"] == [3, 8, 8]
    assert document["params"] == {"block_size": 4}
    loaded = ppattack.load_key(path)
    assert loaded.cipher == "proposed" and loaded.shape == SHAPE
    for name in ("block_perm", "pixel_perm"):
        assert np.array_equal(loaded.material[name], key.material[name])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_hand_written_key_works(tmp_path):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"format": "ppattack-key/1", "cipher": "proposed",
                                "params": {"block_size": 4}, "shape": [3, 8, 8],
                                "material": {"block_perm": [3, 2, 1, 0], "pixel_perm": [0, 1, 2, 3]}}))
    key = ppattack.load_key(path)
    assert key.material["block_perm"].tolist() == [3, 2, 1, 0]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("material"), "field 'material' is missing"),
    (lambda d: d.update(format="other/2"), "field 'format'"),
    (lambda d: d.update(cipher="nope"), "unknown cipher 'nope'"),
    (lambda d: d.update(shape=[3, 8]), "field 'shape'"),
    (lambda d: d.update(shape=[3, 10, 10]), "not a multiple of block_size 4"),
    (lambda d: d.update(params={"block_size": 3}), "block_size must be an even integer"),
    (lambda d: d["material"].update(block_perm=[0, 0, 1, 2]), "material.block_perm' is not a permutation"),
    (lambda d: d["material"].update(block_perm=[0, 1, 2]), "material.block_perm' has shape \\[3\\]"),
    (lambda d: d["material"].update(pixel_perm=[0.5, 1, 2, 3]), "material.pixel_perm' must hold integers"),
    (lambda d: d["material"].pop("pixel_perm"), "material.pixel_perm' is missing"),
    (lambda d: d["material"].update(extra=[1]), "material.extra' is not a key field"),
    (lambda d: d.update(comment="mine"), "field 'comment' is not a field of a key file"),
    (lambda d: d.update(params={"block_size": "4"}), "field 'params.block_size' is '4', which the cipher reads as 4"),
    (lambda d: d.update(params={"block_size": 4.0}), "field 'params.block_size' is 4.0"),
])
def test_invalid_key_fields_are_named(tmp_path, change, message):
    document = proposed_key().to_json()
    change(document)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError, match=message):
        ppattack.load_key(path)


def test_corrupt_and_missing_key_files(tmp_path):
    path = tmp_path / "k.json"
    path.write_text('{"format": "ppattack-key/1", "cipher"')
    with pytest.raises(KeyFileError, match="not valid JSON"):
        ppattack.load_key(path)
    with pytest.raises(KeyFileError, match="does not exist"):
        ppattack.load_key(tmp_path / "missing.json")


def test_key_for_another_shape_or_cipher_is_refused():
    import torch

    key = proposed_key()
    cipher = ppattack.create_cipher("proposed", block_size=4)
    with pytest.raises(ShapeError, match="key was made for"):
        cipher.encrypt(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), key)
    with pytest.raises(KeyFileError, match="the key is for cipher 'proposed'"):
        ppattack.create_cipher("proposed", block_size=2).encrypt(torch.zeros(1, *SHAPE, dtype=torch.uint8), key)
    with pytest.raises(ShapeError, match="uint8"):
        cipher.encrypt(torch.zeros(1, *SHAPE), key)
