"""Atomic file writes and image files.

Every file ppattack writes goes to a temporary file in the target folder first and is then
renamed over the target, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import DataError, ShapeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None],
                 mode: int = 0o644) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then rename it to ``path`` (permissions ``mode``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    return atomic_write(path, lambda f: f.write(data), mode)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: str | os.PathLike, obj: Any, mode: int = 0o644) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", mode)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def torch_load(path: str | os.PathLike) -> Any:
    """Load a tensor file written by ppattack, never unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_image(path: str | os.PathLike, mode: str = "RGB") -> torch.Tensor:
    """Decode an image file to a uint8 tensor (C, H, W); ``mode`` is a PIL mode (RGB or L)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert(mode))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e.__class__.__name__}: {e}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def png_bytes(image: torch.Tensor, text: dict[str, str] | None = None) -> bytes:
    """Encode a uint8 tensor (C, H, W) with C in {1, 3} as PNG, with optional tEXt chunks."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ShapeError(f"cannot write a {tuple(image.shape)} {image.dtype} tensor as PNG: "
                         "need uint8 (1 or 3, H, W)")
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    info = PngInfo()
    for name, value in (text or {}).items():
        info.add_text(name, value)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(path: str | os.PathLike, image: torch.Tensor, text: dict[str, str] | None = None) -> Path:
    return atomic_write_bytes(path, png_bytes(image, text))
