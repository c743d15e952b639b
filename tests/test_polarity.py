"""The polarity prior (is a set of restored pictures negatives?) and the unpaired GANs' use of it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ppattack
from ppattack.attacks.gan import GAN
from ppattack.data import assign_roles, load_dataset
from ppattack.harness import threat_view
from ppattack.solvers.polarity import fit_polarity_prior, polarity_features, polarity_vote


@pytest.fixture(scope="module")
def roles():
    return assign_roles(load_dataset("samples", 32), 16)


def test_every_feature_is_odd_under_negation(roles):
    """The prior compares a picture with its negative: each feature of ``255 - x`` mirrors x's
    about a fixed point (layout and mean about 1/2, skew about 0)."""
    x = roles.public.tensor()[:32].float()
    f, g = polarity_features(x), polarity_features(255.0 - x)
    side = f.shape[1] - 2 * x.shape[1]  # layout features, then means, then skews
    assert torch.allclose(f[:, :side + 3] + g[:, :side + 3], torch.ones_like(f[:, :side + 3]), atol=1e-5)
    assert torch.allclose(f[:, side + 3:], -g[:, side + 3:], atol=1e-3)


def test_the_vote_tells_a_set_from_its_negatives(roles):
    prior = fit_polarity_prior(roles.public.tensor())
    targets = roles.targets.tensor()
    upright, negated = polarity_vote(prior, targets), polarity_vote(prior, 255 - targets)
    assert not upright.negative and negated.negative
    assert upright.margin < 0 < negated.margin
    assert negated.margin == pytest.approx(-upright.margin, rel=1e-5)
    assert upright.pictures == negated.pictures == len(targets)
    assert 0.5 <= upright.agreeing <= 1.0


def test_the_prior_prefers_a_held_out_picture_to_its_negative(shared_cifar):
    """Fitted on 1000 CIFAR pictures, it prefers the picture over its negative for most held-out
    pictures (measured 0.83), and a hundred pictures' vote is decisive both ways."""
    data = load_dataset(f"folder:{shared_cifar}", 32, max_train=1000, max_test=1000)
    split = assign_roles(data, 1000)
    prior = fit_polarity_prior(split.public.tensor()[:1000])
    held_out = split.targets.tensor()
    preferred = prior.scores(held_out) > prior.scores(255 - held_out)
    assert preferred.float().mean() > 0.7
    assert not polarity_vote(prior, held_out[:100]).negative
    assert polarity_vote(prior, 255 - held_out[:100]).negative


class Negation(nn.Module):
    """A generator that restores every picture's negative (signed pixels: -x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


@pytest.mark.parametrize("polarity", [True, False])
def test_gan_negates_restorations_the_prior_calls_negatives(roles, polarity):
    cipher = ppattack.create_cipher("plain")
    key = cipher.generate_key((3, 32, 32), seed=0)
    plain = roles.targets.tensor()
    view = threat_view("coa+public", cipher, key, cipher.encrypt(plain, key), roles, dataset="samples")
    for generator, expected in ((Negation(), plain if polarity else 255 - plain), (nn.Identity(), plain)):
        attack = GAN(budget="smoke", seed=0, device="cpu", threat="coa+public", polarity=polarity)
        attack.generator, attack._train_facts = generator, {}
        result = attack.reconstruct(view)
        assert torch.equal(result.images, expected)
        if polarity:
            assert result.facts["polarity"]["negated"] is isinstance(generator, Negation)
        else:
            assert "polarity" not in result.facts
