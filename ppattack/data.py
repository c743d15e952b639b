"""Datasets (docs/protocol.md, "Datasets"): ``samples``, ``cifar10``, ``cifar100`` and ``folder:PATH``.

A dataset is decoded at most once, lazily and at its images' native size, into a disk cache
(:mod:`ppattack.images.disk_cache`, under ``$PPATTACK_CACHE/data``, default ``~/.cache/ppattack``)
and served as :class:`~ppattack.images.image_set.ImageSet` s at the requested square size: a run
decodes, maps and resizes only the images its roles read. Both splits have a fixed shuffled
order, so that "the first N images" spans the classes. :func:`assign_roles` splits a dataset
into the three disjoint roles: the victim's training images, the victim's targets (the test
split) and the attacker's public images (the other half of the training split).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .runtime.cache_folder import cache_dir
from .runtime.distributed import main_first
from .errors import DataError, UnknownComponentError
from .images.disk_cache import MAX_SIDE, CacheSource, Decoder, ImageCache
from .images.image_set import ImageSet, fit_square_batch
from .file_io import IMAGE_SUFFIXES, files_below, read_image_exact, user_path
from .offline import offline, offline_flag

log = logging.getLogger(__name__)

#: Colour photographs shipped inside scikit-image (no download needed), one class each.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina", "colorwheel", "stereo_motorcycle")
SAMPLE_CROPS = {"train": 48, "test": 16}  # per photo
DATASET_NAMES = ("samples", "cifar10", "cifar100", "folder:PATH")
CACHE_VERSION = 2
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """Both splits of a dataset, as image sets at one square size."""

    name: str
    classes: tuple[str, ...]
    train: ImageSet
    test: ImageSet

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.shape

    @classmethod
    def from_tensors(cls, name: str, classes: tuple[str, ...], train_images: torch.Tensor,
                     train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor) -> "Dataset":
        """A dataset over images already in memory (tests, benchmarks)."""
        return cls(name, classes, ImageSet.from_tensors(train_images, train_labels),
                   ImageSet.from_tensors(test_images, test_labels))


@dataclass(frozen=True)
class Roles:
    """The three disjoint roles of a case. Only the harness sees all of them."""

    victim_train: ImageSet
    targets: ImageSet
    public: ImageSet

    @classmethod
    def from_tensors(cls, victim_train: torch.Tensor, victim_train_labels: torch.Tensor, targets: torch.Tensor,
                     target_labels: torch.Tensor, public: torch.Tensor, public_labels: torch.Tensor) -> "Roles":
        """Roles over images already in memory (uint8 ``(N, C, S, S)`` each, with labels)."""
        return cls(ImageSet.from_tensors(victim_train, victim_train_labels),
                   ImageSet.from_tensors(targets, target_labels), ImageSet.from_tensors(public, public_labels))

    @property
    def victim_train_labels(self) -> torch.Tensor:
        return self.victim_train.labels

    @property
    def target_labels(self) -> torch.Tensor:
        return self.targets.labels

    @property
    def public_labels(self) -> torch.Tensor:
        return self.public.labels

    def sizes(self) -> dict[str, int]:
        return {"victim_train": len(self.victim_train), "targets": len(self.targets),
                "public": len(self.public)}


def assign_roles(dataset: Dataset, targets: int | None = None) -> Roles:
    """Victim training = first half of train, public = second half, targets = first test images."""
    half = len(dataset.train) // 2
    count = len(dataset.test) if targets is None else min(targets, len(dataset.test))
    if half == 0 or count == 0:
        raise DataError(f"dataset {dataset.name} is too small to split into roles "
                        f"({len(dataset.train)} train, {len(dataset.test)} test images)")
    return Roles(dataset.train[:half], dataset.test[:count], dataset.train[half:])


# -- resizing ------------------------------------------------------------------------------------

def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and centre-crop; uint8 (C, S, S)."""
    return fit_square_batch(image[None], size)[0]


def _order(count: int, seed: int) -> np.ndarray:
    """The fixed shuffled order of a split: position p holds item ``order[p]``."""
    return np.random.default_rng(seed).permutation(count)


# -- loading ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Catalogue:
    """What a dataset spec names: a cache identity, and how to open it (classes, the labels of
    each split in its fixed order, and a decoder by split and position), which happens only
    when its cache lacks something."""

    kind: str
    identity: str
    max_side: int | None  # shorter-side cap of cached pictures (None: keep them whole)
    open: Callable[[], tuple[tuple[str, ...], dict[str, list[int]], Decoder]]


