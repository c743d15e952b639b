"""Test configuration: offline, a private cache per session, and the shared data when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
# The test plugins are packages that tests install or import on purpose: collecting them (for
# doctests) would import them, and their build metadata would register their ciphers.
collect_ignore = ["plugins"]
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


@pytest.fixture(scope="session")
def random_alexnet_trunk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FOR TESTS ONLY: a randomly initialised torchvision AlexNet trunk (``features.*`` tensors),
    to exercise the LPIPS loading code offline. Reports must never use such weights: LPIPS
    values from a random trunk are meaningless (reports flag any trunk that is not torchvision's)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    with torch.device("meta"):  # only the trunk gets real (random) tensors: fast
        features = torchvision.models.alexnet().features
    features = features.to_empty(device="cpu")
    for layer in features:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    path = tmp_path_factory.mktemp("lpips") / "random-alexnet-TEST-ONLY.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path
