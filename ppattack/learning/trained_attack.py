"""The base of attacks that train a network: the training ceremony, written once.

A :class:`TrainedAttack` (gan, sia-gan, itn) writes its networks, losses and batches; the base
owns what every trainer repeats:

- the cache: :meth:`~TrainedAttack.trained` loads the trained state, or builds and stores it,
  content-addressed by :meth:`~TrainedAttack.cache_identity`;
- the budget: :meth:`~TrainedAttack.training_steps` (``steps``, else ``epochs`` over the data);
- precision: :meth:`~TrainedAttack.autocast` (float16 AMP on CUDA, bfloat16 on a CPU with
  native bf16, float32 otherwise) and :meth:`~TrainedAttack.optimizer_step` (gradient scaling
  on CUDA);
- torchrun: :meth:`~TrainedAttack.parallel` (DDP) or explicit gradient averaging in
  :meth:`~TrainedAttack.optimizer_step`, for loops that call a network twice per backward pass;
- progress: :meth:`~TrainedAttack.progress`;
- inference: :meth:`~TrainedAttack.forward_in_chunks` over as many images as fit the memory
  (:func:`ppattack.learning.training.inference_chunk`), without gradients.

A subclass declares ``steps``, ``epochs`` and ``batch_size`` among its parameters.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..attack import Attack
from ..errors import ParameterError
from ..threat import ThreatView
from .cache import cached
from ..runtime.digest import class_source_digest, tensor_digest
from ..runtime.distributed import average_gradients, data_parallel
from ..runtime.progress import progress
from .training import autocast, cpu_bf16_supported, grad_scaler, inference_chunk, to_signed


class TrainedAttack(Attack):
    """An attack that trains networks on what its view grants (see the module docstring)."""

    def __init__(self, **common: Any):
        super().__init__(**common)
        #: Reuse trained networks from the content-addressed cache (tests switch it off).
        self.use_cache = True

    # -- the cache ---------------------------------------------------------------------------------
    def cache_identity(self, view: ThreatView, **extra: Any) -> dict[str, Any]:
        """Everything that determines a network this attack trains on ``view``.

        Cipher name and parameters, attack name and resolved parameters (seed included), image
        shape, the view's data identity and the device type (a GPU's float16 training is not the
        CPU's network); ``extra`` adds what else the training reads (e.g. a
        digest of the ciphertexts or known pairs). The source files of the attack's and the
        cipher's classes name a plugin's code; the cache adds ppattack's own.
        """
        data = view.data_id
        if data is None:  # a view built by hand: identify the public data by content
            data = "unnamed|" + (tensor_digest(view.public_images) if view.public_images is not None else "-")
        return {"attack": self.name, "params": self.params, "attack_code": class_source_digest(type(self)),
                "cipher": view.cipher.name, "cipher_params": view.cipher.params,
                "cipher_code": class_source_digest(type(view.cipher)), "plain_shape": list(view.plain_shape),
                "data": data, "device": self.device.type, **extra}

    def trained(self, view: ThreatView, build: Callable[[], dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """The state ``build()`` trains (tensors and plain values), from the cache when present.

        Entries are content-addressed by :meth:`cache_identity` and written atomically, so an
        interrupted run leaves no partial entry; a damaged entry is rebuilt. The result's facts
        say which (``trained_network``: ``"cache hit"`` or ``"trained"``).
        """
        state, hit = cached(f"attack-{self.name}", self.cache_identity(view, **extra), build,
                            enabled=self.use_cache)
        self._fit_facts["trained_network"] = "cache hit" if hit else "trained"
        return state

    # -- the budget --------------------------------------------------------------------------------
    def training_steps(self, examples: int, batch_size: int | None = None) -> int:
        """Optimiser steps of the budget: ``steps`` when set, else ``epochs`` passes over
        ``examples`` in batches of ``batch_size`` (default: the ``batch_size`` parameter),
        rounded up."""
        if self.steps is not None:
            return int(self.steps)
        return math.ceil(float(self.epochs) * examples / (batch_size or self.batch_size))

    def check_budget(self, *learning_rates: float) -> None:
        """Raise :class:`ParameterError` unless ``steps`` (when given) is >= 1, ``epochs`` (when
        given) a finite number > 0 and every learning rate finite and > 0: a budget that trains
        nothing, or diverges at once, would report an untrained network as a result."""
        if self.steps is None and self.epochs is None:
            raise ParameterError(f"{self.name} needs steps or epochs: pass --param steps=N")
        if self.steps is not None and self.steps < 1:
            raise ParameterError(f"{self.name} steps must be >= 1, got {self.steps}")
        if self.epochs is not None and not (isinstance(self.epochs, (int, float)) and 0 < self.epochs < math.inf):
            raise ParameterError(f"{self.name} epochs must be a finite number > 0, got {self.epochs}")
        if not all(math.isfinite(lr) and lr > 0 for lr in learning_rates):
            raise ParameterError(f"{self.name} learning rates must be finite and > 0, got "
                                 f"{', '.join(map(str, learning_rates))}")

    # -- one training step -------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's precision while training: float16 AMP on CUDA, bfloat16 on a CPU
        with native bf16 (elsewhere it is emulated and slower), float32 otherwise."""
        return autocast(self.device, cpu_bf16_supported())

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler for :meth:`optimizer_step` (active for float16 AMP on CUDA only)."""
        return grad_scaler(self.device)

    def parallel(self, net: nn.Module) -> nn.Module:
        """``net`` wrapped in DistributedDataParallel under torchrun (``net`` itself otherwise);
        its gradients are then averaged by DDP's hooks. Unwrap with
        :func:`ppattack.runtime.distributed.unwrap`."""
        return data_parallel(net, self.device)

    @staticmethod
    def optimizer_step(loss: torch.Tensor, scaler: torch.amp.GradScaler,
                       *updates: tuple[torch.optim.Optimizer, nn.Module]) -> None:
        """One step on ``loss`` for each ``(optimiser, network)``: clear their gradients,
        backpropagate the scaled loss once, average each network's gradients over the torchrun
        ranks (unless DDP already has), step each optimiser in order, update the scale."""
        for optimizer, _ in updates:
            optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for optimizer, net in updates:
            average_gradients(net)
            scaler.step(optimizer)
        scaler.update()

    def progress(self, what: str, steps: int) -> contextlib.AbstractContextManager:
        """A progress bar of ``steps`` on stderr when it is a terminal, titled
        ``"<attack>: <what>"``; yields ``advance()``."""
        return progress(f"{self.name}: {what}", steps)

    # -- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def forward_in_chunks(self, net: nn.Module, images: torch.Tensor, activations_per_image: int,
                          most: int = 256) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(rows, net(images[rows]))`` for consecutive chunks of the uint8 ``images`` (any
        device), mapped to [-1, 1] and moved to the attack's device. A chunk holds as many images
        as keep ``activations_per_image`` each within the memory budget, at most ``most``; no
        gradients; float16 AMP on CUDA, float32 on the CPU (as trained there unless the CPU has
        native bf16), so the outputs do not depend on the chunking (up to float rounding: a conv may
        round the last bit differently for another batch size)."""
        chunk = inference_chunk(activations_per_image, self.device, most=most)
        for start in range(0, len(images), chunk):
            rows = slice(start, start + chunk)
            with autocast(self.device, cpu_bf16=False):
                out = net(to_signed(images[rows].to(self.device)))
            yield rows, out