def load_dataset(spec: str, image_size: int, *, data_root: str | os.PathLike | None = None,
                 max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """Dataset ``spec`` served at ``image_size`` x ``image_size``; decodes nothing yet.

    ``max_train`` / ``max_test`` keep the first images of each split's fixed shuffled order.
    Images are decoded into the cache when a role first reads them; under torchrun, rank 0
    lists the dataset first and the other ranks then read its cache.
    """
    with main_first():
        catalogue = _catalogue(spec, data_root)
        max_side = None if catalogue.max_side is None else max(catalogue.max_side, int(image_size))
        digest = hashlib.sha256(f"{catalogue.identity}|{CACHE_VERSION}|{max_side}".encode()).hexdigest()[:24]
        opened: list = []

        def decoder() -> Decoder:
            if not opened:
                opened.extend(catalogue.open())
            return opened[2]

        cache = ImageCache(cache_dir() / "data" / f"{catalogue.kind}-{digest}", decoder, max_side=max_side,
                           description=spec)
        meta = cache.read_meta()
        if meta is None:
            decoder()
            meta = {"classes": list(opened[0]), "labels": opened[1]}
            cache.write_meta(meta["classes"], meta["labels"])
        cache.use_counts({split: len(meta["labels"][split]) for split in SPLITS})
    sets = {}
    for split, limit in zip(SPLITS, (max_train, max_test)):
        labels = torch.tensor(meta["labels"][split], dtype=torch.int64)[:limit]
        sets[split] = ImageSet(CacheSource(cache, split), np.arange(len(labels)), labels, image_size)
    return Dataset(spec, tuple(meta["classes"]), sets["train"], sets["test"])


def _catalogue(spec: str, data_root: str | os.PathLike | None) -> _Catalogue:
    if spec == "samples":
        return _Catalogue("samples", "samples", None, _open_samples)  # crops: at most 706 pixels
    if spec in ("cifar10", "cifar100"):
        root = Path(data_root) if data_root else cache_dir() / "downloads"
        return _Catalogue(spec, f"{spec}-{root.resolve()}", None, lambda: _open_cifar(spec, root))
    if spec.startswith("folder:"):
        if not spec[len("folder:"):].strip():
            raise DataError("dataset 'folder:' names no folder: give folder:PATH (use folder:. for the current one)")
        folder = user_path(spec[len("folder:"):])
        splits = _folder_files(folder)
        listing = hashlib.sha256()
        for split, files in splits.items():
            for path, _ in files:
                stat = path.stat()
                listing.update(os.fsencode(f"{split}/{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n"))
        return _Catalogue("folder", f"folder-{folder.resolve()}-{listing.hexdigest()}",
                          MAX_SIDE, lambda: _open_folder(splits))
    raise UnknownComponentError(f"unknown dataset '{spec}': use samples, cifar10, cifar100 or folder:PATH")


def _open_samples() -> tuple[tuple[str, ...], dict[str, list[int]], Decoder]:
    """Fixed-seed square crops of each photograph, labelled by photograph."""
    import skimage.data

    photos, items = [], {split: [] for split in SPLITS}  # items: (photo, top, left, side)
    for label, photo_name in enumerate(SAMPLE_PHOTOS):
        photo = getattr(skimage.data, photo_name)()
        if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disparity)
            photo = photo[0]
        photo = torch.from_numpy(np.ascontiguousarray(photo[:, :, :3])).permute(2, 0, 1)
        photos.append(photo)
        _, h, w = photo.shape
        for split_index, (split, count) in enumerate(SAMPLE_CROPS.items()):
            rng = np.random.default_rng([label, split_index, 2022])
            for _ in range(count):
                side = int(rng.uniform(0.2, 0.5) * min(h, w))
                top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                items[split].append((label, top, left, side))
    ordered = {split: [items[split][i] for i in _order(len(items[split]), seed)]
               for seed, split in enumerate(SPLITS)}

    def decode(split: str, position: int) -> torch.Tensor:
        label, top, left, side = ordered[split][position]
        return photos[label][:, top:top + side, left:left + side].contiguous()

    return SAMPLE_PHOTOS, {split: [item[0] for item in ordered[split]] for split in SPLITS}, decode


def _open_cifar(name: str, root: Path) -> tuple[tuple[str, ...], dict[str, list[int]], Decoder]:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    arrays, labels = {}, {}
    for seed, split in enumerate(SPLITS):
        try:
            try:
                data = cls(str(root), train=split == "train", download=False)
            except RuntimeError:
                if offline():
                    raise RuntimeError(f"offline: {offline_flag()}") from None
                log.info("downloading %s to %s", name, root)
                data = cls(str(root), train=split == "train", download=True)
        except Exception as e:
            folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
            raise DataError(f"{name} is not in {root} and could not be downloaded "
                            f"({e}): put the extracted '{folder}' folder in a "
                            "directory and pass --data-root DIR") from None
        order = _order(len(data.data), seed)
        arrays[split] = data.data[order]  # (N, H, W, 3) uint8, in the split's fixed order
        labels[split] = [int(data.targets[i]) for i in order]
        classes = tuple(data.classes)

    def decode(split: str, position: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arrays[split][position])).permute(2, 0, 1).contiguous()

    return classes, labels, decode


def _class_files(folder: Path) -> list[tuple[Path, str]]:
    files = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files += [(path, class_dir.name) for path in files_below(class_dir, suffixes=IMAGE_SUFFIXES)]
    return files


def _folder_files(folder: Path) -> dict[str, list[tuple[Path, str]]]:
    """``{"train": [(path, class), ...], "test": [...]}`` from an ImageFolder layout."""
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist: pass folder:PATH to an existing "
                        "folder of class sub-folders")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        splits = {"train": _class_files(folder / "train"), "test": _class_files(folder / "test")}
    else:
        files = _class_files(folder)
        order = np.random.default_rng(0).permutation(len(files))
        cut = len(files) - max(1, len(files) // 5) if len(files) > 1 else len(files)
        splits = {"train": [files[i] for i in sorted(order[:cut])],
                  "test": [files[i] for i in sorted(order[cut:])]}
    for split, files in splits.items():
        if not files:
            raise DataError(f"dataset folder {folder} has no {split} images: expected "
                            f"{folder}/[train|test]/<class>/<image>.png (or .jpg)")
    return splits


def _open_folder(splits: dict[str, list[tuple[Path, str]]]) -> tuple[tuple[str, ...], dict[str, list[int]], Decoder]:
    classes = tuple(sorted({c for files in splits.values() for _, c in files}))
    index = {c: i for i, c in enumerate(classes)}
    ordered = {split: [splits[split][i] for i in _order(len(splits[split]), seed)]
               for seed, split in enumerate(SPLITS)}

    def decode(split: str, position: int) -> torch.Tensor:
        return read_image_exact(ordered[split][position][0], 3, as_displayed=True)

    return classes, {split: [index[c] for _, c in ordered[split]] for split in SPLITS}, decode
