"""The mirror score: antisymmetric by construction, and a weak cue summed into a decision."""
from __future__ import annotations

import torch

from ppattack.solvers.chirality import MirrorScore, fit_mirror_score, mirror_vote
from smooth import smooth_images


def shaded(count: int, seed: int) -> torch.Tensor:
    """Smooth random fields lit from the left: a ramp of 12 grey levels across the picture,
    small beside the fields' own spread, so that single pictures are hard to call."""
    fields = smooth_images(count, 32, seed=seed).float()
    ramp = torch.linspace(6, -6, 32).view(1, 1, 1, 32)
    return (fields + ramp).clamp(0, 255).round().to(torch.uint8)


def test_a_picture_and_its_mirror_image_get_opposite_scores():
    torch.manual_seed(0)
    model = MirrorScore(channels=3).eval()
    pictures = smooth_images(16, 32, seed=3)
    with torch.no_grad():
        assert torch.equal(model(pictures), -model(pictures.flip(-1)))
    assert mirror_vote(model, pictures).z == -mirror_vote(model, pictures.flip(-1)).z


def test_a_weak_cue_learned_from_public_pictures_decides_over_many():
    model = fit_mirror_score(shaded(400, seed=1), steps=150, seed=0, width=8)
    fresh = shaded(300, seed=2)
    as_given, mirrored = mirror_vote(model, fresh), mirror_vote(model, fresh.flip(-1))
    assert as_given.z > 3 and not as_given.mirrored, as_given
    assert mirrored.mirrored, mirrored
    assert 0.5 < as_given.agree < 1.0  # each picture alone is a weak cue; the sum is not


def test_training_is_deterministic_for_a_seed():
    public = shaded(64, seed=4)
    a, b = fit_mirror_score(public, steps=3, seed=7), fit_mirror_score(public, steps=3, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
