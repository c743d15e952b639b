"""Decoded images on disk at their native size, in chunks read through memory maps.

One cache folder holds one dataset: ``meta.json`` (classes, and per split the labels in the
split's fixed order) and, per split, chunks of :data:`CHUNK` consecutive positions. A chunk is
two ``.npy`` files: ``<split>-<k>.npy`` holds the images' uint8 pixels back to back (each
``(3, H, W)``, C order) and ``<split>-<k>.index.npy`` their ``(offset, H, W)`` rows. A chunk is
decoded the first time one of its positions is read, written atomically (pixels first, the
index last: an index file means a whole chunk), and from then on mapped, never loaded: a run
pages in only the images it reads.

A picture larger than :data:`MAX_SIDE` on its shorter side is shrunk to it (bilinear,
antialiased) before caching; resizing to a preset's size happens per batch
(:class:`ppattack.images.image_set.ImageSet`).
"""
from __future__ import annotations

import io
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .image_set import resize_shorter_side
from ..file_io import atomic_write, atomic_write_json
from ..runtime.progress import progress

log = logging.getLogger(__name__)

#: Images per chunk: the unit of decoding and of a cache file.
CHUNK = 1024
#: Shorter side (pixels) above which a picture is shrunk before it is cached.
MAX_SIDE = 512
#: Most threads that decode a chunk (image decoders release the GIL).
DECODE_THREADS = 8

#: ``decode(split, position) -> uint8 (3, H, W)``: one image at its native size.
Decoder = Callable[[str, int], torch.Tensor]


def shrink_to(image: torch.Tensor, side: int) -> torch.Tensor:
    """``image`` (uint8 ``(3, H, W)``) with its shorter side brought down to ``side`` (aspect kept);
    unchanged when it is already no larger."""
    return image if min(image.shape[1:]) <= side else resize_shorter_side(image[None], side)[0]


