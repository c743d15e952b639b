"""Positive controls of the non-learned attacks (issue 27): on a cipher that does nothing to a
part, fr and jigsaw leave that part alone, so their control on ``plain`` restores it exactly.

fr folds components (``min(v, 255 - v)``) only where a cipher may invert them: a cipher that
declares ``component_permutation`` has nothing to fold. jigsaw learns from keys of its own that
no block moves under a cipher whose keys change nothing (``Structure.identity``): there is no
puzzle, even for pieces that no edge could place (noise).
"""
from __future__ import annotations

import pytest
import torch

import ppattack
from ppattack.harness import RunConfig, run
from ppattack.solvers.structure import probe
from ppattack.threat import ThreatView
from smooth import smooth_images

SHAPE = (3, 32, 32)


def noise(count: int = 2, seed: int = 5) -> torch.Tensor:
    """Random uint8 images: no edge tells where their 4x4 pieces belong."""
    return torch.randint(0, 256, (count, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def attack_view(cipher_name: str, attack: str, images: torch.Tensor, threat: str = "coa", **params):
    cipher = ppattack.create_cipher(cipher_name, **params)
    key = cipher.generate_key(SHAPE, seed=1)
    ciphertexts = cipher.encrypt(images, key)
    public = smooth_images(8, SHAPE[1], seed=2) if threat == "coa+public" else None
    view = ThreatView(threat, cipher, SHAPE, ciphertexts, public)
    options = {"block_size": 4} if attack == "jigsaw" else {}
    return ciphertexts, ppattack.create_attack(attack, threat=threat, **options)(view)


@pytest.mark.parametrize("threat", ["coa", "coa+public"])
def test_fr_restores_plain_exactly(threat):
    """Old behaviour: the fold min(v, 255 - v) * 2 on plain (SSIM ~0.2 on CIFAR)."""
    images = noise()
    _, result = attack_view("plain", "fr", images, threat)
    assert torch.equal(result.images, images)
    assert result.facts["solver"] == "none"


def test_fr_does_not_fold_a_cipher_that_only_moves_components():
    """proposed moves components and inverts none: fr keeps its ciphertexts (folding them only
    destroys values); an explicit ``solver=fold`` still folds."""
    images = noise()
    ciphertexts, result = attack_view("proposed", "fr", images, block_size=4)
    assert torch.equal(result.images, ciphertexts)
    cipher = ppattack.create_cipher("proposed", block_size=4)
    folded = ppattack.create_attack("fr", threat="coa", solver="fold")(ThreatView("coa", cipher, SHAPE, ciphertexts))
    assert torch.equal(folded.images, ppattack.attacks.fr.fold(ciphertexts))


@pytest.mark.parametrize("name, solver", [("le", "fold"), ("pe", "edge")])
def test_fr_keeps_its_solver_where_components_may_be_inverted(name, solver):
    """Ciphers that invert components keep the fold (le) or the edge solver (pe)."""
    params = {"block_size": 4} if name == "le" else {}
    _, result = attack_view(name, "fr", smooth_images(1, SHAPE[1], seed=3), **params)
    assert result.facts["solver"] == solver


def test_structure_says_when_keys_change_nothing():
    assert probe(ppattack.create_cipher("plain"), SHAPE).identity
    for name in ("block-shuffle", "le", "proposed", "etc"):
        assert not probe(ppattack.create_cipher(name, block_size=4), SHAPE).identity, name


@pytest.mark.parametrize("threat", ["coa", "coa+public"])
def test_jigsaw_leaves_plain_pieces_in_place(threat):
    """Old behaviour: a 64-piece puzzle solved from scratch on plain (SSIM ~0.7 on CIFAR; on noise
    the pieces land anywhere). Own keys show that no block moves: the pieces stay in place."""
    images = noise()
    _, result = attack_view("plain", "jigsaw", images, threat)
    assert torch.equal(result.images, images)
    assert result.facts["blocks_move"] is False and result.facts["largest_cluster_mean"] == 1.0
    assert result.recovered_key[0]["block_perm"] == list(range(64))


def test_jigsaw_still_refuses_keyed_ciphers_that_keep_blocks_in_place():
    with pytest.raises(ppattack.ParameterError, match="keeps its blocks in place"):
        attack_view("le", "jigsaw", noise(1), block_size=4)


@pytest.mark.parametrize("cipher, attack, threat", [("etc", "fr", "coa+public"), ("proposed", "fr", "coa"),
                                                     ("etc", "jigsaw", "coa"), ("proposed", "jigsaw", "coa+public")])
def test_the_harness_control_passes(cipher, attack, threat):
    """The positive control the audit reports (the same attack on plain) passes: SSIM 1.0."""
    document = run(RunConfig(cipher=cipher, attack=attack, threat=threat, dataset="samples", preset="quick",
                             limit=2, accuracy=False, control=True, params={"block_size": 4})).document
    control = document["control"]
    assert control["run"] and control["passed"] and control["ssim"] == pytest.approx(1.0), control
