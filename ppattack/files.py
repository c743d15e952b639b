"""Encrypt or decrypt image files: every input is checked before any output is written, and
the outputs appear together only when every image succeeded.

Per-image ciphers (pe) need each image's number to decrypt it. ``encrypt`` draws a fresh
random number for every file (from the OS CSPRNG, like a nonce: it is not secret) and stores it
in the output PNG as the text chunk ``ppattack-image-number``; ``decrypt`` reads it back, so
any subset of encrypted files, in any order or call, decrypts correctly.

Every PNG ``encrypt`` writes also names the cipher (text chunk ``ppattack-cipher``) and the
key's non-secret fingerprint (``ppattack-key-fingerprint``, :func:`~ppattack.keys.key_fingerprint`).
``decrypt`` refuses a file made with another cipher or key before writing anything, unless
``force`` is given; a file without them (not written by ``encrypt``) decrypts with a warning.

Image modes are read by :func:`~ppattack.file_io.read_image_exact`: converted where nothing is lost,
refused otherwise (16-bit, transparency, animation, colour into a grey key). ``encrypt`` reads
its plain images as displayed (EXIF orientation applied), ``decrypt`` its ciphertexts as stored.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import torch

from .errors import DataError, ShapeError
from .file_io import (IMAGE_SUFFIXES, check_apart, check_placeable, files_below, opened_size, png_text,
                      read_image_exact, staged_output, unreadable, write_png)
from .keys import Key, key_fingerprint
from .registry import create_cipher

log = logging.getLogger(__name__)

BATCH = 64
#: PNG text chunk holding a per-image cipher's image number.
IMAGE_NUMBER_CHUNK = "ppattack-image-number"
#: PNG text chunks naming the cipher and the key's fingerprint.
CIPHER_CHUNK = "ppattack-cipher"
FINGERPRINT_CHUNK = "ppattack-key-fingerprint"


def plan_outputs(inputs: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: files map to ``out_dir/<stem>.png``; folders keep their structure.

    The whole set is refused (DataError) before any work when ``out_dir`` is, lies inside or
    holds an input folder, when an output leads into one through a link, when two inputs map
    to one output, or when an output is an input file."""
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            files = files_below(item, suffixes=IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"folder {item} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            pairs += [(p, out_dir / p.relative_to(item).with_suffix(".png")) for p in files]
        elif item.is_file():
            pairs.append((item, out_dir / (item.stem + ".png")))
        elif item.exists():  # a device, a pipe, a socket
            raise DataError(f"input {item} is neither a file nor a folder: give image files or folders")
        else:
            raise DataError(f"input {item} does not exist")
    names = [target.relative_to(out_dir) for _, target in pairs]
    for item in inputs:
        if item.is_dir():
            check_apart(out_dir, {"input": item}, names)
    seen: dict[Path, Path] = {}
    sources = {source.resolve(): source for source, _ in pairs}
    for source, target in pairs:
        if target in seen:
            raise DataError(f"{seen[target]} and {source} would both be written to {target}: "
                            "rename one or encrypt them into different folders")
        if target.resolve() in sources:
            raise DataError(f"writing {target} would overwrite the input {sources[target.resolve()]}: "
                            "choose another output folder")
        seen[target] = source
    return pairs


def image_size(path: Path, *, as_displayed: bool) -> tuple[int, int]:
    """(height, width) of an image file, read from its header: as displayed (EXIF orientation
    applied) or as stored (:func:`~ppattack.file_io.read_image_exact`)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return opened_size(im, as_displayed=as_displayed)
    except Exception as e:
        if not unreadable(e):
            raise
        raise DataError(f"cannot read image {path}: {e.__class__.__name__}: {e}") from None


def image_number(path: Path) -> int:
    """The image number a per-image cipher's ciphertext file carries (see the module doc)."""
    value = png_text(path).get(IMAGE_NUMBER_CHUNK)
    if value is None:
        raise DataError(f"{path} carries no image number ({IMAGE_NUMBER_CHUNK}): a per-image cipher's "
                        "ciphertexts can only be decrypted from the PNG files `ppattack encrypt` wrote")
    # ASCII digits only, and below 2**63 (encrypt draws 63-bit numbers): never a huge int()
    if not (value.isascii() and value.isdigit() and len(value) <= 19 and int(value) < 2 ** 63):
        raise DataError(f"{path} carries a malformed image number ({IMAGE_NUMBER_CHUNK} must be a "
                        "decimal integer below 2**63): it was not written by `ppattack encrypt`, "
                        "or was altered")
    return int(value)


def check_key_marks(paths: list[Path], key: Key, *, force: bool) -> list[str]:
    """Refuse (DataError naming the file) a ciphertext file whose cipher or key fingerprint is
    not ``key``'s, unless ``force``; return the warnings (forced files, files without marks)."""
    warnings = []
    fingerprint = key_fingerprint(key)
    unmarked = []
    for path in paths:
        text = png_text(path)
        if CIPHER_CHUNK not in text and FINGERPRINT_CHUNK not in text:
            unmarked.append(path)
            continue
        if text.get(CIPHER_CHUNK) != key.cipher:
            problem = f"was encrypted with cipher {text.get(CIPHER_CHUNK)!r}, not {key.cipher!r}"
        elif text.get(FINGERPRINT_CHUNK) != fingerprint:
            problem = (f"was encrypted with another key (fingerprint {text.get(FINGERPRINT_CHUNK)}, "
                       f"this key's is {fingerprint})")
        else:
            continue
        if not force:
            raise DataError(f"{path} {problem}: decrypt it with its own key, or pass --force to "
                            "decrypt anyway")
        warnings.append(f"{path} {problem}; decrypting anyway (--force)")
    if unmarked:
        warnings.append(f"{len(unmarked)} file(s) carry no key fingerprint (e.g. {unmarked[0]}): not written by "
             "`ppattack encrypt`, so the key cannot be checked; decrypting anyway")
    return warnings


def transform_files(key: Key, inputs: list[Path], out_dir: Path, *, decrypt: bool, force: bool = False,
                    warn: Callable[[str], None] = log.warning) -> list[Path]:
    """Encrypt (or decrypt) every input image with ``key`` into PNG files under ``out_dir``.

    ``force``: decrypt files whose cipher or key fingerprint differ from ``key``'s (warned);
    ``warn`` receives one-line warnings, once every file is written."""
    cipher = create_cipher(key.cipher, **key.params)
    if cipher.ciphertext_dtype != torch.uint8:
        kind = str(cipher.ciphertext_dtype).removeprefix("torch.")
        raise DataError(f"cipher {cipher.name} makes {kind} ciphertexts, which PNG files cannot hold: "
                        "use the Python API (cipher.encrypt / cipher.decrypt) for this cipher")
    shape = cipher.encrypted_shape(key.shape) if decrypt else key.shape
    pairs = plan_outputs(inputs, out_dir)
    check_placeable(out_dir, [target.relative_to(out_dir) for _, target in pairs])
    per_image = cipher.key_reuse == "per-image"
    for source, _ in pairs:  # check every image before writing anything
        size = image_size(source, as_displayed=not decrypt)
        if size != tuple(shape[1:]):
            raise ShapeError(f"image {source} is {size[0]}x{size[1]} but the key is for {shape[1]}x{shape[2]}: "
                             f"resize it, or make a key with --shape {key.shape[0]},{size[0]},{size[1]}")
    warnings = check_key_marks([source for source, _ in pairs], key, force=force) if decrypt else []
    marks = {CIPHER_CHUNK: key.cipher, FINGERPRINT_CHUNK: key_fingerprint(key)}
    if per_image:
        numbers = ([image_number(source) for source, _ in pairs] if decrypt else
                   [int.from_bytes(os.urandom(8), "big") >> 1 for _ in pairs])
    else:
        numbers = list(range(len(pairs)))  # unused by shared-key ciphers

    with staged_output(out_dir) as staging:  # the outputs appear together, or not at all
        for start in range(0, len(pairs), BATCH):
            chunk, chunk_numbers = pairs[start:start + BATCH], numbers[start:start + BATCH]
            # plain images as displayed, ciphertexts as stored (an orientation tag never turns them)
            batch = torch.stack([read_image_exact(source, shape[0], as_displayed=not decrypt) for source, _ in chunk])
            result = (cipher.decrypt(batch, key, indices=chunk_numbers) if decrypt
                      else cipher.encrypt(batch, key, indices=chunk_numbers))
            for (_, target), image, number in zip(chunk, result, chunk_numbers):
                text = None if decrypt else {**marks, IMAGE_NUMBER_CHUNK: str(number)} if per_image else marks
                write_png(staging / target.relative_to(out_dir), image, text)
    for warning in warnings:  # after success: a failed call prints only its error
        warn(warning)
    return [target for _, target in pairs]
