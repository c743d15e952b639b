"""gan: GAN-based ciphertext-only attack (Sirichotedumrong and Kiya 2020).

W. Sirichotedumrong, H. Kiya: "Visual security evaluation of learnable image encryption
methods against ciphertext-only attacks" (APSIPA ASC 2020). A generator maps ciphertexts to
images and a discriminator tells its outputs from real plain images; the two sets are
UNPAIRED: the generator is trained on the victim ciphertexts the attacker holds (the targets
and, as in the papers, the provider's encrypted training images, which the cloud receives to
train the classifier), the discriminator's real images are the attacker's public images
(threat model ``coa+public``).
Nothing ties an output to its input but the generator's architecture: it is block-wise (one
MLP per block, shared by all positions), so it can learn the inverse of a key that every block
shares (le) but not a block scrambling. DCGAN training: BCE loss, Adam lr 2e-4, betas
(0.5, 0.999), batch 64, 25 epochs (the ``paper`` budget).

The generic unpaired adversarial loop lives here; ``sia-gan`` subclasses it with its own
networks, losses and optimisers. Optional in both (``class_weight`` > 0; on by default in
``sia-gan`` only, as in its authors' code): a classifier (:mod:`ppattack.learning.nets.aux_classifier`,
width ``c_width``) trained jointly on the generated images with the labels the provider sent with
its encrypted training images (``ThreatView.training_labels``), its cross-entropy added to the
generator's loss; the targets carry no labels and feed only the adversarial term.

Positive control: nothing in the loss ties an output to its input, so on ``plain`` the
generator matches distributions, not images, and only enough data pins it to the identity.
Measured (benchmarks/RESULTS.md): with 5,100 CIFAR-10 ciphertexts the pixel-wise generator
restores ``plain`` (SSIM 0.95), the block-wise one settles near 0.76; on the nine photographs
of ``samples`` adversarial training walks away even from a generator started at the identity
(benchmarks/gan_control.py). An unpaired GAN's failure on a cipher proves less than ``itn``'s.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ppattack.attack import AttackResult
from ppattack.errors import ParameterError, ShapeError
from ppattack.images.image_set import image_buffer
from ppattack.runtime.digest import tensor_digest
from ppattack.runtime.distributed import broadcast_parameters, shard
from ppattack.learning.nets.aux_classifier import AuxClassifier
from ppattack.learning.nets.dcgan import BlockwiseGenerator, DCGANDiscriminator
from ppattack.learning.trained_attack import TrainedAttack
from ppattack.learning.training import batch_indices, random_flip, to_signed, to_uint8
from ppattack.learning.weight_average import WeightAverage
from ppattack.solvers.polarity import fit_polarity_prior, polarity_vote
from ppattack.threat import ThreatView

log = logging.getLogger(__name__)


class GAN(TrainedAttack):
    """Unpaired GAN attack with a block-wise generator (Sirichotedumrong and Kiya 2020).

    Defaults (``paper`` budget): generator MLP width ``max(3B^2, 64)``, discriminator width 64,
    BCE loss, Adam lr 2e-4 betas (0.5, 0.999), batch 64, 25 epochs over the ciphertexts.
    ``quick``: discriminator width 16, batch 32, 200 steps (a smoke-test budget: far too
    small for an unpaired GAN to converge; see the module docstring). ``audit``: the cifar
    budget's networks for 250 steps, the smallest whose control passes at CIFAR scale. Block size B: the
    cipher's, or 1 (pixel-wise) when it has none. ``class_weight``: weight of the joint
    classifier's cross-entropy in the generator loss (0: off, gan's default); ``c_width``: that
    classifier's width. ``polarity`` (default on, a ppattack addition): the restorations are
    negated as a set when a prior fitted on the public images judges them negatives (an
    unpaired generator keeps the sign it starts with: some seeds restore every negative).
    ``g_average`` (default 0: off, a ppattack addition): restore with an exponential average
    of the generator's weights of this decay (:mod:`ppattack.learning.weight_average`).
    """

    name = "gan"
    paper = ("Sirichotedumrong and Kiya: Visual security evaluation of learnable image encryption "
             "methods against ciphertext-only attacks (APSIPA ASC 2020)")
    threat_models = ("coa+public",)
    uses_training_ciphertexts = True
    # what each budget changes; the defaults are the paper's (the constructor's signature)
    budgets = {
        # smoke: a handful of steps that exercise the code (the cipher conformance kit), no more
        "smoke": {"g_width": 8, "d_width": 4, "steps": 3, "epochs": None, "batch_size": 4, "c_width": 4},
        "quick": {"d_width": 16, "steps": 200, "epochs": None, "batch_size": 32, "c_width": 16},
        "cifar": {"steps": 3000, "epochs": None, "c_width": 32},
        # audit: the smallest budget whose positive control passes on the CIFAR-10 copy (median
        # of seeds 0-2: 0.925 at 250 steps, benchmarks/RESULTS.md); ppattack audit trains gan here
        "audit": {"steps": 250, "epochs": None, "c_width": 32},
        "paper": {},
    }
    #: Adam betas (DCGAN's).
    betas = (0.5, 0.999)

    def __init__(self, *, block_size: int | None = None, g_width: int | None = None,
                 d_width: int = 64, steps: int | None = None, epochs: int | float | None = 25,
                 batch_size: int = 64, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 augment: bool = False, class_weight: float = 0.0,
                 c_width: int = 64, polarity: bool = True, g_average: float = 0.0, **common: Any):
        super().__init__(**common)
        self.store_params(locals())  # block_size None: the cipher's; g_width None: max(3B^2, 64)
        self.check_budget(self.lr_g, self.lr_d)
        if min(self.d_width, self.batch_size, 1 if self.g_width is None else self.g_width) < 1:
            raise ParameterError(f"{self.name}: g_width, d_width and batch_size must be >= 1")
        if not (self.class_weight >= 0 and math.isfinite(self.class_weight)) or self.c_width < 1:
            raise ParameterError(f"{self.name}: class_weight must be finite and >= 0, c_width >= 1")
        if not 0.0 <= self.g_average < 1.0:
            raise ParameterError(f"{self.name}: g_average (the decay of the generator's weight average) "
                                 f"must be in [0, 1), got {self.g_average}")
        self.generator: nn.Module | None = None

    # -- what a subclass changes -------------------------------------------------------------------
    def unit(self, view: ThreatView) -> int:
        """The generator's block size: the parameter, else the cipher's, else 1 (pixels)."""
        b = self.block_size or view.cipher.block_size or 1
        _, h, w = view.plain_shape
        if h % b or w % b:
            raise ShapeError(f"{self.name}: image size {h}x{w} is not a multiple of block size {b}")
        return b

    def build_generator(self, view: ThreatView) -> nn.Module:
        return BlockwiseGenerator(self.unit(view), self.g_width, channels=view.plain_shape[0])

    def initial_generator(self, view: ThreatView) -> nn.Module:
        """The generator adversarial training starts from (default: freshly initialised).

        A hook for experiments, e.g. benchmarks/gan_control.py starts from the identity."""
        return self.build_generator(view).to(self.device)

    def after_step(self, step: int, generator: nn.Module) -> None:
        """Called after training step ``step`` (1-based) with the generator in train mode (the
        trained weights, not their average); a hook for experiments (benchmarks/control_curve.py
        scores checkpoints). Must leave the generator's parameters, buffers and mode as it found
        them. Default: nothing."""

    def build_discriminator(self, view: ThreatView) -> nn.Module:
        return DCGANDiscriminator(self.d_width, view.plain_shape[0], view.plain_shape[1])

    def optimizers(self, generator: nn.Module, discriminator: nn.Module):
        return (torch.optim.Adam(generator.parameters(), lr=self.lr_g, betas=self.betas),
                torch.optim.Adam(discriminator.parameters(), lr=self.lr_d, betas=self.betas))

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """BCE with logits: real -> 1, fake -> 0."""
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) +
                F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """Non-saturating BCE: fake -> 1."""
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))

    def generator_facts(self, view: ThreatView) -> dict[str, Any]:
        return {"block_size": self.unit(view)}

    # -- training ----------------------------------------------------------------------------------
    def fit(self, view: ThreatView) -> None:
        if tuple(view.ciphertexts.shape[1:]) != tuple(view.plain_shape):
            raise ShapeError(f"{self.name} maps ciphertexts of the plain shape {tuple(view.plain_shape)}; "
                             f"got {tuple(view.ciphertexts.shape[1:])}")
        if view.public_images is None or len(view.public_images) == 0:
            raise ParameterError(f"{self.name} needs public images (coa+public)")
        # Unpaired training reads the victim ciphertexts: they are part of the identity.
        pool = self.ciphertext_pool(view)
        labels = self.pool_labels(view) if self.class_weight > 0 else None
        identity = {"ciphertexts": tensor_digest(pool)}
        if labels is not None:
            identity["labels"] = tensor_digest(labels)
        state = self.trained(view, lambda: self._train(view, pool, labels), **identity)
        self.generator = self.build_generator(view).to(self.device)
        self.generator.load_state_dict(state["generator"])
        self.generator.eval()
        self._train_facts = state["facts"]

    @staticmethod
    def ciphertext_pool(view: ThreatView) -> torch.Tensor:
        """Every ciphertext under the victim key the view holds (CPU): the targets, then the
        provider's encrypted training images when the view has them (a large pool is backed by a
        temporary file: :func:`ppattack.images.image_set.image_buffer`)."""
        parts = [view.ciphertexts.cpu()]
        if view.training_ciphertexts is not None:
            parts.append(view.training_ciphertexts.cpu())
        if any(part.dtype != torch.uint8 for part in parts):
            return torch.cat(parts)
        pool = image_buffer((sum(len(part) for part in parts), *parts[0].shape[1:]))
        start = 0
        for part in parts:
            pool[start:start + len(part)] = part
            start += len(part)
        return pool

    @staticmethod
    def pool_labels(view: ThreatView) -> torch.Tensor | None:
        """int64 labels aligned with :meth:`ciphertext_pool` (CPU): -1 for the targets (the
        attacker has no labels for them), then ``view.training_labels``; None when the view holds
        no labelled ciphertexts."""
        if view.training_ciphertexts is None or view.training_labels is None or len(view.training_labels) == 0:
            return None
        if len(view.training_labels) != len(view.training_ciphertexts):
            raise ShapeError(f"{len(view.training_labels)} training labels for "
                             f"{len(view.training_ciphertexts)} training ciphertexts")
        unlabelled = torch.full((len(view.ciphertexts),), -1, dtype=torch.long)
        return torch.cat([unlabelled, view.training_labels.cpu().long()])

    def _train(self, view: ThreatView, ciphertexts: torch.Tensor,
               labels: torch.Tensor | None = None) -> dict[str, Any]:
        device = self.device
        generator_rng = torch.Generator().manual_seed(self.seed)
        g = self.initial_generator(view)
        d = self.build_discriminator(view).to(device)
        classes = int(labels.max()) + 1 if labels is not None else 0
        # the joint classifier (class_weight > 0 and labels): trained by its own Adam with the
        # generator's hyperparameters, on the generated images only
        c = AuxClassifier(max(classes, 2), self.c_width, view.plain_shape[0]).to(device) if classes else None
        # Under torchrun each rank takes a shard of every batch and gradients are averaged
        # explicitly (the discriminator runs twice per backward pass, which DDP's hooks forbid).
        broadcast_parameters(g)
        broadcast_parameters(d)
        opt_g, opt_d = self.optimizers(g, d)
        opt_c = None
        if c is not None:
            broadcast_parameters(c)
            opt_c = torch.optim.Adam(c.parameters(), lr=self.lr_g, betas=self.betas)
            c.train()
        scaler_g, scaler_d = self.grad_scaler(), self.grad_scaler()
        public = view.public_images.cpu()
        steps = self.training_steps(len(ciphertexts), min(self.batch_size, len(ciphertexts)))
        fakes = batch_indices(len(ciphertexts), self.batch_size, generator_rng)
        reals = batch_indices(len(public), self.batch_size, generator_rng)
        g.train()
        d.train()
        average: WeightAverage | None = None  # with g_average: starts at the first step's weights
        # Losses stay on the device (no host sync per step); read once, after the loop.
        last = torch.full((3,), math.nan, device=device)
        with self.progress(f"adversarial training ({view.cipher.name})", steps) as advance:
            for step in range(1, steps + 1):
                real = public[next(reals)]  # global batches, the same on every rank
                if self.augment:  # a mirror only: see random_flip
                    real = random_flip(real, generator_rng)
                real = to_signed(shard(real, self.batch_size).to(device))
                index = shard(next(fakes), self.batch_size)
                source = to_signed(ciphertexts[index].to(device))
                # discriminator step
                with self.autocast():
                    fake = g(source)
                    loss_d = self.discriminator_loss(d(real).float(), d(fake.detach()).float())
                self.optimizer_step(loss_d, scaler_d, (opt_d, d))
                # generator step (+ the joint classifier's cross-entropy on the labelled outputs)
                with self.autocast():
                    loss_adv = self.generator_loss(d(fake).float())
                    loss_c = torch.zeros((), device=device)
                    loss_g = loss_adv
                    if c is not None:
                        target = labels[index].to(device)  # -1: a target, no label
                        summed = F.cross_entropy(c(fake).float(), target, ignore_index=-1, reduction="sum")
                        loss_c = summed / (target >= 0).sum().clamp_min(1)
                        loss_g = loss_adv + self.class_weight * loss_c
                joint = [(opt_c, c)] if opt_c is not None else []  # the classifier learns from loss_g too
                self.optimizer_step(loss_g, scaler_g, (opt_g, g), *joint)
                last = torch.stack([loss_d.detach(), loss_adv.detach(), loss_c.detach()]).float()
                if self.g_average > 0:
                    if average is None:
                        average = WeightAverage(g, self.g_average)
                    average.update(g)
                self.after_step(step, g)
                advance()
        final_d, final_g, final_c = last.tolist()
        log.info("%s: %d steps, final losses D %.3f G %.3f", self.name, steps, final_d, final_g)
        # final_loss_g: the adversarial term alone; final_loss_class: the classifier's term
        facts = {"steps": steps, "final_loss_d": final_d, "final_loss_g": final_g,
                 "ciphertexts": len(ciphertexts), "target_ciphertexts": len(view.ciphertexts),
                 "public_images": len(public),
                 "generator_parameters": sum(p.numel() for p in g.parameters()),
                 "classification_loss": self.classification_fact(c, labels),
                 "generator_weights": (f"exponential average, decay {self.g_average:g}" if average is not None
                                       else "the last step's"),
                 **self.generator_facts(view)}
        if c is not None:
            facts["final_loss_class"] = final_c
        weights = average.state_dict(g) if average is not None else g.state_dict()
        return {"generator": {k: v.cpu() for k, v in weights.items()}, "facts": facts}

    def classification_fact(self, classifier: nn.Module | None, labels: torch.Tensor | None) -> str:
        """Whether the joint classifier's term was used, in words (for the result's facts)."""
        if classifier is None:
            return ("not used (class_weight 0)" if self.class_weight == 0 else
                    "not used: the view holds no labelled ciphertexts")
        labelled = int((labels >= 0).sum())
        return (f"used: weight {self.class_weight:g}, classifier width {self.c_width}, "
                f"{labelled} labelled training ciphertexts")

    # -- attack ------------------------------------------------------------------------------------
    def reconstruct(self, view: ThreatView) -> AttackResult:
        """The generator over the targets, in chunks whose activations (about 8 x decoder width
        per pixel) fit the memory (:meth:`forward_in_chunks`; results do not depend on the
        chunking); with ``polarity`` (the default), negated as a whole when the polarity prior
        fitted on the public images (:mod:`ppattack.solvers.polarity`) judges the restorations
        to be negatives (``facts.polarity``)."""
        _, h, w = view.plain_shape
        most = 2048 if self.device.type == "cuda" else 256
        chunks = self.forward_in_chunks(self.generator, view.ciphertexts, 8 * (self.g_width or 64) * h * w, most)
        restored = torch.cat([to_uint8(out) for _, out in chunks])
        facts = dict(self._train_facts)
        if self.polarity:
            vote = polarity_vote(fit_polarity_prior(view.public_images.cpu()), restored)
            if vote.negative:
                restored = 255 - restored
            facts["polarity"] = {"negated": vote.negative, "margin": vote.margin,
                                 "agreeing": vote.agreeing, "pictures": vote.pictures}
        return AttackResult(restored.to(view.ciphertexts.device), facts=facts)
