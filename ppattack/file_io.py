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


#: PIL modes whose alpha channel is dropped (exactly) only when every pixel is opaque.
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _bits_per_sample(im: Any, path: str | os.PathLike) -> int:
    """Bits per sample as stored in the file (PIL reads 16-bit RGB PNG/TIFF as 8-bit RGB)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return 16 if im.mode.startswith("I;16") else 32
    if im.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(25)
        return header[24] if len(header) == 25 else 8  # IHDR bit depth
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None  # BitsPerSample
    return max(bits) if isinstance(bits, tuple) and bits else int(bits or 8)


def read_image_exact(path: str | os.PathLike, channels: int) -> torch.Tensor:
    """Decode one still 8-bit image to a uint8 tensor (``channels``, H, W), converting only
    where nothing is lost, else raise :class:`DataError` saying what to do.

    Converted exactly: bilevel and palette images (expanded), grey to RGB (replicated), RGB
    whose channels are all equal to grey, an alpha channel that is opaque everywhere (dropped).
    Refused: more than 8 bits per sample (16-bit PNG/TIFF, 32-bit integer or float images),
    transparency, colour into a 1-channel key, other modes (CMYK, YCbCr, LAB, HSV) and
    animated files (more than one frame).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise DataError(f"image {path} is animated ({frames} frames): ppattack encrypts one still "
                                "image per file; save the frame you want as its own PNG")
            bits = _bits_per_sample(im, path)
            if bits > 8:
                raise DataError(f"image {path} has {bits}-bit samples: the ciphers work on 8-bit images and "
                                "reducing it would lose data; convert it to 8 bits yourself first")
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode not in ("L", "RGB") + ALPHA_MODES:
                raise DataError(f"image {path} is in mode {mode}: ppattack reads grey, RGB, palette and "
                                "opaque alpha images; convert it to RGB first")
            if im.mode in ALPHA_MODES:
                alpha = np.asarray(im.getchannel("A"))
                if alpha.min() < 255:
                    raise DataError(f"image {path} has transparent pixels: the ciphers encrypt colour, "
                                    "not alpha; flatten it onto a background first")
                im = im.convert("RGB" if im.mode.startswith(("RGB", "P")) else "L")
            array = np.asarray(im)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot read image {path}: {e.__class__.__name__}: {e}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)  # grey as RGB: nothing lost
    elif channels == 1 and array.shape[2] == 3:
        if not (np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 0], array[:, :, 2])):
            raise DataError(f"image {path} is in colour but the key is for 1 channel: make a key with "
                            "--shape 3,H,W, or convert the image to grey yourself")
        array = array[:, :, :1]
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).contiguous()


def png_text(path: str | os.PathLike) -> dict[str, str]:
    """The text chunks of a PNG file (empty for other formats)."""
    from PIL import Image

    with Image.open(path) as im:
        return dict(getattr(im, "text", {}) or {})


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
