"""Whether the user asked for no network access: ``PPATTACK_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``.

Offline, nothing is downloaded (LPIPS weights, CIFAR); what is missing is reported with the
reason and what to pass instead.
"""
from __future__ import annotations

import os

OFFLINE_ENVS = ("PPATTACK_OFFLINE", "HF_HUB_OFFLINE")


def offline_flag() -> str | None:
    """The variable that asks for offline operation, as ``NAME=value``, or None."""
    for name in OFFLINE_ENVS:
        value = os.environ.get(name, "")
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return f"{name}={value}"
    return None


def offline() -> bool:
    """True when the environment asks for no network access."""
    return offline_flag() is not None
