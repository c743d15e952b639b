"""Keys: an immutable value holding a cipher's name, parameters, image shape and key material.

A key file is the JSON document of docs/protocol.md, "Key files" (written here by
:func:`save_key`, read back and validated by :func:`ppattack.key_parsing.load_key`)::

    {"format": "ppattack-key/1", "cipher": "my-cipher", "params": {"block_size": 16},
     "shape": [3, 224, 224], "material": {"<key field>": [...], ...}}

Key files are written with permissions 0600 and are never printed or logged: ``repr(key)``
hides the material.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .errors import KeyFileError
from .file_io import atomic_write_json

KEY_FORMAT = "ppattack-key/1"
#: Largest image side a key may be made for (JPEG's and WebP's limit; larger keys cannot be
#: held in memory anyway: a 65535 x 65535 permutation of pixels is 32 GiB of int64).
MAX_SIDE = 65535
Shape = tuple[int, int, int]


def _frozen(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.setflags(write=False)
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass(frozen=True, eq=False)
class Key:
    """A cipher key. ``material`` maps field names to read-only int64 arrays (or plain values)."""

    cipher: str
    params: Mapping[str, Any]
    shape: Shape
    material: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "material", _frozen(dict(self.material)))

    def __repr__(self) -> str:
        return (f"Key(cipher={self.cipher!r}, params={dict(self.params)!r}, "
                f"shape={self.shape!r}, material=<hidden>)")

    def to_json(self) -> dict[str, Any]:
        """The key-file document (contains the secret material)."""
        return {"format": KEY_FORMAT, "cipher": self.cipher, "params": dict(self.params),
                "shape": list(self.shape), "material": _jsonable(dict(self.material))}


#: Prefix that separates key fingerprints from any other SHA-256 of a key document.
FINGERPRINT_DOMAIN = b"ppattack key fingerprint v1\x00"


def key_fingerprint(key: Key) -> str:
    """A non-secret name for ``key``: 16 hex digits (64 bits) of SHA-256 over a domain prefix
    and the key's canonical JSON (sorted keys, no spaces). Equal keys give equal fingerprints;
    it identifies a key, it does not help find one (2**64 preimage work per guess checked is
    the same check a known plaintext already allows)."""
    canonical = json.dumps(key.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(FINGERPRINT_DOMAIN + canonical.encode("ascii")).hexdigest()[:16]


def save_key(key: Key, path: str | os.PathLike) -> None:
    """Write ``key`` as JSON, atomically, readable by the owner only (0600)."""
    atomic_write_json(path, key.to_json(), mode=0o600)


# Validation helpers for ciphers' key fields --------------------------------------------------

def as_int_array(raw: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Convert JSON ``raw`` to an int64 array of exactly ``shape``, or raise naming ``name``."""
    try:
        array = np.asarray(raw)
    except (ValueError, TypeError):
        raise KeyFileError(f"field 'material.{name}' is not a regular array") from None
    if array.size and array.dtype.kind not in "iub":
        raise KeyFileError(f"field 'material.{name}' must hold integers")
    if array.shape != tuple(shape):
        raise KeyFileError(f"field 'material.{name}' has shape {list(array.shape)}, "
                           f"expected {list(shape)}")
    return array.astype(np.int64)


def check_permutation(array: np.ndarray, name: str) -> np.ndarray:
    """Every row (last axis) of ``array`` must be a permutation of 0..n-1."""
    n = array.shape[-1]
    rows = array.reshape(-1, n)
    expected = np.arange(n)
    for row in rows:
        if not np.array_equal(np.sort(row), expected):  # (key values are never put in messages)
            raise KeyFileError(f"field 'material.{name}' is not a permutation of 0..{n - 1}")
    return array


def check_range(array: np.ndarray, name: str, high: int) -> np.ndarray:
    """Every value of ``array`` must be in ``[0, high)``."""
    if array.size and (array.min() < 0 or array.max() >= high):
        raise KeyFileError(f"field 'material.{name}' must hold values in 0..{high - 1}")
    return array
