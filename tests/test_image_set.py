"""The data layer's memory contract: decode only what a role reads, at native size, once;
serve it resized per batch; stream large sets; rebuild damaged cache chunks."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ppattack
from ppattack import data
from ppattack.images import disk_cache, image_set
from ppattack.learning.classifier import ModelConfig, TrainConfig, fit
from ppattack.data import assign_roles, cache_dir, fit_square, load_dataset

TINY = {"width": 16, "depth": 1}


def picture(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A train/test folder of 12 + 6 PNGs of different sizes, cache chunks of 4 images, a
    cache of its own."""
    monkeypatch.setattr(disk_cache, "CHUNK", 4)
    monkeypatch.setenv("PPATTACK_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "pictures"
    for split, count in (("train", 12), ("test", 6)):
        for i in range(count):
            folder = root / split / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture(100 * len(split) + i, 10 + i, 14 + 2 * i)).save(folder / f"{i:02d}.png")
    return root


def chunk_files(split: str) -> list[str]:
    return sorted(p.name for p in (cache_dir() / "data").glob(f"folder-*/{split}-*.npy")
                  if not p.name.endswith(".index.npy"))


def test_only_the_chunks_a_role_reads_are_decoded(folder):
    dataset = load_dataset(f"folder:{folder}", 8)
    assert chunk_files("train") == chunk_files("test") == []  # listing decodes nothing
    roles = assign_roles(dataset, targets=3)
    roles.targets.tensor()
    assert chunk_files("test") == ["test-00000.npy"] and chunk_files("train") == []
    roles.public[:2].tensor()  # train positions 6, 7: the second chunk only
    assert chunk_files("train") == ["train-00001.npy"]


def test_a_warm_cache_is_read_without_decoding(folder, monkeypatch):
    first = load_dataset(f"folder:{folder}", 8).train.tensor()

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "read_image_exact", must_not_decode)
    again = load_dataset(f"folder:{folder}", 8).train.tensor()
    assert torch.equal(first, again)


def test_images_are_cached_at_native_size_and_resized_when_read(folder):
    dataset = load_dataset(f"folder:{folder}", 8)
    files = dataset.train.source.cache  # the cache behind the split
    dataset.train.prepare()
    native = files.read("train", np.arange(len(dataset.train)))
    sizes = {tuple(image.shape) for image in native}
    assert len(sizes) == len(native) and all(shape[1] >= 10 for shape in sizes)
    served = dataset.train.tensor()
    assert served.shape == (12, 3, 8, 8)
    assert all(torch.equal(served[i], fit_square(native[i], 8)) for i in range(12))
    bigger = load_dataset(f"folder:{folder}", 12).train.tensor()  # same cache, another size
    assert bigger.shape == (12, 3, 12, 12) and torch.equal(bigger[0], fit_square(native[0], 12))


def test_huge_pictures_are_shrunk_before_caching(folder, monkeypatch):
    monkeypatch.setattr(data, "MAX_SIDE", 11)
    dataset = load_dataset(f"folder:{folder}", 8)
    dataset.train.prepare()
    shorter = [min(image.shape[1:]) for image in dataset.train.source.cache.read("train", np.arange(12))]
    assert max(shorter) == 11 and min(shorter) == 10  # the 10-pixel ones are kept as they are


def test_a_damaged_chunk_is_rebuilt_with_one_line(folder, caplog):
    reference = load_dataset(f"folder:{folder}", 8).test.tensor()
    pixels = next((cache_dir() / "data").glob("folder-*/test-00000.npy"))
    pixels.write_bytes(pixels.read_bytes()[:-7])  # truncated
    with caplog.at_level(logging.WARNING, logger="ppattack.images.disk_cache"):
        again = load_dataset(f"folder:{folder}", 8).test.tensor()
    assert torch.equal(again, reference)
    assert [r for r in caplog.records if "rebuilding dataset cache chunk test-00000" in r.getMessage()]


def test_batches_stream_the_same_images_with_or_without_workers(folder):
    train = load_dataset(f"folder:{folder}", 8).train
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0)).view(3, 4)
    expected = [(train.gather(rows), train.labels[rows]) for rows in order]
    for workers in (0, 2):
        got = list(train.batches(order, workers=workers))
        assert len(got) == 3
        for (x, y), (ex, ey) in zip(got, expected):
            assert torch.equal(x, ex) and torch.equal(y, ey)


def test_streamed_training_equals_training_on_a_held_tensor(folder, monkeypatch):
    train = load_dataset(f"folder:{folder}", 16).train
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 16, 16), seed=0)
    config = ModelConfig("vit", (3, 16, 16), 2, 4, **TINY)
    training = TrainConfig(epochs=2, batch_size=4)

    def weights() -> dict[str, torch.Tensor]:
        return fit(cipher, key, train, config, training, use_cache=False).model.state_dict()

    held = weights()
    monkeypatch.setattr(image_set, "SMALL_BYTES", 0)  # now the set streams from the disk cache
    streamed = weights()
    assert all(torch.equal(held[name], streamed[name]) for name in held)


def test_a_run_decodes_no_image_its_roles_do_not_read(folder):
    from ppattack.harness import RunConfig, run

    run(RunConfig(cipher="proposed", attack="fr", threat="coa", dataset=f"folder:{folder}", limit=2,
                  accuracy=False, params={"image_size": 16, "block_size": 4}))
    assert chunk_files("test") == ["test-00000.npy"] and chunk_files("train") == []


def test_large_sets_come_back_file_backed_and_equal(folder, monkeypatch):
    """Above SMALL_BYTES a whole set, and the victim's encrypted training images, are buffers
    backed by a temporary file, equal image for image to what memory would hold."""
    from ppattack.harness import encrypted_training_images

    train = load_dataset(f"folder:{folder}", 8).train
    in_memory = train.tensor()
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 8, 8), seed=0)
    expected = encrypted_training_images(cipher, key, train, torch.device("cpu"), chunk=5)
    assert mapped_image_files() == 0
    monkeypatch.setattr(image_set, "SMALL_BYTES", 100)
    spilled = train.tensor(chunk=5)
    assert torch.equal(spilled, in_memory) and mapped_image_files() == 1
    encrypted = encrypted_training_images(cipher, key, train, torch.device("cpu"), chunk=5)
    assert torch.equal(encrypted, expected) and mapped_image_files() == 2
    del spilled, encrypted
    assert mapped_image_files() == 0  # the files go with their tensors


def mapped_image_files() -> int:
    """Temporary image files mapped into this process (Linux: /proc/self/maps)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps")
    return len({line.split()[-2] for line in maps.read_text().splitlines() if "ppattack-images-" in line})


def test_the_public_colour_histogram_counts_in_chunks():
    from ppattack.attacks.fr import colour_histogram

    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    whole = colour_histogram(images)
    assert torch.equal(colour_histogram(images[i:i + 3] for i in range(0, 10, 3)), whole)
    assert not torch.equal(colour_histogram(images[:3]), whole)
