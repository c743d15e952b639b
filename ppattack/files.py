"""Encrypt or decrypt image files: every input is checked before any output is written, and
the outputs appear together only when every image succeeded.

Per-image ciphers (pe) need each image's number to decrypt it. ``encrypt`` draws a fresh
random number for every file (from the OS CSPRNG, like a nonce: it is not secret) and stores it
in the output PNG as the text chunk ``ppattack-image-number``; ``decrypt`` reads it back, so
any subset of encrypted files, in any order or call, decrypts correctly.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import DataError, ShapeError
from .io import IMAGE_SUFFIXES, read_image, write_png
from .keys import Key
from .registry import create_cipher

BATCH = 64
#: PNG text chunk holding a per-image cipher's image number.
IMAGE_NUMBER_CHUNK = "ppattack-image-number"


def plan_outputs(inputs: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: files map to ``out_dir/<stem>.png``; folders keep their structure."""
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"folder {item} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            pairs += [(p, out_dir / p.relative_to(item).with_suffix(".png")) for p in files]
        elif item.is_file():
            pairs.append((item, out_dir / (item.stem + ".png")))
        else:
            raise DataError(f"input {item} does not exist")
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


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def image_number(path: Path) -> int:
    """The image number a per-image cipher's ciphertext file carries (see the module doc)."""
    from PIL import Image

    with Image.open(path) as im:
        value = getattr(im, "text", {}).get(IMAGE_NUMBER_CHUNK)
    if value is None or not value.isdigit():
        raise DataError(f"{path} carries no image number ({IMAGE_NUMBER_CHUNK}): a per-image cipher's "
                        "ciphertexts can only be decrypted from the PNG files `ppattack encrypt` wrote")
    return int(value)


def transform_files(key: Key, inputs: list[Path], out_dir: Path, *, decrypt: bool) -> list[Path]:
    """Encrypt (or decrypt) every input image with ``key`` into PNG files under ``out_dir``."""
    cipher = create_cipher(key.cipher, **key.params)
    if cipher.ciphertext_dtype != torch.uint8:
        kind = str(cipher.ciphertext_dtype).removeprefix("torch.")
        raise DataError(f"cipher {cipher.name} makes {kind} ciphertexts, which PNG files cannot hold: "
                        "use the Python API (cipher.encrypt / cipher.decrypt) for this cipher")
    shape = cipher.encrypted_shape(key.shape) if decrypt else key.shape
    mode = "L" if shape[0] == 1 else "RGB"
    pairs = plan_outputs(inputs, out_dir)
    per_image = cipher.key_reuse == "per-image"
    for source, _ in pairs:  # check every image before writing anything
        size = image_size(source)
        if size != tuple(shape[1:]):
            raise ShapeError(f"image {source} is {size[0]}x{size[1]} but the key is for {shape[1]}x{shape[2]}: "
                             f"resize it, or make a key with --shape {key.shape[0]},{size[0]},{size[1]}")
    if per_image:
        numbers = ([image_number(source) for source, _ in pairs] if decrypt else
                   [int.from_bytes(os.urandom(8), "big") >> 1 for _ in pairs])
    else:
        numbers = list(range(len(pairs)))  # unused by shared-key ciphers

    # Write into a staging folder inside out_dir; move the files into place only at the end.
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ppattack-staging-", dir=out_dir))
    staged = []
    try:
        for start in range(0, len(pairs), BATCH):
            chunk, chunk_numbers = pairs[start:start + BATCH], numbers[start:start + BATCH]
            batch = torch.stack([read_image(source, mode) for source, _ in chunk])
            result = (cipher.decrypt(batch, key, indices=chunk_numbers) if decrypt
                      else cipher.encrypt(batch, key, indices=chunk_numbers))
            for (_, target), image, number in zip(chunk, result, chunk_numbers):
                text = {IMAGE_NUMBER_CHUNK: str(number)} if per_image and not decrypt else None
                staged.append((write_png(staging / target.relative_to(out_dir), image, text), target))
        for path, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return [target for _, target in staged]
