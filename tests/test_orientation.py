"""The picture's turn (issue: keyrec's blind spots): the quarter-turn prior learnt from public
images, and keyrec on shared-key plugins whose restorations it must set upright."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ppattack
from ppattack.data import assign_roles, load_dataset
from ppattack.metrics import ssim
from ppattack.solvers.pieces import turn
from ppattack.solvers.uprightness import fit_turn_prior, turn_vote
from ppattack.threat import ThreatView

sys.path.insert(0, str(Path(__file__).parent / "plugins" / "ppattack-shared-maps"))
from ppattack_shared_maps import ColumnMask, TileQuarter  # noqa: E402


def cifar(shared_cifar: Path, targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``targets`` CIFAR-10 test images and 1,000 public (training) images."""
    roles = assign_roles(load_dataset(f"folder:{shared_cifar}", 32, max_test=targets), targets)
    return roles.targets.tensor(), roles.public[:1000].tensor()


def test_the_turn_prior_sets_single_cifar_pictures_upright(shared_cifar):
    """Fitted on 500 public pictures, it picks the upright one of the four quarter turns of most
    held-out pictures (chance: 25 %), and is blind to the mirror by construction (fitted on
    both): a picture and its mirror image get nearly the same verdict."""
    targets, public = cifar(shared_cifar, 500)
    prior = fit_turn_prior(public)
    right = (prior.log_probabilities(targets).argmax(1) == 0).double().mean()
    assert right > 0.45, float(right)  # measured: 0.55
    mirrored = (prior.log_probabilities(targets.flip(-1)).argmax(1) == 0).double().mean()
    assert abs(float(mirrored - right)) < 0.05


def test_the_turn_vote_finds_the_turn_of_a_set(shared_cifar):
    """64 pictures all turned alike: the vote names the turn that brings them back, by a margin."""
    targets, public = cifar(shared_cifar, 64)
    prior = fit_turn_prior(public)
    for k in range(4):
        vote = turn_vote(prior, turn(targets, (4 - k) % 4))  # turned back by k
        assert vote.turn == k and vote.margin > 10 and vote.pictures == 64


@pytest.mark.parametrize("cipher", [TileQuarter(), ColumnMask()], ids=["tile-quarter", "column-mask"])
def test_keyrec_restores_plugins_whose_picture_may_turn_upright(shared_cifar, cipher):
    """Two shared-key plugins that declare nothing about turns: tiles scrambled and each turned
    a quarter (the picture turned a quarter is a second valid key), and tiles scrambled under a
    negative-positive bit per pixel column (never turned, but keyrec cannot know). From 256 CIFAR
    ciphertexts the pictures come back exactly (no piece with a line inverted alone: a column
    mask's class is chosen by how coherently the restored units correlate), up to at most a
    left-right mirror, which the quick budget leaves open; the turn vote is in the facts."""
    plain, public = cifar(shared_cifar, 256)
    key = cipher.generate_key((3, 32, 32), seed=5)
    view = ThreatView("coa+public", cipher, (3, 32, 32), cipher.encrypt(plain, key), public)
    result = ppattack.create_attack("keyrec", budget="quick")(view)
    assert torch.equal(result.images, plain) or torch.equal(result.images, plain.flip(-1))
    assert result.facts["turn_vote"]["pictures"] == 256 and result.facts["turn_vote"]["margin"] > 10
    assert "mirror_vote" not in result.facts  # the quick budget spends nothing on the mirror


def test_the_maps_of_a_turned_picture_are_the_turned_maps():
    """What makes the prior judge content and nothing else: turning the picture and turning its
    maps (gradients exchanged for odd turns) give the same features, for every turn."""
    from ppattack.solvers.uprightness import _candidates

    pictures = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    candidates = _candidates(pictures)
    for k in range(4):
        assert torch.allclose(_candidates(turn(pictures, k))[:, 0], candidates[:, k], atol=1e-5)
