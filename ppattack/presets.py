"""Presets: named sets of run values (protocol.md). User values override them key by key."""
from __future__ import annotations

from typing import Any

from .errors import UnknownComponentError

PRESETS: dict[str, dict[str, Any]] = {
    # Every attack and the classifier finish on a 2-core CPU; `run` on samples well under a minute.
    "quick": {"dataset": "samples", "image_size": 32, "block_size": 4,
              "max_train": 2000, "max_test": 500, "targets": 64},
    # CIFAR-10 (or 100) at 32x32, moderate budgets.
    "cifar": {"dataset": "cifar10", "image_size": 32, "block_size": 4,
              "max_train": None, "max_test": None, "targets": 1000},
    # The seed's setting: 224x224, block 16, ViT-B/16. Meant for a GPU.
    "paper": {"dataset": "cifar10", "image_size": 224, "block_size": 16,
              "max_train": None, "max_test": None, "targets": 1000},
}


def get_preset(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s values."""
    if name not in PRESETS:
        raise UnknownComponentError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])
