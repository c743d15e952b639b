"""sia-gan: scrambling inversion attack using a GAN (Madono, Tanaka, Onishi, Ogawa 2021).

K. Madono, M. Tanaka, M. Onishi, T. Ogawa: "SIA-GAN: Scrambling inversion attack using
generative adversarial network" (IEEE Access 9, 2021). Unpaired, like ``gan``: the generator
is trained on the victim ciphertexts (the targets and the provider's encrypted training
images), the discriminator sees the attacker's public plain images (threat model
``coa+public``). The generator's first stage has a separate spectrally-normalised
conv for every block position (see :mod:`ppattack.learning.nets.sagan`), so it can invert a key that
differs per position but not per image; a SAGAN-style discriminator whose last map is flattened
into its logit (the authors' code: it sees where a feature is; summed over positions, SAGAN's
head, its seeds 1 and 2 inverted the pictures on ``plain``), hinge loss, Adam betas
(0, 0.9) with lr 1e-4 (G) and 4e-4 (D), batch 64, 100 epochs (the ``paper`` budget), random
horizontal flips of the real images (as the authors: their crop is commented out).

The authors' code adds to the generator's loss the cross-entropy (weight 1) of a classifier
trained jointly on the generated images with the labels of the encrypted images: on here by
default (``class_weight`` 1.0, see :mod:`ppattack.attacks.gan`), fed by the provider's labelled
encrypted training images (``ThreatView.training_labels``; the targets have no labels).

Departures, recorded in the result's facts: the attacker cannot augment the victim's images
before encryption (it only holds their ciphertexts), so only the real images are flipped (a
mirror adds nothing a generated image lacks; a crop after zero padding of the real images
alone would: black borders, which the discriminator then learns to look for);
the joint classifier is a small CNN of width ``c_width`` (theirs: PyramidNet-110), and their
total-variation term (weight 1e-3) on the adapted features is not used; where one conv per
block position would be too large the shared conv + position embedding variant is used.
Added (``polarity``, from :class:`~ppattack.attacks.gan.GAN`): restorations a prior fitted on
the public images calls negatives are negated as a set (a generator keeps the sign of the
correlation it starts with; some seeds restore every picture's negative).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ppattack.attacks.gan import GAN
from ppattack.errors import ParameterError
from ppattack.learning.nets.sagan import HEADS, SAGANDiscriminator, SIAGenerator, adaptation_parameters
from ppattack.threat import ThreatView

#: Largest per-position adaptation stage (weights) before the shared variant is used.
MAX_POSITIONWISE_WEIGHTS = 32_000_000


class SIAGAN(GAN):
    """SIA-GAN: position-adaptive generator, SAGAN discriminator, hinge loss (Madono et al. 2021).

    Defaults (``paper`` budget): generator decoder width 64, discriminator width 128 (widths
    128/256/512/1024), Adam betas (0, 0.9), lr 1e-4 (G) / 4e-4 (D), batch 64, 100 epochs over
    the ciphertexts, random flips of the real images; ``adaptation="auto"``: one conv
    per block position unless that exceeds 32M weights, then shared conv + position embedding;
    joint classifier term weight 1.0, classifier width 64 (``c_width``); ``d_head="flatten"``:
    the discriminator's last map flattened into its logit, as the authors' code (``"sum"``:
    SAGAN's sum over positions).
    ``cifar``: discriminator width 32, classifier width 16, 2,500 steps, the generator's
    weights averaged (``g_average`` 0.995): its positive control passes on the CIFAR-10 copy in
    under 30 minutes on two CPU cores. ``quick``: widths 16 / 16, classifier width 8, batch 16,
    150 steps (a smoke-test budget).
    """

    name = "sia-gan"
    paper = ("Madono, Tanaka, Onishi, Ogawa: SIA-GAN: Scrambling inversion attack using generative "
             "adversarial network (IEEE Access 2021)")
    threat_models = ("coa+public",)
    # what each budget changes; the defaults are the paper's (gan's parameters, declared again
    # below where SIA-GAN's differ)
    budgets = {
        # smoke: a handful of steps that exercise the code (the cipher conformance kit), no more
        "smoke": {"g_width": 4, "d_width": 4, "steps": 3, "epochs": None, "batch_size": 4,
                  "augment": False, "c_width": 4},
        "quick": {"g_width": 16, "d_width": 16, "steps": 150, "epochs": None, "batch_size": 16, "c_width": 8},
        # cifar: the smallest of the measured budgets whose control passes on two CPU cores in 30
        # minutes (median of seeds 0-2: 0.915 at 2,500 steps with the weight average, 0.900
        # without; benchmarks/RESULTS.md)
        "cifar": {"d_width": 32, "steps": 2500, "epochs": None, "c_width": 16, "g_average": 0.995},
        "paper": {},
    }
    betas = (0.0, 0.9)

    def __init__(self, *, g_width: int | None = 64, d_width: int = 128, epochs: int | float | None = 100,
                 lr_g: float = 1e-4, lr_d: float = 4e-4, augment: bool = True, class_weight: float = 1.0,
                 adaptation: str = "auto", d_head: str = "flatten", **kwargs: Any):
        # gan's parameters whose paper values differ here, declared again with SIA-GAN's
        super().__init__(g_width=g_width, d_width=d_width, epochs=epochs, lr_g=lr_g, lr_d=lr_d,
                         augment=augment, class_weight=class_weight, **kwargs)
        self.store_params(locals())
        if self.adaptation not in ("auto", "per-position", "shared"):
            raise ParameterError(f"sia-gan adaptation must be auto, per-position or shared, got {self.adaptation!r}")
        if self.d_head not in HEADS:
            raise ParameterError(f"sia-gan d_head must be one of {', '.join(HEADS)}, got {self.d_head!r}")

    def shared(self, view: ThreatView) -> bool:
        if self.adaptation != "auto":
            return self.adaptation == "shared"
        size = adaptation_parameters(self.unit(view), view.plain_shape[1:], channels=view.plain_shape[0])
        return size > MAX_POSITIONWISE_WEIGHTS

    def build_generator(self, view: ThreatView) -> nn.Module:
        return SIAGenerator(self.unit(view), view.plain_shape[1:], width=self.g_width or 64,
                            shared=self.shared(view), channels=view.plain_shape[0])

    def build_discriminator(self, view: ThreatView) -> nn.Module:
        return SAGANDiscriminator(self.d_width, view.plain_shape[0], head=self.d_head,
                                  image_size=tuple(view.plain_shape[1:]))

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Hinge: mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """Hinge (generator side): -mean(D(G(c)))."""
        return -fake.mean()

    def generator_facts(self, view: ThreatView) -> dict[str, Any]:
        return {"block_size": self.unit(view), "discriminator_head": self.d_head,
                "adaptation": "shared conv + position embedding" if self.shared(view) else "one conv per block position",
                "augmentation": "horizontal flip of the real images" if self.augment else "none"}