class ImageCache:
    """One dataset's cache folder: its labels and its images by (split, position).

    ``decoder()`` returns the :data:`Decoder` that builds missing chunks; it is called only when
    a chunk is missing, so a warm cache never opens the source (no pickle, no folder walk beyond
    what the caller did). ``max_side`` is the shorter-side cap of cached pictures (None: none).
    """

    def __init__(self, root: Path, decoder: Callable[[], Decoder], *, max_side: int | None = MAX_SIDE,
                 description: str = "images"):
        self.root = Path(root)
        self.max_side = max_side
        self.description = description
        self._decoder_factory = decoder
        self._decoder: Decoder | None = None
        self._maps: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self.counts: dict[str, int] = {}

    # -- meta --------------------------------------------------------------------------------

    def read_meta(self) -> dict[str, Any] | None:
        """``{"classes": [...], "labels": {split: [...]}}`` or None when absent or unreadable."""
        path = self.root / "meta.json"
        try:
            meta = json.loads(path.read_text())
            if isinstance(meta.get("classes"), list) and isinstance(meta.get("labels"), dict):
                return meta
            raise ValueError("missing fields")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("rebuilding dataset cache %s: its meta.json is unreadable (%s)", self.root, e)
            return None

    def write_meta(self, classes: list[str], labels: dict[str, list[int]]) -> None:
        atomic_write_json(self.root / "meta.json", {"classes": classes, "labels": labels})

    def use_counts(self, counts: dict[str, int]) -> None:
        """The number of images of each split (from the meta), needed to size the last chunk."""
        self.counts = dict(counts)

    # -- images ------------------------------------------------------------------------------

    def chunk_paths(self, split: str, chunk: int) -> tuple[Path, Path]:
        stem = self.root / f"{split}-{chunk:05d}"
        return stem.with_suffix(".npy"), Path(f"{stem}.index.npy")

    def prepare(self, split: str, positions: np.ndarray) -> None:
        """Decode and write every missing chunk that holds one of ``positions``, with a progress
        bar on a terminal."""
        count = self.counts[split]
        chunks = sorted({int(p) // CHUNK for p in np.asarray(positions).reshape(-1)})
        missing = [k for k in chunks if not self._usable(split, k)]
        if not missing:
            return
        sizes = [min(CHUNK, count - k * CHUNK) for k in missing]
        log.info("decoding %d %s %s images into the cache %s", sum(sizes), split, self.description, self.root)
        with progress(f"decoding {split} images", sum(sizes)) as advance:
            for k, size in zip(missing, sizes):
                self._build(split, k, size, advance)

    def read(self, split: str, positions: np.ndarray) -> list[torch.Tensor]:
        """The images at ``positions`` (native size, uint8 ``(3, H, W)`` each; copies, not views)."""
        out = []
        for p in np.asarray(positions).reshape(-1):
            pixels, index = self._map(split, int(p) // CHUNK)
            offset, h, w = (int(v) for v in index[int(p) % CHUNK])
            flat = np.array(pixels[offset:offset + 3 * h * w])
            out.append(torch.from_numpy(flat).view(3, h, w))
        return out

    def _usable(self, split: str, chunk: int) -> bool:
        if (split, chunk) in self._maps:
            return True
        pixels, index = self.chunk_paths(split, chunk)
        return pixels.exists() and index.exists()

    def _map(self, split: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        key = (split, chunk)
        if key not in self._maps:
            try:
                self._maps[key] = self._open(split, chunk)
            except FileNotFoundError:
                raise RuntimeError(f"{split} chunk {chunk} of {self.root} was read before prepare()") from None
            except (OSError, ValueError) as e:  # a damaged chunk is rebuilt, never trusted
                log.warning("rebuilding dataset cache chunk %s-%05d in %s: unreadable (%s)",
                            split, chunk, self.root, e)
                for path in self.chunk_paths(split, chunk):
                    path.unlink(missing_ok=True)
                self._build(split, chunk, min(CHUNK, self.counts[split] - chunk * CHUNK), lambda n=1: None)
                self._maps[key] = self._open(split, chunk)
        return self._maps[key]

    def _open(self, split: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        pixels_path, index_path = self.chunk_paths(split, chunk)
        index = np.load(index_path)
        pixels = np.load(pixels_path, mmap_mode="r")
        expected = min(CHUNK, self.counts[split] - chunk * CHUNK)
        if index.ndim != 2 or index.shape != (expected, 3) or pixels.dtype != np.uint8:
            raise ValueError(f"index of shape {index.shape}, pixels {pixels.dtype}")
        if len(pixels) != int(index[-1, 0] + 3 * index[-1, 1] * index[-1, 2]):
            raise ValueError("pixels and index disagree")
        return pixels, index

    def _build(self, split: str, chunk: int, size: int, advance: Callable[[int], None]) -> None:
        if self._decoder is None:
            self._decoder = self._decoder_factory()
        decode, first = self._decoder, chunk * CHUNK

        def one(position: int) -> torch.Tensor:
            image = decode(split, position)
            if self.max_side is not None:
                image = shrink_to(image, self.max_side)
            advance(1)
            return image

        with ThreadPoolExecutor(max_workers=max(1, min(DECODE_THREADS, os.cpu_count() or 1))) as pool:
            images = list(pool.map(one, range(first, first + size)))
        shapes = np.array([image.shape[1:] for image in images], dtype=np.int64).reshape(-1, 2)
        lengths = 3 * shapes[:, 0] * shapes[:, 1]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        pixels_path, index_path = self.chunk_paths(split, chunk)

        def write_pixels(f: io.BufferedWriter) -> None:
            header = np.lib.format.header_data_from_array_1_0(np.empty(0, np.uint8))
            header["shape"] = (int(lengths.sum()),)
            np.lib.format.write_array_header_1_0(f, header)
            for image in images:
                f.write(image.contiguous().numpy().tobytes())

        atomic_write(pixels_path, write_pixels)
        atomic_write(index_path, lambda f: np.save(f, np.column_stack([offsets, shapes])))


class CacheSource:
    """One split of a dataset's disk cache: the :class:`~ppattack.images.image_set.ImageSource`
    an :class:`~ppattack.images.image_set.ImageSet` reads it through."""

    def __init__(self, cache: ImageCache, split: str):
        self.cache, self.split = cache, split
        self.identity = f"cache:{cache.root.name}/{split}"

    def prepare(self, positions: np.ndarray) -> None:
        self.cache.prepare(self.split, positions)

    def read(self, positions: np.ndarray) -> list[torch.Tensor]:
        self.cache.prepare(self.split, positions)
        return self.cache.read(self.split, positions)
