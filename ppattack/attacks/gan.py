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
(0.5, 0.999), batch 64, 25 epochs (the ``paper`` preset).

The generic unpaired adversarial loop lives here; ``sia-gan`` subclasses it with its own
networks, losses and optimisers.

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

from ppattack.attack import Attack, AttackResult
from ppattack.cache import tensor_digest
from ppattack.distributed import average_gradients, broadcast_parameters, shard
from ppattack.errors import ParameterError, ShapeError
from ppattack.nets.dcgan import BlockwiseGenerator, DCGANDiscriminator
from ppattack.threat import ThreatView
from ppattack.training import (autocast, batch_indices, cpu_bf16_supported, crop_flip, grad_scaler,
                               progress, to_signed, to_uint8)

log = logging.getLogger(__name__)


class GAN(Attack):
    """Unpaired GAN attack with a block-wise generator (Sirichotedumrong and Kiya 2020).

    Defaults (``paper`` preset): generator MLP width ``max(3B^2, 64)``, discriminator width 64,
    BCE loss, Adam lr 2e-4 betas (0.5, 0.999), batch 64, 25 epochs over the ciphertexts.
    ``quick``: discriminator width 16, batch 32, 200 steps (a smoke-test budget: far too
    small for an unpaired GAN to converge; see the module docstring). Block size B: the
    cipher's, or 1 (pixel-wise) when it has none.
    """

    name = "gan"
    paper = ("Sirichotedumrong and Kiya: Visual security evaluation of learnable image encryption "
             "methods against ciphertext-only attacks (APSIPA ASC 2020)")
    threat_models = ("coa+public",)
    uses_training_ciphertexts = True
    presets = {
        # smoke: a handful of steps that exercise the code (the cipher conformance kit), no more
        "smoke": {"g_width": 8, "d_width": 4, "steps": 3, "epochs": None, "batch_size": 4,
                  "lr_g": 2e-4, "lr_d": 2e-4, "augment": False},
        "quick": {"g_width": None, "d_width": 16, "steps": 200, "epochs": None, "batch_size": 32,
                  "lr_g": 2e-4, "lr_d": 2e-4, "augment": False},
        "cifar": {"g_width": None, "d_width": 64, "steps": 3000, "epochs": None, "batch_size": 64,
                  "lr_g": 2e-4, "lr_d": 2e-4, "augment": False},
        "paper": {"g_width": None, "d_width": 64, "steps": None, "epochs": 25, "batch_size": 64,
                  "lr_g": 2e-4, "lr_d": 2e-4, "augment": False},
    }
    #: Adam betas (DCGAN's).
    betas = (0.5, 0.999)

    def __init__(self, *, block_size: int | None = None, g_width: int | None = None,
                 d_width: int | None = None, steps: int | None = None, epochs: float | None = None,
                 batch_size: int | None = None, lr_g: float | None = None, lr_d: float | None = None,
                 augment: bool | None = None, **common: Any):
        super().__init__(**common)
        self.block_size = None if block_size is None else int(block_size)
        g_width = self.preset_value("g_width", g_width)
        self.g_width = None if g_width is None else int(g_width)
        self.d_width = int(self.preset_value("d_width", d_width))
        self.steps = self.preset_value("steps", steps)
        self.epochs = self.preset_value("epochs", epochs)
        self.batch_size = int(self.preset_value("batch_size", batch_size))
        self.lr_g = float(self.preset_value("lr_g", lr_g))
        self.lr_d = float(self.preset_value("lr_d", lr_d))
        self.augment = bool(self.preset_value("augment", augment))
        if self.steps is None and self.epochs is None:
            raise ParameterError(f"{self.name} needs steps or epochs: pass --param steps=N")
        if self.d_width < 1 or self.batch_size < 1 or min(self.lr_g, self.lr_d) <= 0:
            raise ParameterError(f"{self.name}: d_width and batch_size must be >= 1, learning rates > 0")
        self.generator: nn.Module | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "block_size": self.block_size, "g_width": self.g_width,
                "d_width": self.d_width, "steps": self.steps, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr_g": self.lr_g, "lr_d": self.lr_d,
                "augment": self.augment}

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
        state = self.trained(view, lambda: self._train(view, pool), ciphertexts=tensor_digest(pool))
        self.generator = self.build_generator(view).to(self.device)
        self.generator.load_state_dict(state["generator"])
        self.generator.eval()
        self._train_facts = state["facts"]

    @staticmethod
    def ciphertext_pool(view: ThreatView) -> torch.Tensor:
        """Every ciphertext under the victim key the view holds (CPU): the targets, then the
        provider's encrypted training images when the view has them."""
        parts = [view.ciphertexts.cpu()]
        if view.training_ciphertexts is not None:
            parts.append(view.training_ciphertexts.cpu())
        return torch.cat(parts)

    def _train(self, view: ThreatView, ciphertexts: torch.Tensor) -> dict[str, Any]:
        device = self.device
        generator_rng = torch.Generator().manual_seed(self.seed)
        g = self.initial_generator(view)
        d = self.build_discriminator(view).to(device)
        # Under torchrun each rank takes a shard of every batch and gradients are averaged
        # explicitly (the discriminator runs twice per backward pass, which DDP's hooks forbid).
        broadcast_parameters(g)
        broadcast_parameters(d)
        opt_g, opt_d = self.optimizers(g, d)
        scaler_g, scaler_d = grad_scaler(device), grad_scaler(device)
        use_bf16 = cpu_bf16_supported()
        public = view.public_images.cpu()
        steps = int(self.steps) if self.steps is not None else math.ceil(
            float(self.epochs) * len(ciphertexts) / min(self.batch_size, len(ciphertexts)))
        fakes = batch_indices(len(ciphertexts), self.batch_size, generator_rng)
        reals = batch_indices(len(public), self.batch_size, generator_rng)
        g.train()
        d.train()
        last = (math.nan, math.nan)
        with progress(f"{self.name}: adversarial training ({view.cipher.name})", steps) as advance:
            for _ in range(steps):
                real = public[next(reals)]  # global batches, the same on every rank
                if self.augment:
                    real = crop_flip(real, 4, generator_rng)
                real = to_signed(shard(real, self.batch_size).to(device))
                source = to_signed(ciphertexts[shard(next(fakes), self.batch_size)].to(device))
                # discriminator step
                with autocast(device, use_bf16):
                    fake = g(source)
                    loss_d = self.discriminator_loss(d(real).float(), d(fake.detach()).float())
                opt_d.zero_grad(set_to_none=True)
                scaler_d.scale(loss_d).backward()
                average_gradients(d)
                scaler_d.step(opt_d)
                scaler_d.update()
                # generator step
                with autocast(device, use_bf16):
                    loss_g = self.generator_loss(d(fake).float())
                opt_g.zero_grad(set_to_none=True)
                scaler_g.scale(loss_g).backward()
                average_gradients(g)
                scaler_g.step(opt_g)
                scaler_g.update()
                last = (float(loss_d.detach()), float(loss_g.detach()))
                advance()
        log.info("%s: %d steps, final losses D %.3f G %.3f", self.name, steps, *last)
        facts = {"steps": steps, "final_loss_d": last[0], "final_loss_g": last[1],
                 "ciphertexts": len(ciphertexts), "target_ciphertexts": len(view.ciphertexts),
                 "public_images": len(public),
                 "generator_parameters": sum(p.numel() for p in g.parameters()),
                 **self.generator_facts(view)}
        return {"generator": {k: v.cpu() for k, v in g.state_dict().items()}, "facts": facts}

    # -- attack ------------------------------------------------------------------------------------
    def reconstruct(self, view: ThreatView) -> AttackResult:
        outs = [to_uint8(self.generator(to_signed(view.ciphertexts[i:i + 256].to(self.device))))
                for i in range(0, len(view.ciphertexts), 256)]
        return AttackResult(torch.cat(outs).to(view.ciphertexts.device), facts=dict(self._train_facts))
