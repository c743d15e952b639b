"""jigsaw: single-ciphertext puzzle solving with per-block states (known answers on smooth images)."""
from __future__ import annotations

import pytest
import torch

import ppattack
from ppattack.solvers.keyscore import score_recovery
from ppattack.threat import ThreatView
from smooth import smooth_images


def solve(name: str, threat: str = "coa", size: int = 48, block: int = 8, count: int = 2, public=None):
    cipher = ppattack.create_cipher(name, **({} if name == "plain" else {"block_size": block}))
    key = cipher.generate_key((3, size, size), seed=4)
    plain = smooth_images(count, size, seed=9, cells=4)
    view = ThreatView(threat, cipher, (3, size, size), cipher.encrypt(plain, key), public)
    result = ppattack.create_attack("jigsaw", threat=threat, block_size=block)(view)
    return cipher, key, plain, result


def test_jigsaw_restores_plain_scrambled_blocks():
    cipher, key, plain, result = solve("proposed")
    scores = score_recovery(cipher, key, result.recovered_key)
    assert scores["pixel_perm"] == 1.0 and scores["direct"] >= 0.9, scores
    assert result.facts["global_ambiguity"] == "none"


def test_jigsaw_plain_control():
    _, _, plain, result = solve("plain")
    assert torch.equal(result.images, plain)


def test_jigsaw_with_96_states_joins_neighbours():
    """etc: blocks turned, flipped, inverted and colour-shuffled; neighbours are judged up to
    the turn and recolouring of the whole picture, which edges cannot settle."""
    cipher, key, plain, result = solve("etc", count=1)
    scores = score_recovery(cipher, key, result.recovered_key)
    assert result.facts["states_per_block"] == 96
    assert scores["neighbour"] >= 0.9 and scores["direct_modulo_global"] >= 0.9, scores
    assert result.facts["global_ambiguity"] == "unresolved (coa)"


def test_jigsaw_refuses_ciphers_without_block_scrambling():
    cipher = ppattack.create_cipher("block-shuffle", block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=0)
    view = ThreatView("coa", cipher, (3, 32, 32), cipher.encrypt(smooth_images(1, 32), key))
    with pytest.raises(ppattack.ParameterError, match="not supported"):
        ppattack.create_attack("jigsaw", threat="coa")(view)


@pytest.mark.parametrize("name, channels", [("etc", 3), ("etc-gray", 1)])
def test_unit_transform_key_parts_name_the_candidate_undone(name, channels):
    """``UnitTransforms.key_parts(t)`` is the key whose block transform candidate ``t`` undoes:
    jigsaw turns its solved block states into the cipher's key with it."""
    b = 4
    cipher = ppattack.create_cipher(name, block_size=b)
    shape = (3, b, b)  # etc: one block; etc-gray: its (1, 4, 12) keyed image holds three blocks
    transforms = cipher.unit_transforms(shape)
    blocks = cipher.key_fields(shape)["block_perm"].shape[0]
    z = torch.randint(0, 256, (1, *cipher.keyed_shape(shape)), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    for t in range(transforms.count):
        parts = transforms.key_parts(torch.full((blocks,), t).numpy())
        key = ppattack.Key(name, cipher.params, shape, {"block_perm": torch.arange(blocks).numpy(), **parts})
        encrypted = cipher.encrypt_keyed(z, key)
        pieces = encrypted.view(1, channels, b, -1, b).permute(0, 3, 1, 2, 4)[0]  # (blocks, C, b, b)
        undone = transforms.undo(pieces.contiguous(), t)
        assert torch.equal(undone, z.view(1, channels, b, -1, b).permute(0, 3, 1, 2, 4)[0]), t
