"""Datasets: embedded samples, folders, CIFAR offline, roles and the decoded cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ppattack.data import SAMPLE_PHOTOS, assign_roles, cache_dir, fit_square, load_dataset
from ppattack.errors import DataError, UnknownComponentError


def test_samples_are_built_offline_and_cached():
    dataset = load_dataset("samples", 32)
    images = dataset.train.tensor()
    assert images.dtype == torch.uint8 and images.shape == (48 * len(SAMPLE_PHOTOS), 3, 32, 32)
    assert dataset.image_shape == (3, 32, 32)
    assert len(dataset.classes) == len(SAMPLE_PHOTOS)
    assert set(dataset.test.labels.tolist()) == set(range(len(SAMPLE_PHOTOS)))
    assert list((cache_dir() / "data").glob("samples-*/train-00000.npy"))
    again = load_dataset("samples", 32)
    assert torch.equal(again.train.tensor(), images)


def test_roles_are_disjoint():
    dataset = load_dataset("samples", 16)
    roles = assign_roles(dataset, targets=10)
    assert len(roles.targets) == 10
    assert len(roles.victim_train) + len(roles.public) == len(dataset.train)
    victim = {bytes(x.numpy()) for x in roles.victim_train.tensor()}
    public = {bytes(x.numpy()) for x in roles.public.tensor()}
    targets = {bytes(x.numpy()) for x in roles.targets.tensor()}
    assert not victim & public and not targets & (victim | public)


def test_fit_square_resizes_shorter_side_and_crops():
    image = torch.arange(3 * 40 * 80, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 40, 80)
    assert fit_square(image, 20).shape == (3, 20, 20)
    assert torch.equal(fit_square(image[:, :20, :20], 20), image[:, :20, :20])


def write_folder(root, classes=("a", "b"), per_class=3, size=(10, 12)):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)).save(root / name / f"{i}.png")


def test_folder_dataset_without_splits(tmp_path):
    write_folder(tmp_path / "imgs")
    dataset = load_dataset(f"folder:{tmp_path / 'imgs'}", 8)
    assert dataset.classes == ("a", "b")
    assert len(dataset.train) + len(dataset.test) == 6
    assert dataset.image_shape == (3, 8, 8)


def test_folder_dataset_with_splits_and_limits(tmp_path):
    write_folder(tmp_path / "d" / "train", per_class=5)
    write_folder(tmp_path / "d" / "test", per_class=2)
    dataset = load_dataset(f"folder:{tmp_path / 'd'}", 8, max_train=4)
    assert len(dataset.train) == 4 and len(dataset.test) == 4


def test_empty_or_missing_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="has no train images"):
        load_dataset(f"folder:{tmp_path / 'empty'}", 8)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}", 8)
    with pytest.raises(UnknownComponentError, match="unknown dataset"):
        load_dataset("mnist", 8)


def test_cifar_offline_says_how_to_point_at_a_copy(tmp_path, monkeypatch):
    import torchvision

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_network)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", no_network)
    for name in ("HF_HUB_OFFLINE", "PPATTACK_OFFLINE"):
        monkeypatch.delenv(name, raising=False)  # online, but the network fails
    with pytest.raises(DataError, match="network unreachable.*--data-root"):
        load_dataset("cifar10", 32, data_root=tmp_path)


def test_cifar_is_not_downloaded_when_offline_is_asked(tmp_path, monkeypatch):
    import torchvision

    def must_not_download(*args, **kwargs):
        raise AssertionError("tried to download while offline")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", must_not_download)
    monkeypatch.setenv("PPATTACK_OFFLINE", "1")
    with pytest.raises(DataError, match="offline: .*--data-root"):
        load_dataset("cifar10", 32, data_root=tmp_path)


def test_shared_cifar_copy_loads(shared_cifar):
    dataset = load_dataset(f"folder:{shared_cifar}", 32, max_train=40, max_test=20)
    assert dataset.image_shape == (3, 32, 32)
    assert len(dataset.classes) == 10
    assert len(dataset.train) == 40 and len(dataset.test) == 20
