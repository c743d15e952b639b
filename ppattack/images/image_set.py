"""A role's images, read on demand at one square size: memory follows what a run reads.

An :class:`ImageSet` is a list of positions in a source (an :class:`ImageSource`: the native-size
disk cache of a dataset, :class:`ppattack.images.disk_cache.CacheSource`, or tensors already in
memory), their labels and the side ``size`` the images are served at. Nothing is decoded or resized until images are asked for: ``set[a:b]``
is another set, :meth:`ImageSet.gather` returns a uint8 batch, resized (shorter side to
``size``, centre crop) per batch on the device it is asked for, and :meth:`ImageSet.batches`
streams batches through a torch DataLoader. Small sets (:meth:`ImageSet.small`) may be held
as one tensor; large ones never are.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime.digest import tensor_digest

#: A set at most this large (bytes at its served size) may be held in memory as one tensor.
SMALL_BYTES = 256 * 2**20


def image_buffer(shape: Sequence[int], device: str | torch.device = "cpu") -> torch.Tensor:
    """An uninitialised uint8 tensor of ``shape`` to fill batch by batch: on the CPU, one larger
    than :data:`SMALL_BYTES` lives in an anonymous temporary file mapped into memory (the kernel
    keeps in RAM only the pages in use; the file goes when the tensor does); otherwise an
    ordinary tensor on ``device``."""
    device = torch.device(device)
    count = int(np.prod(shape))
    if device.type != "cpu" or count <= SMALL_BYTES:
        return torch.empty(tuple(shape), dtype=torch.uint8, device=device)
    handle, name = tempfile.mkstemp(prefix="ppattack-images-")
    try:
        os.ftruncate(handle, count)
        mapped = np.memmap(name, dtype=np.uint8, mode="r+", shape=tuple(shape))
    finally:  # the mapping keeps the (now nameless) file until the tensor is gone
        os.close(handle)
        os.unlink(name)
    return torch.from_numpy(mapped)


def resize_shorter_side(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` with the shorter side brought to ``side`` pixels (bilinear,
    antialiased, aspect kept), on the images' device; unchanged when it already is."""
    h, w = images.shape[-2:]
    scale = side / min(h, w)
    new = (max(side, round(h * scale)), max(side, round(w * scale)))
    if new == (h, w):
        return images
    images = F.interpolate(images.float(), size=new, mode="bilinear", antialias=True, align_corners=False)
    return images.round().clamp(0, 255).to(torch.uint8)


def fit_square_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and centre-crop: uint8
    ``(N, C, H, W)`` -> uint8 ``(N, C, size, size)``, on the images' device."""
    if tuple(images.shape[-2:]) == (size, size):
        return images.contiguous()
    images = resize_shorter_side(images, size)
    new = images.shape[-2:]
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return images[..., top:top + size, left:left + size].contiguous()


class ImageSource(Protocol):
    """Where a set's images live: native-size uint8 ``(C, H, W)`` images by position."""

    identity: str  # names the content (a cache address or a digest)

    def prepare(self, positions: np.ndarray) -> None:
        """Make ``positions`` readable (decode what is missing); cheap when it already is."""

    def read(self, positions: np.ndarray) -> list[torch.Tensor]:
        """The images at ``positions``, native size, CPU."""


