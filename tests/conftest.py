"""Test configuration: offline, a private cache per session, and the shared data when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Decoded datasets and trained networks go to a per-session folder, not the user's cache."""
    if "PPATTACK_TEST_CACHE" in os.environ:  # CI may keep one cache across steps
        os.environ["PPATTACK_CACHE"] = os.environ["PPATTACK_TEST_CACHE"]
    else:
        os.environ["PPATTACK_CACHE"] = str(tmp_path_factory.mktemp("ppattack-cache"))


@pytest.fixture
def shared_cifar() -> Path:
    """The shared CIFAR-10 JPEG copy; tests using it skip in a clone without ../shared."""
    if not (SHARED_CIFAR / "train").is_dir():
        pytest.skip("the shared CIFAR-10 copy (../shared/data/cifar10-jpeg) is not present")
    return SHARED_CIFAR


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()
