"""itn: inverse transformation network (Ito, Kinoshita, Kiya 2020).

Ito, Kinoshita, Kiya: "Image transformation network for privacy-preserving deep neural
networks and its security evaluation" (GCCE 2020). The attack trains a U-Net
``f(Enc(x; k)) -> x`` with an MSE loss and applies it to the victim ciphertexts.

- ``coa+public`` (default): the attacker owns public plain images and the algorithm, so it
  encrypts each public image with a FRESH random key every time the image is drawn (never the
  victim key, which it does not have): the network must learn what is invariant across keys.
  When the cipher declares a per-unit transform set (:meth:`ppattack.Cipher.unit_transforms`:
  pe, etc), the network reads every unit's canonical form under it
  (:meth:`ppattack.cipher.UnitTransforms.canonical`, for pe each pixel's folded values in
  ascending order) instead of the ciphertext: with fresh keys only key-invariant functions of
  a ciphertext can be learned, and the canonical form keeps all of them while sparing the
  network the search for the invariant (``canonical=False`` turns it off).
- ``kpa``: the network is trained on the (plain, cipher) pairs under the victim key that the
  view grants (much stronger: it can learn that key's inverse).

The best checkpoint on a held-out validation split (fresh keys too) is kept, as in the
original training (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128, 50 epochs: the
``paper`` budget). The ``quick`` and ``cifar`` budgets use Adam, a small U-Net and an added
SSIM term in the loss (``ssim_weight``; it lifts the short runs' SSIM by a few hundredths, and
the loss used is recorded in the result's facts) so that they finish on a CPU; every budget
value can be overridden.
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ppattack.attack import AttackResult
from ppattack.cipher import Cipher, UnitTransforms
from ppattack.errors import ParameterError, ShapeError
from ppattack.runtime.digest import tensor_digest
from ppattack.runtime.distributed import shard, unwrap, world
from ppattack.learning.nets.unet import UNet
from ppattack.learning.trained_attack import TrainedAttack
from ppattack.learning.training import batch_indices, crop_flip, crop_pad, prefetched, to_signed, to_uint8
from ppattack.threat import ThreatView

log = logging.getLogger(__name__)

#: Images whose canonical form is computed at once (its candidates are compared in int16).
CANONICAL_CHUNK = 256


def fresh_seeds(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` key seeds for :func:`encrypt_fresh` (int64 in [0, 2^63))."""
    return rng.integers(2**63, size=count)


def encrypt_fresh(cipher: Cipher, images: torch.Tensor, seeds: np.ndarray) -> torch.Tensor:
    """Encrypt every image of a uint8 batch under a new key of its own.

    A shared-key cipher gets a key per image, made from ``seeds[i]``. A per-image cipher
    (``key_reuse == "per-image"``: one key derives a different key for every image number)
    encrypts the whole batch in one call under one new key made from ``seeds[0]``: image i then
    gets the key derived for number i, as fresh as the first way and one batched pass.
    """
    if not len(images):
        return images.clone()
    shape = tuple(images.shape[1:])
    if cipher.key_reuse == "per-image":
        return cipher.encrypt(images, cipher.generate_key(shape, seed=int(seeds[0])))
    out = [cipher.encrypt(image[None], cipher.generate_key(shape, seed=int(seed)))
           for image, seed in zip(images, seeds)]
    return torch.cat(out)


def prefetch(device: torch.device) -> bool:
    """Prepare training batches in a background thread: on a GPU, where the training thread
    would otherwise leave the device idle while the CPU makes keys; not on the CPU, where both
    would share the same cores."""
    return device.type == "cuda"