class TensorSource:
    """Images already in memory (uint8 ``(N, C, H, W)``), e.g. built by a test or a benchmark."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        if self._identity is None:  # a digest of the content, computed once
            self._identity = f"tensors:{tensor_digest(self.images)}"
        return self._identity

    def prepare(self, positions: np.ndarray) -> None:
        return None

    def read(self, positions: np.ndarray) -> list[torch.Tensor]:
        return list(self.images[torch.from_numpy(np.asarray(positions, dtype=np.int64))])

    def read_batch(self, positions: np.ndarray) -> torch.Tensor:
        return self.images[torch.from_numpy(np.asarray(positions, dtype=np.int64))]


class ImageSet:
    """Images at ``size`` x ``size`` (uint8, ``channels`` planes) and int64 labels, by position.

    ``len(s)``, ``s.labels`` and ``s[a:b]`` (a set) are free; :meth:`gather`, :meth:`tensor` and
    :meth:`batches` read images.
    """

    def __init__(self, source: ImageSource, positions: np.ndarray, labels: torch.Tensor, size: int,
                 channels: int = 3):
        self.source = source
        self.positions = np.asarray(positions, dtype=np.int64)
        self.labels = labels
        self.size = int(size)
        self.channels = int(channels)
        if len(self.labels) != len(self.positions):
            raise ValueError(f"{len(self.positions)} images but {len(self.labels)} labels")

    @classmethod
    def from_tensors(cls, images: torch.Tensor, labels: torch.Tensor | None = None) -> "ImageSet":
        """A set over square uint8 images held in memory (served at their own size)."""
        if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
            raise ValueError(f"an ImageSet holds square images (N, C, S, S), got {tuple(images.shape)}")
        if labels is None:
            labels = torch.zeros(len(images), dtype=torch.int64)
        return cls(TensorSource(images), np.arange(len(images)), labels, images.shape[-1], images.shape[1])

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, items: slice) -> "ImageSet":
        if not isinstance(items, slice):
            raise TypeError("an ImageSet is sliced with [a:b]; read images with gather() or tensor()")
        return ImageSet(self.source, self.positions[items], self.labels[items], self.size, self.channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape as served: ``(C, size, size)``."""
        return (self.channels, self.size, self.size)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole set at its served size."""
        return len(self) * self.channels * self.size * self.size

    def small(self) -> bool:
        """True when the whole set may be held as one tensor (at most :data:`SMALL_BYTES`)."""
        return self.nbytes <= SMALL_BYTES

    def identity(self) -> str:
        """Names the set's content (source, positions, labels, size) without reading images."""
        digest = hashlib.sha256(self.positions.tobytes())
        digest.update(self.labels.cpu().numpy().astype(np.int64).tobytes())
        return f"{self.source.identity}|{self.size}|{len(self)}|{digest.hexdigest()[:24]}"

    def prepare(self) -> None:
        """Decode into the cache whatever of this set is not there yet."""
        self.source.prepare(self.positions)

    def gather(self, indices: Sequence[int] | torch.Tensor | np.ndarray,
               device: str | torch.device = "cpu") -> torch.Tensor:
        """The images at ``indices`` (positions within this set) as uint8 ``(n, C, size, size)``
        on ``device``; resized there."""
        positions = self.positions[np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices,
                                              dtype=np.int64)]
        device = torch.device(device)
        if isinstance(self.source, TensorSource):
            return fit_square_batch(self.source.read_batch(positions).to(device), self.size)
        images = self.source.read(positions)
        out = torch.empty((len(images), *self.shape), dtype=torch.uint8, device=device)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(tuple(image.shape), []).append(i)
        for rows in by_shape.values():  # same-size pictures resize as one batch
            batch = torch.stack([images[i] for i in rows]).to(device)
            out[torch.tensor(rows, device=device)] = fit_square_batch(batch, self.size)
        return out

    def tensor(self, device: str | torch.device = "cpu", chunk: int = 1024) -> torch.Tensor:
        """The whole set as one uint8 tensor, read ``chunk`` images at a time; on the CPU a set
        larger than :data:`SMALL_BYTES` comes back backed by a temporary file
        (:func:`image_buffer`), so that it never sits in memory whole."""
        if self.small():
            return self.gather(np.arange(len(self)), device)
        out = image_buffer((len(self), *self.shape), device)
        for start in range(0, len(self), chunk):
            out[start:start + chunk] = self.gather(np.arange(start, min(start + chunk, len(self))), device)
        return out

    def batches(self, order: torch.Tensor, device: str | torch.device = "cpu",
                workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(images, labels)`` for each row of ``order`` (a ``(steps, batch)`` index tensor), in
        that order, read ahead by DataLoader workers (pinned memory on a GPU)."""
        device = torch.device(device)
        self.prepare()
        if workers is None:
            workers = 0 if isinstance(self.source, TensorSource) else min(4, max(1, (_cpus() or 2) - 1))
        streamed = not isinstance(self.source, TensorSource)
        loader = torch.utils.data.DataLoader(
            _Batches(self), sampler=list(order), batch_size=None, num_workers=workers,
            pin_memory=streamed and device.type == "cuda")
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


class _Batches(torch.utils.data.Dataset):
    """DataLoader adapter: item = a batch of set indices -> (uint8 images on CPU, labels)."""

    def __init__(self, images: ImageSet):
        self.images = images

    def __getitem__(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images.gather(indices), self.images.labels[indices]

    def __len__(self) -> int:
        return len(self.images)


def _cpus() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
