"""Datasets (protocol.md): ``samples``, ``cifar10``, ``cifar100`` and ``folder:PATH``.

A dataset is decoded once to uint8 tensors at the requested square size and cached on disk
(``$PPATTACK_CACHE/data``, default ``~/.cache/ppattack``); both splits are stored in a fixed
shuffled order so that "the first N images" spans the classes. :func:`assign_roles` splits
it into the three disjoint roles: the victim's training images, the victim's targets (the
test split) and the attacker's public images (the other half of the training split).
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .distributed import main_first, world
from .errors import DataError, UnknownComponentError
from .io import IMAGE_SUFFIXES, atomic_torch_save, read_image_exact, torch_load
from .offline import offline, offline_flag

log = logging.getLogger(__name__)

#: Colour photographs shipped inside scikit-image (no download needed), one class each.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina", "colorwheel", "stereo_motorcycle")
SAMPLE_CROPS = {"train": 48, "test": 16}  # per photo
DATASET_NAMES = ("samples", "cifar10", "cifar100", "folder:PATH")
CACHE_VERSION = 1


def cache_dir() -> Path:
    """Root of ppattack's caches: ``$PPATTACK_CACHE`` or ``~/.cache/ppattack``."""
    return Path(os.environ.get("PPATTACK_CACHE", Path.home() / ".cache" / "ppattack"))


@dataclass(frozen=True)
class Dataset:
    """Decoded images (uint8 ``(N, 3, S, S)``) and int64 labels of both splits."""

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])


@dataclass(frozen=True)
class Roles:
    """The three disjoint roles of a case. Only the harness sees all of them."""

    victim_train: torch.Tensor
    victim_train_labels: torch.Tensor
    targets: torch.Tensor
    target_labels: torch.Tensor
    public: torch.Tensor
    public_labels: torch.Tensor

    def sizes(self) -> dict[str, int]:
        return {"victim_train": len(self.victim_train), "targets": len(self.targets),
                "public": len(self.public)}


def assign_roles(dataset: Dataset, targets: int | None = None) -> Roles:
    """Victim training = first half of train, public = second half, targets = first test images."""
    half = len(dataset.train_images) // 2
    count = len(dataset.test_images) if targets is None else min(targets, len(dataset.test_images))
    if half == 0 or count == 0:
        raise DataError(f"dataset {dataset.name} is too small to split into roles "
                        f"({len(dataset.train_images)} train, {len(dataset.test_images)} test images)")
    return Roles(dataset.train_images[:half], dataset.train_labels[:half],
                 dataset.test_images[:count], dataset.test_labels[:count],
                 dataset.train_images[half:], dataset.train_labels[half:])


# -- resizing ------------------------------------------------------------------------------------

