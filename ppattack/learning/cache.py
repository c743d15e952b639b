"""Content-addressed cache of trained networks (attack models, classifiers).

An entry's address is the SHA-256 of a JSON identity holding everything that determines the
trained weights (cipher and params, attack and params, data identity, seed, code version).
Entries are tensors-only ``torch.save`` files written atomically and read with
``weights_only=True``; a damaged entry is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from .distributed import broadcast, world
from ..file_io import atomic_torch_save, torch_load
from ..version import __version__

log = logging.getLogger(__name__)
#: Bump when a change to training code changes what a cached network would be.
CODE_VERSION = f"{__version__}-1"


def cache_dir() -> Path:
    """Root of ppattack's caches: ``$PPATTACK_CACHE`` or ``~/.cache/ppattack``."""
    return Path(os.environ.get("PPATTACK_CACHE", Path.home() / ".cache" / "ppattack"))


def tensor_digest(*tensors: torch.Tensor, chunk_bytes: int = 64 * 2**20) -> str:
    """Short SHA-256 of tensors' shapes, dtypes and bytes (the content part of an identity).

    Hashed in slices of about ``chunk_bytes`` (a tensor on a GPU comes over a slice at a time,
    and no slice is copied again into a bytes object)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        flat = tensor.reshape(-1)
        step = max(1, chunk_bytes // max(1, flat.element_size()))
        for start in range(0, flat.numel(), step):
            part = flat[start:start + step].cpu().contiguous()
            digest.update(part.view(torch.uint8).numpy())
    return digest.hexdigest()[:24]


def address(kind: str, identity: dict[str, Any]) -> str:
    """Stable hex digest of ``identity`` (JSON-serialisable) plus the code version."""
    text = json.dumps({"kind": kind, "code": CODE_VERSION, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cached(kind: str, identity: dict[str, Any], build: Callable[[], dict[str, Any]],
           enabled: bool = True) -> tuple[dict[str, Any], bool]:
    """Return ``(state, hit)``: the stored state for ``identity``, or ``build()`` stored afresh.

    ``state`` must hold only tensors and plain Python values (a state_dict, metrics). Under
    torchrun, rank 0 decides whether the entry exists (every rank then reads it: the cache
    folder must be shared, as it is on one machine) and rank 0 alone writes a new one; every
    rank runs ``build()`` together, since training is data parallel.
    """
    path = cache_dir() / "models" / kind / f"{address(kind, identity)}.pt"
    if broadcast(enabled and path.exists()):
        try:
            return torch_load(path), True
        except Exception as e:  # never trust a damaged entry
            log.warning("ignoring unreadable cache entry %s (%s)", path, e)
    state = build()
    if enabled and world().is_main:
        atomic_torch_save(path, state)
    return state, False
