"""Encrypt or decrypt image files: every input is checked before any output is written."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import DataError, ShapeError
from .io import IMAGE_SUFFIXES, read_image, write_png
from .keys import Key
from .registry import create_cipher

BATCH = 64


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
    for source, target in pairs:
        if target in seen:
            raise DataError(f"{seen[target]} and {source} would both be written to {target}: "
                            "rename one or encrypt them into different folders")
        if target.resolve() == source.resolve():
            raise DataError(f"writing {target} would overwrite its input: choose another output folder")
        seen[target] = source
    return pairs


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
    # Check every image before writing anything.
    from PIL import Image

    for source, _ in pairs:
        try:
            with Image.open(source) as im:
                size = im.size
        except OSError as e:
            raise DataError(f"cannot read image {source}: {e}") from None
        if (size[1], size[0]) != tuple(shape[1:]):
            raise ShapeError(f"image {source} is {size[1]}x{size[0]} but the key is for {shape[1]}x{shape[2]}: "
                             f"resize it, or make a key with --shape {key.shape[0]},{size[1]},{size[0]}")
    written = []
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start:start + BATCH]
        batch = torch.stack([read_image(source, mode) for source, _ in chunk])
        numbers = range(start, start + len(chunk))  # per-image ciphers: image n of the sorted inputs
        result = (cipher.decrypt(batch, key, indices=numbers) if decrypt
                  else cipher.encrypt(batch, key, indices=numbers))
        for (_, target), image in zip(chunk, result):
            written.append(write_png(target, image))
    return written
