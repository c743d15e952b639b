"""Reading key files: a key document parsed within bounds and validated against its cipher.

The cipher is the one the registry holds under the document's ``cipher`` name (or one given,
for a cipher under test), so this module sits above both :mod:`ppattack.keys` and
:mod:`ppattack.registry`.
"""
from __future__ import annotations

import json
import os
from typing import Any

from .cipher import Cipher
from .errors import KeyFileError, PPAttackError
from .keys import KEY_FORMAT, MAX_SIDE, Key
from .registry import create_cipher


#: The fields of a key document (docs/protocol.md, "Key files"), in the order keygen writes them.
KEY_FIELDS = ("format", "cipher", "params", "shape", "material")

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


def key_from_json(document: Any, cipher: Cipher | None = None) -> Key:
    """Validate a key document (format, cipher, params, shape, material) and build the Key.

    ``cipher``: validate against this cipher object instead of the registered one (for
    ciphers under test that are not installed); the document must name it.
    """
    if not isinstance(document, dict):
        raise KeyFileError("not a key document (expected a JSON object)")
    for name in KEY_FIELDS:
        if name not in document:
            raise KeyFileError(f"field '{name}' is missing")
    unknown = sorted(set(document) - set(KEY_FIELDS))
    if unknown:
        raise KeyFileError(f"field {unknown[0]!r} is not a field of a key file ({', '.join(KEY_FIELDS)}): "
                           "remove it, or regenerate the key with `ppattack keygen`")
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
        for name, value in document["params"].items():  # as written: no "4" read as 4, no true as 1
            if json.dumps(value) != json.dumps(cipher.params.get(name)):
                raise KeyFileError(f"field 'params.{name}' is {value!r}, which the cipher reads as "
                                   f"{cipher.params.get(name)!r}: write {json.dumps(cipher.params.get(name))}")
    except KeyFileError:
        raise
    except PPAttackError as e:
        raise KeyFileError(f"{e}") from None
    material = cipher.parse_material(document["material"], tuple(shape))
    return Key(cipher.name, cipher.params, tuple(shape), material)
