"""Where ppattack keeps its caches (datasets, downloads, trained networks)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of ppattack's caches: ``$PPATTACK_CACHE`` or ``~/.cache/ppattack``."""
    return Path(os.environ.get("PPATTACK_CACHE", Path.home() / ".cache" / "ppattack"))
