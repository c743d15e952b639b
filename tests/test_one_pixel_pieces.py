"""Shared-key ciphers whose pieces are single pixels: keyrec, kpa and the conformance kit.

Two third-party ciphers, written here against the cipher contract only (no attack knows them):

- ``plane-mix``: one permutation of the 8 bit planes of every value, then one plane (the top
  one, by default) flipped at the pixels a key bit marks: a shared map of 1-bit units that
  moves and inverts bits;
- ``shared-np``: negative-positive per component (``v`` or ``255 - v``) with one key for
  every image, as public negative-positive code does when it reuses its key.

Both keep every pixel where it is, so the pieces keyrec finds are 1x1: no edge inside a piece
to turn, a mask of their own for every piece.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

import ppattack
from ppattack.cipher import KeyField, log2_factorial
from ppattack.data import load_dataset
from ppattack.harness import key_recovery_scores
from ppattack.metrics import score
from ppattack.registry import CIPHERS
from ppattack.solvers.structure import probe
from ppattack.testing import CipherConformance
from ppattack.threat import ThreatView


class PlaneMix(ppattack.Cipher):
    """One shared permutation of the 8 bit planes, then one plane flipped where a key bit says."""

    name = "plane-mix"
    paper = "test fixture"

    def __init__(self, plane: int = 7) -> None:
        super().__init__(plane=int(plane))
        self.plane = int(plane)

    def key_fields(self, shape):
        return {"planes": KeyField((8,), permutation=True), "flips": KeyField((shape[1] * shape[2],), high=2)}

    def key_space_bits(self, shape):
        return log2_factorial(8) + shape[1] * shape[2]

    def compile(self, key, device):
        _, h, w = key.shape
        flips = torch.as_tensor(np.array(key.material["flips"]), device=device).view(1, 1, h, w)
        planes = [int(p) for p in key.material["planes"]]  # cipher plane k holds plain plane planes[k]
        return planes, (flips << self.plane).to(torch.uint8)

    def apply(self, x, plan, inverse):
        planes, mask = plan
        out = torch.zeros_like(x)
        if inverse:
            y = x ^ mask
            for k, p in enumerate(planes):
                out |= ((y >> k) & 1) << p
            return out
        for k, p in enumerate(planes):
            out |= ((x >> p) & 1) << k
        return out ^ mask


class SharedNegPos(ppattack.Cipher):
    """Negative-positive per component (v or 255 - v) with one key for every image."""

    name = "shared-np"
    paper = "test fixture"

    def __init__(self) -> None:
        super().__init__()

    def key_fields(self, shape):
        return {"invert": KeyField(tuple(shape), high=2)}

    def key_space_bits(self, shape):
        return float(np.prod(shape))

    def compile(self, key, device):
        return (torch.as_tensor(np.array(key.material["invert"]), device=device) * 255).to(torch.uint8)[None]

    def apply(self, x, plan, inverse):
        return x ^ plan


# -- the ciphers' structure, as keys of the attacker's own show it -----------------------------------

def test_probe_sees_one_pixel_pieces_that_move_their_units_alike():
    """Both ciphers keep pixels whole and in place, move every pixel's units alike and invert
    them by a mask of each pixel's own: plane-mix on its flipped plane only (units 21..23 of a
    pixel: the top plane of its three channels), shared-np on every byte. The plane
    permutations of own keys never stop adding maps of a piece: too many to list as states."""
    planes = probe(PlaneMix(), (3, 8, 8))
    assert (planes.bits, planes.block, planes.moves, planes.shared) == (1, 1, False, False)
    assert planes.sources_shared and planes.states is None
    assert np.flatnonzero(planes.own_masks).tolist() == [21, 22, 23]
    negative = probe(SharedNegPos(), (3, 8, 8))
    assert (negative.bits, negative.block, negative.moves, negative.shared) == (8, 1, False, False)
    assert negative.sources_shared and negative.own_masks.all()


# -- keyrec ----------------------------------------------------------------------------------------

def test_keyrec_restores_negative_positive_with_one_key_exactly():
    """shared-np on the embedded photographs (16x16, 144 ciphertexts): every pixel's inversion
    from the signs of its correlations with its neighbours, the key exact."""
    dataset = load_dataset("samples", 16)
    plain, public = dataset.test.tensor(), dataset.train.tensor()
    cipher, shape = SharedNegPos(), (3, 16, 16)
    key = cipher.generate_key(shape, seed=5)
    view = ThreatView("coa+public", cipher, shape, cipher.encrypt(plain, key), public)
    result = ppattack.create_attack("keyrec")(view)
    assert result.facts["structure"]["block"] == 1
    assert key_recovery_scores(cipher, key, None, result.recovered_map)["decrypts_exactly"] == 1.0
    assert torch.equal(result.images, plain)


@lru_cache(maxsize=1)
def cifar(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """300 CIFAR-10 test images (targets) and 300 training images (public), at 16x16."""
    dataset = load_dataset(f"folder:{root}", 16, max_train=600, max_test=300)
    return dataset.test.tensor(), dataset.train[300:].tensor()


def test_keyrec_restores_a_bit_plane_mix_but_its_noise_like_low_planes(shared_cifar):
    """plane-mix on CIFAR-10 (16x16, 300 ciphertexts): the five high planes and the flips come
    back exactly, so no value is off by more than 7; the three low planes are close to noise
    in natural images and their order is left to statistics that barely tell them apart."""
    plain, public = cifar(shared_cifar)
    cipher, shape = PlaneMix(), (3, 16, 16)
    key = cipher.generate_key(shape, seed=5)
    view = ThreatView("coa+public", cipher, shape, cipher.encrypt(plain, key), public)
    result = ppattack.create_attack("keyrec")(view)
    assert (result.images.int() - plain.int()).abs().max() <= 7
    assert score(result.images, plain, None)["ssim"]["mean"] >= 0.99  # measured 0.9996


# -- kpa -------------------------------------------------------------------------------------------

def test_kpa_says_how_many_known_pairs_a_bit_map_needs():
    """8 known pairs leave every 1-bit unit of plane-mix tied: kpa names the count to pass."""
    dataset = load_dataset("samples", 16)
    known, targets = dataset.train.tensor()[:8], dataset.test.tensor()[:4]
    cipher, shape = PlaneMix(), (3, 16, 16)
    key = cipher.generate_key(shape, seed=0)
    view = ThreatView("kpa", cipher, shape, cipher.encrypt(targets, key), known,
                      known_pairs=(known, cipher.encrypt(known, key)))
    with pytest.raises(ppattack.ParameterError, match=r"needs 56 .*: pass --param known_pairs=56$"):
        ppattack.create_attack("kpa", threat="kpa")(view)


@pytest.fixture
def plane_mix_installed(monkeypatch):
    """plane-mix in the cipher registry for this test, as if a plugin had installed it."""
    monkeypatch.setitem(CIPHERS._load(), PlaneMix.name, PlaneMix)


def test_kpa_gets_the_pairs_it_needs_from_the_harness_by_default(plane_mix_installed):
    """A run with the default settings grants kpa the pairs it asks for (56 for 1-bit units
    at 16x16, not 8): the key is exact."""
    from ppattack.harness import RunConfig, run

    document = run(RunConfig(cipher="plane-mix", attack="kpa", threat="kpa", accuracy=False, limit=8,
                             params={"image_size": 16})).document
    assert document["attack"]["key_recovery"]["decrypts_exactly"] == 1.0
    assert document["metrics"]["ssim"]["mean"] == pytest.approx(1.0)
    facts = document["attack"]["facts"]
    assert facts["pairs_needed"] == 56 and facts["pairs_used"] == 56


def test_too_few_known_pairs_are_a_one_line_error_with_status_2(plane_mix_installed, cli_runner, tmp_path):
    from ppattack.cli import cli

    result = cli_runner.invoke(cli, ["run", "--cipher", "plane-mix", "--attack", "kpa", "--threat", "kpa",
                                     "--param", "image_size=16", "--param", "known_pairs=8", "--limit", "4",
                                     "--no-accuracy", "--out", str(tmp_path / "run")])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: kpa: 8 known pairs") and lines[0].endswith("--param known_pairs=56")


# -- the conformance kit ----------------------------------------------------------------------------

class TestOnePixelCiphers(CipherConformance):
    cases = [(PlaneMix, {}, (3, 16, 16)), (SharedNegPos, {}, (3, 16, 16))]
