"""jigsaw: single-ciphertext puzzle solving with per-block states (known answers on smooth images)."""
from __future__ import annotations

import pytest
import torch

import ppattack
from ppattack.keyscore import score_recovery
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
    scores = score_recovery(cipher, key, result.facts.pop("recovered_key"))
    assert scores["pixel_perm"] == 1.0 and scores["direct"] >= 0.9, scores
    assert result.facts["global_ambiguity"] == "none"


def test_jigsaw_plain_control():
    _, _, plain, result = solve("plain")
    assert torch.equal(result.images, plain)


def test_jigsaw_with_96_states_joins_neighbours():
    """etc: blocks turned, flipped, inverted and colour-shuffled; neighbours are judged up to
    the turn and recolouring of the whole picture, which edges cannot settle."""
    cipher, key, plain, result = solve("etc", count=1)
    scores = score_recovery(cipher, key, result.facts.pop("recovered_key"))
    assert result.facts["states_per_block"] == 96
    assert scores["neighbour"] >= 0.9 and scores["direct_modulo_global"] >= 0.9, scores
    assert result.facts["global_ambiguity"] == "unresolved (coa)"


def test_jigsaw_refuses_ciphers_without_block_scrambling():
    cipher = ppattack.create_cipher("block-shuffle", block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=0)
    view = ThreatView("coa", cipher, (3, 32, 32), cipher.encrypt(smooth_images(1, 32), key))
    with pytest.raises(ppattack.ParameterError, match="not supported"):
        ppattack.create_attack("jigsaw", threat="coa")(view)
