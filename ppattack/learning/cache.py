"""Content-addressed cache of trained networks (attack models, classifiers).

An entry's address is the SHA-256 of a JSON identity holding everything that determines the
trained weights (cipher and params, attack and params, data identity, seed, code version;
data is named by :func:`ppattack.runtime.digest.tensor_digest`, code by
:func:`code_version`). Entries live in ``models/``
under :func:`ppattack.runtime.cache_folder.cache_dir`; they are tensors-only ``torch.save``
files written atomically and read with ``weights_only=True``; a damaged entry is ignored and
rebuilt.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

from ..file_io import atomic_torch_save, torch_load
from ..runtime.cache_folder import cache_dir
from ..runtime.digest import source_digest
from ..runtime.distributed import broadcast, world
from ..version import __version__

log = logging.getLogger(__name__)


@functools.cache
def code_version() -> str:
    """ppattack's version and a digest of its own source (every module of the package): part of
    every address, so that no network trained by other code (an upgrade, an edited checkout) is
    read as this code's. A plugin's code enters through its identity
    (:func:`~ppattack.runtime.digest.class_source_digest` of its attack or cipher class)."""
    return f"{__version__}+{source_digest(Path(__file__).resolve().parents[1])}"


def address(kind: str, identity: dict[str, Any]) -> str:
    """Stable hex digest of ``identity`` (JSON-serialisable) plus the code version."""
    text = json.dumps({"kind": kind, "code": code_version(), **identity}, sort_keys=True, default=str)
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
