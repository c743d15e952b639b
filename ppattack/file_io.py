"""Atomic file writes, staged outputs and image files.

Every file ppattack writes goes to a temporary file in the target folder first and is then
renamed over the target, so an interrupted run never leaves a half-written file. A command
that writes several files stages them all (:func:`staged_output`) and moves them into place
only once the whole command succeeded, so a failed or interrupted command writes nothing.
"""
from __future__ import annotations

import contextlib
import io
import logging
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .errors import DataError, ShapeError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None],
                 mode: int = 0o644) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then rename it to ``path`` (permissions ``mode``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name is bounded: a target name near the file system's limit (255) still fits
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
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


#: The name of every staging folder begins so; one a killed command (SIGKILL, power loss) left
#: behind is never read as data: folder scans skip it (:func:`files_below`).
STAGING_PREFIX = ".ppattack-staging-"


def is_staging(path: Path, folder: Path) -> bool:
    """Whether ``path`` (below ``folder``) lies in a staging folder."""
    return any(part.startswith(STAGING_PREFIX) for part in path.relative_to(folder).parts[:-1])


def user_path(text: str) -> Path:
    """``text`` as a path, a leading ``~`` or ``~user`` expanded; :class:`DataError` when the
    home folder cannot be found (an unknown user)."""
    try:
        return Path(text).expanduser()
    except RuntimeError as e:  # pathlib: "Could not determine home directory."
        raise DataError(f"cannot expand '~' in {text}: {e}") from None


def files_below(folder: Path, pattern: str = "*", suffixes: Sequence[str] | None = None) -> list[Path]:
    """The files matching ``pattern`` at any depth below ``folder`` (with one of ``suffixes``,
    case-insensitive, when given), sorted, leaving out staging folders' contents. A matching
    link to a missing file is a :class:`DataError`, a link to a folder (not followed) a warning:
    both were left out without a word."""
    found = []
    for path in folder.rglob(pattern):
        if is_staging(path, folder):
            continue
        if path.is_symlink() and path.is_dir():
            log.warning("%s is a link to a folder, which is not followed: its files are left out "
                        "(give the folder itself)", path)
            continue
        if suffixes is not None and path.suffix.lower() not in suffixes:
            continue
        if path.is_file():
            found.append(path)
        elif path.is_symlink() and not path.exists():
            raise DataError(f"{path} is a link to a missing file: remove the link or restore what it points to")
    return sorted(found)


def existing_folder_above(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` when it exists, else the nearest folder above it that does; raise
    :class:`DataError` when that is a file (``out_dir`` could never be created)."""
    out = anchor = Path(out_dir)
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise DataError(f"cannot write to {out}: {anchor} is a file, not a folder; choose another output folder")
    return anchor


def check_placeable(out_dir: str | os.PathLike, names: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`DataError` when a file ``out_dir/name`` could not be written: a folder
    stands where the file goes, or a file stands where one of its folders goes."""
    out = Path(out_dir)
    existing_folder_above(out)
    for name in names:
        target = out / name
        for folder in [out, *(out / parent for parent in reversed(Path(name).parents[:-1]))]:
            if folder.exists() and not folder.is_dir():
                raise DataError(f"cannot write {target}: {folder} is a file, not a folder; "
                                "choose another output folder or move the file")
        if target.is_dir():
            raise DataError(f"cannot write {target}: a folder of that name is in the way; "
                            "choose another output folder or move the folder")
        if target.exists() and not target.is_file():  # a device, pipe or socket is never replaced
            raise DataError(f"cannot write {target}: it is not a regular file (a device, pipe or "
                            "socket); choose another output name")


def check_apart(out_dir: Path, inputs: Mapping[str, Path | None], names: Sequence[Path] = ()) -> None:
    """Raise :class:`DataError` when ``out_dir`` is, lies inside or holds one of the input
    folders, or a file ``out_dir/name`` would land in one through a link (all compared
    resolved, so links and ``..`` count): writing there could overwrite the inputs."""
    out = out_dir.resolve()
    for what, folder in inputs.items():
        if folder is None:
            continue
        where = folder.resolve()
        relation = ("is" if out == where else "is inside" if where in out.parents
                    else "holds" if out in where.parents else None)
        if relation:
            raise DataError(f"the output folder {out_dir} {relation} the {what} folder {folder}: the "
                            f"outputs could overwrite the {what}; choose an output folder apart from the inputs")
        linked = next((name for name in names if where in (out_dir / name).resolve().parents), None)
        if linked is not None:
            raise DataError(f"{out_dir / linked} leads into the {what} folder {folder} through a link: the "
                            f"outputs could overwrite the {what}; choose an output folder apart from the inputs")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (in the main thread) until the block ends."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that stands for ``out_dir``; write every output below it.

    When the block succeeds and something was staged, every target is checked first
    (:func:`check_placeable`); then, with SIGINT and SIGTERM held back, a new ``out_dir`` (its
    missing parents created) is the staged folder renamed into place in one rename, and in an
    existing ``out_dir`` each file is renamed over its target (``os.replace``). When the block
    raises (an interrupt included), the staging folder is removed and nothing is written. The
    staging folder is a hidden ``.ppattack-staging-*`` folder inside ``out_dir`` when it
    exists, else inside the nearest folder above it that exists (one file system).
    """
    out = Path(out_dir)
    anchor = existing_folder_above(out)
    root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=anchor))
    tree = root / "out"
    tree.mkdir()  # not mkdtemp's 0700: the folder that may become out_dir gets the usual permissions
    try:
        yield tree
        staged = sorted(p.relative_to(tree) for p in tree.rglob("*") if not p.is_dir())
        if not staged:
            return
        check_placeable(out, staged)
        with _signals_held():
            if not (out.exists() or out.is_symlink()) and _rename_new_folder(tree, out):
                return
            for name in staged:
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tree / name, out / name)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _rename_new_folder(tree: Path, out: Path) -> bool:
    """Rename ``tree`` to the missing folder ``out``, creating its missing parents; False (and
    the parents removed again) when the rename fails, e.g. because ``out`` appeared meanwhile."""
    made = [folder for folder in reversed(out.parents) if not folder.exists()]
    for folder in made:
        folder.mkdir(exist_ok=True)
    try:
        os.rename(tree, out)
        return True
    except OSError:
        if out.exists():  # someone else made it: move the files one by one instead
            return False
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def torch_load(path: str | os.PathLike) -> Any:
    """Load a tensor file written by ppattack, never unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def unreadable(e: BaseException) -> bool:
    """Whether PIL raised ``e`` for a file it cannot read (not an image, truncated, a bomb, a text
    chunk beyond its bound: ValueError, SyntaxError) rather than for a fault of ppattack's."""
    from PIL import Image, UnidentifiedImageError

    return isinstance(e, (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError, SyntaxError))


def upright(im: Any) -> Any:
    """The opened image as displayed: its EXIF orientation applied (an exact transposition)."""
    from PIL import ImageOps

    orientation = im.getexif().get(0x0112, 1)
    return ImageOps.exif_transpose(im) if orientation in range(2, 9) else im


def opened_size(im: Any, *, as_displayed: bool) -> tuple[int, int]:
    """(height, width) of the opened image: as displayed (EXIF orientations 5-8 turn it) for a
    plain image, as stored for a ciphertext (see :func:`read_image_exact`)."""
    width, height = im.size
    turned = as_displayed and im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    return (width, height) if turned else (height, width)


def read_image(path: str | os.PathLike, mode: str = "RGB") -> torch.Tensor:
    """Decode a plain image file as displayed (EXIF orientation applied) to a uint8 tensor
    (C, H, W); ``mode`` is a PIL mode (RGB or L). Not for ciphertexts: they are read as stored
    (:func:`read_image_exact`)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(upright(im).convert(mode))
    except Exception as e:
        if not unreadable(e):
            raise
        raise DataError(f"cannot read image {path}: {e.__class__.__name__}: {e}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


#: Formats (PIL's names) that may have lost pixels to compression, with the names users know.
LOSSY_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}


def lossy_format(path: str | os.PathLike) -> str | None:
    """The lossy format (JPEG, WebP) the file ``path`` holds, told by its content whatever its
    name, or None (also for a file that is no image: reading it reports that)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return LOSSY_FORMATS.get(im.format or "")
    except Exception as e:
        if not unreadable(e):
            raise
        return None


#: PIL modes whose alpha channel is dropped (exactly) only when every pixel is opaque.
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _depth_problem(im: Any, path: str | os.PathLike) -> str | None:
    """Why the samples of the opened image ``im`` are not plain 8-bit, read from the file's
    header (PIL narrows 16-bit RGB PNG, TIFF and PPM to 8 bits, rescales a PGM/PPM maxval
    below 255, and opens 16-bit grey in 32-bit mode I), or None when they are."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(25)
        bits = header[24] if len(header) == 25 else 8  # IHDR bit depth
    elif im.format == "PPM":  # PGM/PPM: the header's maxval (a PBM bitmap has none)
        args = im.tile[0].args if im.tile else None
        if args == "I;16B":
            return "16-bit samples (maxval 65535)"
        maxval = args[1] if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], int) else 255
        if maxval > 255:
            return f"{maxval.bit_length()}-bit samples (maxval {maxval})"
        if maxval < 255:
            return f"samples up to {maxval} (maxval {maxval}), which reading would rescale to 255"
        return None
    elif im.format == "TIFF":
        tagged = getattr(im, "tag_v2", {}).get(258)  # BitsPerSample
        bits = max(tagged) if isinstance(tagged, tuple) and tagged else int(tagged or 8)
    elif im.mode.startswith("I;16"):
        bits = 16
    elif im.mode in ("I", "F"):
        bits = 32
    else:
        bits = 8
    return f"{bits}-bit samples" if bits > 8 else None


def read_image_exact(path: str | os.PathLike, channels: int, *, as_displayed: bool) -> torch.Tensor:
    """Decode one still 8-bit image to a uint8 tensor (``channels``, H, W), converting only
    where nothing is lost, else raise :class:`DataError` saying what to do.

    ``as_displayed``: True for plain images (photos, datasets, truth): an EXIF orientation is
    applied (an exact turn or mirror). False for ciphertexts: their pixels are read as stored,
    whatever orientation tag the file carries (turning them would scramble the decryption).

    Converted exactly: bilevel and palette images (expanded), grey to RGB (replicated), RGB
    whose channels are all equal to grey, an alpha channel that is opaque everywhere (dropped).
    Refused: samples other than 8-bit (16-bit PNG/TIFF/PGM/PPM, a PGM/PPM maxval other than
    255, 32-bit integer or float images),
    transparency, colour into a 1-channel key, other modes (CMYK, YCbCr, LAB, HSV) and
    animated files (more than one frame).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise DataError(f"image {path} is animated ({frames} frames): ppattack encrypts one still "
                                "image per file; save the frame you want as its own PNG")
            depth = _depth_problem(im, path)
            if depth:
                raise DataError(f"image {path} has {depth}: the ciphers work on 8-bit images and converting "
                                "it would change the data; convert it to 8 bits yourself first")
            im.load()
            if as_displayed:
                im = upright(im)
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
    except Exception as e:
        if isinstance(e, DataError) or not unreadable(e):
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

    try:
        with Image.open(path) as im:
            return dict(getattr(im, "text", {}) or {})
    except Exception as e:
        if not unreadable(e):
            raise
        raise DataError(f"cannot read image {path}: {e.__class__.__name__}: {e}") from None


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