def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and centre-crop; uint8 (C, S, S)."""
    _, h, w = image.shape
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        if new != (h, w):
            image = F.interpolate(image[None].float(), size=new, mode="bilinear",
                                  antialias=True, align_corners=False)[0]
            image = image.round().clamp(0, 255).to(torch.uint8)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        image = image[:, top:top + size, left:left + size]
    return image.contiguous()


def _shuffled(images: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(images)))
    return images[order].contiguous(), labels[order].contiguous()


# -- loading and caching ---------------------------------------------------------------------------

def load_dataset(spec: str, image_size: int, *, data_root: str | os.PathLike | None = None,
                 max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """Load dataset ``spec`` at ``image_size`` x ``image_size``, from the cache when possible.

    ``max_train`` / ``max_test`` keep a fixed pseudo-random subset of each split. Under
    torchrun, rank 0 downloads and caches first; the other ranks then read its cache.
    """
    with main_first():
        return _load_dataset(spec, image_size, data_root, max_train, max_test)


def _load_dataset(spec: str, image_size: int, data_root: str | os.PathLike | None,
                  max_train: int | None, max_test: int | None) -> Dataset:
    if spec == "samples":
        identity = f"samples-{CACHE_VERSION}"
        build = lambda: _build_samples(image_size)  # noqa: E731
    elif spec in ("cifar10", "cifar100"):
        root = Path(data_root) if data_root else cache_dir() / "downloads"
        identity = f"{spec}-{CACHE_VERSION}-{root.resolve()}"
        build = lambda: _build_cifar(spec, root, image_size)  # noqa: E731
    elif spec.startswith("folder:"):
        if not spec[len("folder:"):].strip():
            raise DataError("dataset 'folder:' names no folder: give folder:PATH (use folder:. for the current one)")
        folder = Path(spec[len("folder:"):]).expanduser()
        splits = _folder_files(folder)
        listing = hashlib.sha256()
        for split, files in splits.items():
            for path, _ in files:
                stat = path.stat()
                listing.update(f"{split}/{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        identity = f"folder-{CACHE_VERSION}-{folder.resolve()}-{listing.hexdigest()}"
        build = lambda: _build_folder(folder, splits, image_size, max_train, max_test)  # noqa: E731
    else:
        raise UnknownComponentError(f"unknown dataset '{spec}': use samples, cifar10, cifar100 or folder:PATH")

    identity += f"-{image_size}-{max_train}-{max_test}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    path = cache_dir() / "data" / f"{spec.split(':')[0]}-{image_size}-{digest}.pt"
    if path.exists():
        try:
            stored = torch_load(path)
            return _subset(Dataset(spec, tuple(stored["classes"]), stored["train_images"],
                                   stored["train_labels"], stored["test_images"],
                                   stored["test_labels"]), max_train, max_test)
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring unreadable dataset cache %s (%s)", path, e)
    dataset = _subset(build(), max_train, max_test)
    if world().is_main:
        atomic_torch_save(path, {"classes": list(dataset.classes),
                                 "train_images": dataset.train_images, "train_labels": dataset.train_labels,
                                 "test_images": dataset.test_images, "test_labels": dataset.test_labels})
    return dataset


def _subset(dataset: Dataset, max_train: int | None, max_test: int | None) -> Dataset:
    """Keep the first images of each (already shuffled) split."""
    return Dataset(dataset.name, dataset.classes,
                   dataset.train_images[:max_train], dataset.train_labels[:max_train],
                   dataset.test_images[:max_test], dataset.test_labels[:max_test])


def _build_samples(image_size: int) -> Dataset:
    import skimage.data

    splits: dict[str, tuple[list[torch.Tensor], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, photo_name in enumerate(SAMPLE_PHOTOS):
        photo = getattr(skimage.data, photo_name)()
        if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disparity)
            photo = photo[0]
        photo = torch.from_numpy(np.ascontiguousarray(photo[:, :, :3])).permute(2, 0, 1)
        _, h, w = photo.shape
        for split_index, (split, count) in enumerate(SAMPLE_CROPS.items()):
            rng = np.random.default_rng([label, split_index, 2022])
            for _ in range(count):
                side = int(rng.uniform(0.2, 0.5) * min(h, w))
                top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                crop = photo[:, top:top + side, left:left + side]
                splits[split][0].append(fit_square(crop, image_size))
                splits[split][1].append(label)
    parts = {split: _shuffled(torch.stack(images), torch.tensor(labels), seed=index)
             for index, (split, (images, labels)) in enumerate(splits.items())}
    return Dataset("samples", SAMPLE_PHOTOS, *parts["train"], *parts["test"])


def _build_cifar(name: str, root: Path, image_size: int) -> Dataset:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    parts = {}
    for train in (True, False):
        try:
            try:
                data = cls(str(root), train=train, download=False)
            except RuntimeError:
                if offline():
                    raise RuntimeError(f"offline: {offline_flag()}") from None
                log.info("downloading %s to %s", name, root)
                data = cls(str(root), train=train, download=True)
        except Exception as e:
            folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
            raise DataError(f"{name} is not in {root} and could not be downloaded "
                            f"({e}): put the extracted '{folder}' folder in a "
                            "directory and pass --data-root DIR") from None
        images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
        if image_size != images.shape[-1]:
            images = torch.stack([fit_square(image, image_size) for image in images])
        parts[train] = _shuffled(images, torch.tensor(data.targets), seed=int(not train))
        classes = tuple(data.classes)
    return Dataset(name, classes, *parts[True], *parts[False])


def _class_files(folder: Path) -> list[tuple[Path, str]]:
    files = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files += [(path, class_dir.name) for path in sorted(class_dir.rglob("*"))
                  if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
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


def _build_folder(folder: Path, splits: dict[str, list[tuple[Path, str]]], image_size: int,
                  max_train: int | None, max_test: int | None) -> Dataset:
    classes = tuple(sorted({c for files in splits.values() for _, c in files}))
    index = {c: i for i, c in enumerate(classes)}
    parts = {}
    for seed, (split, limit) in enumerate((("train", max_train), ("test", max_test))):
        files = splits[split]
        order = np.random.default_rng(seed).permutation(len(files))[:limit]
        chosen = [files[i] for i in order]

        def decode(item: tuple[Path, str]) -> torch.Tensor:
            return fit_square(read_image_exact(item[0], 3), image_size)

        log.info("decoding %d %s images from %s", len(chosen), split, folder)
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            images = list(pool.map(decode, chosen))
        labels = torch.tensor([index[c] for _, c in chosen])
        parts[split] = (torch.stack(images), labels)
    return Dataset(f"folder:{folder}", classes, *parts["train"], *parts["test"])
