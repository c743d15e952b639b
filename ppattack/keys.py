"""Keys: an immutable value holding a cipher's name, parameters, image shape and key material.

A key file is the JSON document of docs/protocol.md, "Key files"::

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

from .errors import KeyFileError, PPAttackError
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


#: Integers in a key file are at most this many digits: a 256-bit seed (a key per image) has up to
#: 78; each field's own range is checked after parsing. Python refuses to parse beyond 4300.
MAX_KEY_DIGITS = 80


def _bounded_int(text: str) -> int:
    """``int(text)`` for JSON integers of at most :data:`MAX_KEY_DIGITS` digits (json's hook)."""
    if len(text.lstrip("-")) > MAX_KEY_DIGITS:
        raise KeyFileError(f"holds an integer of {len(text.lstrip('-'))} digits (key fields have at most "
                           f"{MAX_KEY_DIGITS}): regenerate it with `ppattack keygen`")
    return int(text)


#: The largest key file read (ele's key for 4096 x 4096 images is about 690 MiB); a larger file,
#: or a device such as /dev/zero, is refused without reading it all.
MAX_KEY_BYTES = 1 << 30
_CHUNK = 1 << 20


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a field given twice (json's hook): which of the two
    values is meant would be a guess."""
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise KeyFileError(f"holds the field {name!r} twice: regenerate it with `ppattack keygen`")
        document[name] = value
    return document


def _read_bounded(path: str | os.PathLike) -> str:
    """The text of a key file: a JSON object (``{`` first) of at most :data:`MAX_KEY_BYTES`."""
    chunks: list[bytes] = []
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if not chunks and not chunk.lstrip().startswith(b"{"):
                raise KeyFileError("is not valid JSON (a key file is a JSON object, starting with '{'): "
                                   "regenerate it with `ppattack keygen`")
            chunks.append(chunk)
            if len(chunks) * _CHUNK > MAX_KEY_BYTES:
                raise KeyFileError(f"is larger than {MAX_KEY_BYTES >> 20} MiB, more than any key: "
                                   "regenerate it with `ppattack keygen`")
    return b"".join(chunks).decode("utf-8")


def load_key(path: str | os.PathLike) -> Key:
    """Read and fully validate a key file; a bad key raises :class:`KeyFileError` naming the field.
    The file is read up to :data:`MAX_KEY_BYTES`; a field given twice is refused."""
    try:
        document = json.loads(_read_bounded(path), parse_int=_bounded_int, object_pairs_hook=_unique_fields)
    except KeyFileError as e:
        raise KeyFileError(f"key file {path} {e}") from None
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist: create one with `ppattack keygen`") from None
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from None
    except RecursionError:
        raise KeyFileError(f"key file {path} is nested too deeply to be a key: "
                           "regenerate it with `ppattack keygen`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KeyFileError(f"key file {path} is not valid JSON ({e}): "
                           "regenerate it with `ppattack keygen`") from None
    try:
        return key_from_json(document)
    except KeyFileError as e:
        raise KeyFileError(f"key file {path}: {e}") from None


def key_from_json(document: Any, cipher: Any = None) -> Key:
    """Validate a key document (format, cipher, params, shape, material) and build the Key.

    ``cipher``: validate against this cipher object instead of the registered one (for
    ciphers under test that are not installed); the document must name it.
    """
    from .registry import create_cipher

    if not isinstance(document, dict):
        raise KeyFileError("not a key document (expected a JSON object)")
    for name in ("format", "cipher", "params", "shape", "material"):
        if name not in document:
            raise KeyFileError(f"field '{name}' is missing")
    if not isinstance(document["cipher"], str):
        raise KeyFileError("field 'cipher' must be a cipher name (a string)")
    if document["format"] != KEY_FORMAT:
        raise KeyFileError(f"field 'format' is {document['format']!r}, expected {KEY_FORMAT!r}")
    if not isinstance(document["params"], dict):
        raise KeyFileError("field 'params' must be an object")
    if not isinstance(document["material"], dict):
        raise KeyFileError("field 'material' must be an object")
    shape = document["shape"]
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise KeyFileError(f"field 'shape' must be three positive integers [C, H, W], got {shape!r}")
    if max(shape[1:]) > MAX_SIDE or shape[0] > 4:
        raise KeyFileError(f"field 'shape' {shape!r} is beyond the largest image ppattack takes "
                           f"(at most 4 channels and {MAX_SIDE} pixels a side)")
    if cipher is not None and document["cipher"] != cipher.name:
        raise KeyFileError(f"field 'cipher' is {document['cipher']!r}, expected {cipher.name!r}")
    try:
        if cipher is None:
            cipher = create_cipher(document["cipher"], **document["params"])
        elif document["params"] != cipher.params:
            raise KeyFileError(f"field 'params' is {document['params']!r}, expected {cipher.params!r}")
        cipher.check_shape(tuple(shape))
    except KeyFileError:
        raise
    except PPAttackError as e:
        raise KeyFileError(f"{e}") from None
    material = cipher.parse_material(document["material"], tuple(shape))
    return Key(cipher.name, cipher.params, tuple(shape), material)


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