def ssim_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(1 - SSIM) / 2`` (Gaussian window 11) of images in [-1, 1]."""
    import kornia

    return kornia.losses.ssim_loss(output.add(1).div(2), target.add(1).div(2), window_size=11, max_val=1.0)


class ITN(TrainedAttack):
    """Inverse transformation network: a U-Net trained to undo encryption under fresh keys.

    Defaults (``paper`` budget): width 64 (widths 64..1024), depth 4, SGD lr 0.01 momentum 0.9
    weight decay 5e-4, batch 128, 50 epochs, MSE loss, best validation checkpoint.
    ``quick``: width 16, Adam lr 3e-3 with cosine decay, batch 16, 250 steps, MSE + SSIM loss
    (SSIM 0.92-0.94 on ``plain`` with the samples, about 25 s of training on two CPU cores).
    ``cifar``: width 32, Adam 1e-3, batch 64, 2000 steps, MSE + SSIM loss, crop/flip
    augmentation before encryption. ``canonical`` (every budget): under fresh keys, read each
    unit's canonical form where the cipher declares per-unit transforms (module docstring).
    """

    name = "itn"
    paper = ("Ito, Kinoshita, Kiya: Image transformation network for privacy-preserving deep "
             "neural networks and its security evaluation (2020)")
    threat_models = ("coa+public", "kpa")
    # what each budget changes; the defaults are the paper's (the constructor's signature)
    budgets = {
        # smoke: a handful of steps that exercise the code (the cipher conformance kit), no more
        "smoke": {"width": 4, "depth": 2, "steps": 3, "epochs": None, "batch_size": 4,
                  "optimizer": "adam", "lr": 1e-3, "ssim_weight": 1.0,
                  "val_fraction": 0.25, "eval_every": 3},
        "quick": {"width": 16, "steps": 250, "epochs": None, "batch_size": 16,
                  "optimizer": "adam", "lr": 3e-3, "ssim_weight": 1.0,
                  "val_fraction": 0.1, "eval_every": 50, "schedule": "cosine"},
        "cifar": {"width": 32, "steps": 2000, "epochs": None, "batch_size": 64,
                  "optimizer": "adam", "lr": 1e-3, "ssim_weight": 1.0, "augment": True,
                  "eval_every": 250},
        # cpu: what ppattack audit --budget cpu trains (four networks a cipher: coa+public, kpa,
        # their controls, each control beside its attack) so that pe's audit finishes in 30
        # minutes on two cores; on pe's canonical form it restores a median SSIM of 0.53
        # (benchmarks/RESULTS.md, "pe: a learned attack")
        "cpu": {"width": 16, "steps": 1600, "epochs": None, "batch_size": 64,
                "optimizer": "adam", "lr": 2e-3, "ssim_weight": 1.0, "augment": True,
                "eval_every": 300, "schedule": "cosine"},
        "paper": {},
    }

    def __init__(self, *, width: int = 64, depth: int = 4,
                 steps: int | None = None, epochs: int | float | None = 50,
                 batch_size: int = 128, optimizer: str = "sgd", lr: float = 0.01,
                 ssim_weight: float = 0.0, augment: bool = False,
                 val_fraction: float = 0.05, eval_every: int | None = None,
                 schedule: str = "constant", canonical: bool = True, **common: Any):
        super().__init__(**common)
        self.store_params(locals())
        if self.schedule not in ("constant", "cosine"):
            raise ParameterError(f"itn schedule must be constant or cosine, got {self.schedule!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ParameterError(f"itn optimizer must be sgd or adam, got {self.optimizer!r}")
        self.check_budget(self.lr)
        if min(self.width, self.depth, self.batch_size) < 1:
            raise ParameterError("itn width, depth and batch_size must be >= 1")
        if not (0 <= self.val_fraction < 1 and 0 <= self.ssim_weight < math.inf) or (self.eval_every or 0) < 0:
            raise ParameterError(f"itn val_fraction must lie in [0, 1) (got {self.val_fraction}), ssim_weight be "
                                 f"finite and >= 0 (got {self.ssim_weight}), eval_every >= 0 (got {self.eval_every})")
        self.net: UNet | None = None
        self._transforms: UnitTransforms | None = None

    # -- training --------------------------------------------------------------------------------
    def fit(self, view: ThreatView) -> None:
        c, h, w = view.plain_shape
        if tuple(view.ciphertexts.shape[1:]) != (c, h, w):
            raise ShapeError(f"itn maps ciphertexts of the plain shape {tuple(view.plain_shape)}; "
                             f"got {tuple(view.ciphertexts.shape[1:])}")
        if h % 2**self.depth or w % 2**self.depth:
            raise ShapeError(f"itn's U-Net of depth {self.depth} needs H and W divisible by "
                             f"{2**self.depth}, got {h}x{w}: pass --param depth=...")
        extra: dict[str, Any] = {}
        if self.threat_model == "kpa":
            if view.known_pairs is None or len(view.known_pairs[0]) == 0:
                raise ParameterError("itn --threat kpa needs known pairs in the view")
            extra["known_pairs"] = tensor_digest(*view.known_pairs)
        elif view.public_images is None or len(view.public_images) < 2:
            raise ParameterError("itn needs at least two public images (coa+public)")
        self._transforms = self.input_transforms(view)
        state = self.trained(view, lambda: self._train(view), **extra)
        self.net = UNet(c, c, self.width, self.depth).to(self.device)
        self.net.load_state_dict(state["model"])
        self.net.eval()
        self._train_facts = state["facts"]

    def input_transforms(self, view: ThreatView) -> UnitTransforms | None:
        """The per-unit transform set whose canonical form the network reads: the cipher's,
        when ``canonical`` is on and the network trains under fresh keys; else None (it reads
        the ciphertexts; under ``kpa`` it learns the victim key's own inverse)."""
        if not self.canonical or self.threat_model == "kpa":
            return None
        return view.cipher.unit_transforms(view.plain_shape)

    def network_input(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        """What the network reads of uint8 ciphertexts: their canonical form under
        :meth:`input_transforms` (computed :data:`CANONICAL_CHUNK` images at a time, so its
        working memory does not grow with the number of images), or themselves."""
        if self._transforms is None:
            return ciphertexts
        return torch.cat([self._transforms.canonical(ciphertexts[start:start + CANONICAL_CHUNK])
                          for start in range(0, len(ciphertexts), CANONICAL_CHUNK)])

    def _train(self, view: ThreatView) -> dict[str, Any]:
        device = self.device
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng([self.seed, 1])
        cipher = view.cipher
        if self.threat_model == "kpa":
            plain, encrypted = (t.cpu() for t in view.known_pairs)
            train_plain, train_cipher, train_rows = plain, encrypted, torch.arange(len(plain))
            val_plain, val_cipher = plain, encrypted  # too few pairs to hold any out
            fresh = False
        else:
            # the public images stay where they are (a large set is file-backed): batches index them
            train_plain = view.public_images.cpu()
            order = torch.randperm(len(train_plain), generator=generator)
            n_val = min(len(train_plain) - 1, max(1, round(self.val_fraction * len(train_plain))))
            val_plain, train_rows = train_plain[order[:n_val]], order[n_val:]
            val_cipher = self.network_input(encrypt_fresh(
                cipher, val_plain, fresh_seeds(np.random.default_rng([self.seed, 2]), len(val_plain))))
            train_cipher = None
            fresh = True
        count = len(train_rows)
        steps = self.training_steps(count)
        eval_every = int(self.eval_every) if self.eval_every else max(1, math.ceil(count / self.batch_size))

        net = self.parallel(UNet(view.plain_shape[0], view.plain_shape[0], self.width, self.depth).to(device))
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        else:
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        decay = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if self.schedule == "cosine"
                 else None)
        scaler = self.grad_scaler()
        batches = batch_indices(count, self.batch_size, generator)
        best = (math.inf, copy.deepcopy(unwrap(net).state_dict()), 0)
        history = []
        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            """This rank's (plain, encrypted) uint8 pair of the next global batch, on the CPU."""
            index = train_rows[next(batches)]  # the global batch: the same on every rank
            if not fresh:
                index = shard(index, self.batch_size)
                return train_plain[index], train_cipher[index]
            x = train_plain[index]
            if self.augment:
                x = crop_flip(x, crop_pad(x.shape[-1]), generator)
            seeds = fresh_seeds(rng, len(x))
            x = shard(x, self.batch_size)
            return x, self.network_input(encrypt_fresh(cipher, x, shard(seeds)))

        # on a GPU the fresh keys and encryptions of the next batches are made by a CPU thread
        # while the device trains; either way the batches and their randomness are the same
        pairs = prefetched(next_batch, steps) if prefetch(device) else (next_batch() for _ in range(steps))
        with self.progress(f"training U-Net ({view.cipher.name}, {self.threat_model})", steps) as advance:
            for step, (x, y) in enumerate(pairs, start=1):
                target, source = to_signed(x.to(device, non_blocking=True)), to_signed(y.to(device, non_blocking=True))
                net.train()
                with self.autocast():
                    out = net(source)
                out = out.float()
                loss = F.mse_loss(out, target)
                if self.ssim_weight:
                    loss = loss + self.ssim_weight * ssim_loss(out, target)
                self.optimizer_step(loss, scaler, (opt, net))
                if decay is not None:
                    decay.step()
                advance()
                if step % eval_every == 0 or step == steps:
                    val = self._validate(unwrap(net), val_cipher, val_plain)
                    history.append((step, float(loss.detach()), val))
                    if val < best[0]:
                        best = (val, copy.deepcopy(unwrap(net).state_dict()), step)
        log.info("itn: best validation MSE %.5f at step %d of %d", best[0], best[2], steps)
        return {"model": best[1],
                "facts": {"steps": steps, "best_step": best[2], "best_val_mse": best[0],
                          "train_images": count, "val_images": len(val_plain), "processes": world().size,
                          "fresh_key_per_image_per_step": fresh, "network_input": self.input_fact(),
                          "loss": "mse" + (
                              f" + {self.ssim_weight} * (1 - ssim) / 2" if self.ssim_weight else ""),
                          "history": [list(item) for item in history]}}

    def input_fact(self) -> str:
        """What the network reads, in words (for the result's facts)."""
        if self._transforms is None:
            return "the ciphertexts"
        t = self._transforms
        return f"each {t.unit}'s canonical form under the cipher's {t.count} {t.unit} transforms"

    def _activations(self, images: torch.Tensor) -> int:
        """The U-Net's activations per image at inference (~8 x width per pixel)."""
        return 8 * self.width * images.shape[-2] * images.shape[-1]

    @torch.no_grad()
    def _validate(self, net: UNet, source: torch.Tensor, target: torch.Tensor) -> float:
        """Mean squared error (on [-1, 1]) of ``net`` restoring the uint8 ``source`` to ``target``."""
        net.eval()
        total = torch.zeros((), device=self.device)
        for rows, out in self.forward_in_chunks(net, source, self._activations(source)):
            total += F.mse_loss(out.float(), to_signed(target[rows].to(self.device)), reduction="sum")
        return float(total) / target.numel()

    # -- attack ----------------------------------------------------------------------------------
    def reconstruct(self, view: ThreatView) -> AttackResult:
        images = self.network_input(view.ciphertexts)
        outs = [to_uint8(out) for _, out in self.forward_in_chunks(self.net, images, self._activations(images))]
        return AttackResult(torch.cat(outs).to(images.device), facts=dict(self._train_facts))
