"""Metrics: SSIM (wang against scikit-image, skimage-legacy), PSNR, summaries, and LPIPS's
weight handling (available, unavailable offline, failed download, bad files)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ppattack import lpips_metric
from ppattack.errors import DataError, ShapeError
from ppattack.metrics import psnr, score, ssim, ssim_skimage_legacy, summarize
from ppattack.offline import OFFLINE_ENVS

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def _photo(name: str, size: int) -> torch.Tensor:
    import skimage.data

    image = getattr(skimage.data, name)()[:size, :size]
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def _distortions(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Restorations of ``x`` from good to bad: noise, block shuffle, flips, another image."""
    gen = torch.Generator().manual_seed(0)
    noisy = (x.float() + 20 * torch.randn(x.shape, generator=gen)).clamp(0, 255).round().to(torch.uint8)
    c, h, w = x.shape[-3:]
    blocks = x.reshape(c, h // 4, 4, w // 4, 4).permute(1, 3, 0, 2, 4).reshape(-1, c, 4, 4)
    shuffled = blocks[torch.randperm(len(blocks), generator=gen)]
    shuffled = shuffled.reshape(h // 4, w // 4, c, 4, 4).permute(2, 0, 3, 1, 4).reshape(c, h, w)
    light = (x.float() + 3 * torch.randn(x.shape, generator=gen)).clamp(0, 255).round().to(torch.uint8)
    return {"light noise": light, "noise": noisy, "blocks": shuffled, "flip": x.flip(-1), "inverted": 255 - x}


def _skimage_wang(a: torch.Tensor, b: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    return structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(),
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=2)


def test_ssim_of_identical_images_is_one():
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (3, 3, 32, 32), generator=gen, dtype=torch.uint8)
    x[1] = 0  # flat black: both constants keep SSIM at 1
    x[2] = 255
    assert np.allclose(ssim(x, x), 1.0, atol=1e-6)
    assert np.allclose(ssim_skimage_legacy(x, x), 1.0, atol=1e-6)
    assert np.isinf(psnr(x, x)).all()


@pytest.mark.parametrize("size", [32, 96])
@pytest.mark.parametrize("name", PHOTOS)
def test_ssim_wang_matches_skimage_on_photographs(name: str, size: int):
    plain = _photo(name, size)
    restored = _distortions(plain)
    batch = torch.stack(list(restored.values()))
    ours = ssim(batch, plain.expand_as(batch).contiguous())
    reference = [_skimage_wang(r, plain) for r in restored.values()]
    assert np.abs(ours - reference).max() < 1e-3, dict(zip(restored, zip(ours, reference)))
    assert ours.min() < 0.5 < ours.max()  # the cases span good and bad restorations


def test_ssim_wang_matches_skimage_on_cifar10(shared_cifar: Path):
    from ppattack.file_io import read_image

    files = sorted((shared_cifar / "test").glob("*/000[0-3].jpg"))[:24]
    assert files
    plain = torch.stack([read_image(f) for f in files])
    for restored in (torch.stack([_distortions(p)["noise"] for p in plain]), plain.roll(1, 0)):
        ours = ssim(restored, plain)
        reference = [_skimage_wang(r, p) for r, p in zip(restored, plain)]
        assert np.abs(ours - reference).max() < 1e-3


def test_ssim_skimage_legacy_is_skimage_defaults():
    from skimage.metrics import structural_similarity

    plain = _photo("coffee", 48)
    noisy = _distortions(plain)["noise"]
    expected = structural_similarity(noisy.permute(1, 2, 0).numpy(), plain.permute(1, 2, 0).numpy(),
                                     channel_axis=2, data_range=255)
    assert ssim_skimage_legacy(noisy[None], plain[None])[0] == pytest.approx(expected, abs=1e-12)


def test_metrics_reject_mismatched_or_tiny_batches():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ShapeError):
        ssim(x, x[:1])
    with pytest.raises(ShapeError, match="11x11"):
        ssim(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(ShapeError):
        psnr(x[0], x[0])


def test_psnr_and_summary():
    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    y = x.clone()
    y[0] += 255  # mse 255^2 -> 0 dB
    values = psnr(y, x)
    assert values[0] == pytest.approx(0.0) and math.isinf(values[1])
    summary = summarize(values)
    assert summary["mean"] == "inf" and summary["std"] is None and summary["values"] == [0.0, "inf"]
    summary = summarize(np.array([0.1, 0.2, 0.6]))
    assert summary["mean"] == pytest.approx(0.3) and summary["median"] == pytest.approx(0.2)
    assert summary["std"] == pytest.approx(np.std([0.1, 0.2, 0.6]))
    assert summarize(np.zeros(0)) == {"mean": None, "median": None, "std": None, "values": []}


# -- LPIPS -------------------------------------------------------------------------------------------

@pytest.fixture
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, no weights in the environment, and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(lpips_metric.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(*args, **kwargs):
        raise AssertionError("no download may be attempted here")

    monkeypatch.setattr(lpips_metric, "_download", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def random_trunk(random_alexnet_trunk: Path) -> Path:
    return random_alexnet_trunk


def test_lpips_unavailable_offline_gives_the_reason(no_hub: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reason = lpips_metric.prepare(None, "cpu")
    assert isinstance(reason, str)
    assert str(no_hub) in reason and "--lpips-weights PATH" in reason and "HF_HUB_OFFLINE=1" in reason
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    scores = score(x, x, reason)
    assert scores["lpips"] is None and scores["lpips_unavailable"] == reason


def test_lpips_failed_download_is_a_reason_not_a_crash(no_hub: Path, monkeypatch: pytest.MonkeyPatch):
    for name in OFFLINE_ENVS:
        monkeypatch.delenv(name, raising=False)
    calls = []

    def unreachable(url, target, prefix):
        calls.append((url, target))
        raise OSError("network is unreachable")

    monkeypatch.setattr(lpips_metric, "_download", unreachable)
    monkeypatch.setattr(lpips_metric, "_failed_downloads", {})
    reason = lpips_metric.prepare(None, "cpu")
    assert calls == [(lpips_metric.ALEXNET_URL, no_hub / lpips_metric.ALEXNET_FILE)]
    assert "could not be downloaded (OSError: network is unreachable)" in reason
    assert lpips_metric.prepare(None, "cpu") == reason and len(calls) == 1  # not retried per run
    assert not (no_hub / lpips_metric.ALEXNET_FILE).exists()


def test_lpips_download_with_a_wrong_hash_leaves_nothing(tmp_path: Path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"not alexnet")
    target = tmp_path / "hub" / "alexnet.pth"
    with pytest.raises(ValueError, match="SHA-256"):
        lpips_metric._download(source.as_uri(), target, "7be5be79")
    assert not target.exists() and not list(target.parent.glob("*"))


def test_lpips_with_given_weights_computes(random_trunk: Path, no_hub: Path):
    lpips_metric._load.cache_clear()
    rng_state = torch.get_rng_state()
    metric = lpips_metric.prepare(str(random_trunk), "cpu")
    assert isinstance(metric, lpips_metric.LPIPS)
    assert torch.equal(rng_state, torch.get_rng_state())  # building it drew no random numbers
    assert metric.backbone["torchvision_imagenet"] is False  # flagged in reports
    plain = torch.stack([_photo(name, 32) for name in PHOTOS])
    noisy = torch.stack([_distortions(p)["noise"] for p in plain])
    distances = metric(noisy, plain)
    assert distances.shape == (4,) and np.isfinite(distances).all() and (distances > 0).all()
    assert np.allclose(metric(plain, plain), 0.0, atol=1e-7)
    # the same numbers as the lpips package's own model given the same trunk
    import warnings

    import lpips

    with warnings.catch_warnings():  # torchvision's deprecation notes about lpips's call
        warnings.simplefilter("ignore")
        reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    trunk = torch.load(random_trunk, weights_only=True)
    reference.net.load_state_dict({name: trunk[f"features.{name.split('.', 1)[1]}"]
                                   for name in reference.net.state_dict()})
    with torch.no_grad():
        expected = reference(noisy.float() / 255, plain.float() / 255, normalize=True).flatten()
    assert distances == pytest.approx(expected.double().numpy(), abs=1e-6)
    scores = score(noisy, plain, metric)
    assert scores["lpips_unavailable"] is None
    assert scores["lpips"]["values"] == pytest.approx(distances.tolist())
    # images too small for AlexNet: a reason, not a crash
    small = score(plain[..., :16, :16], plain[..., :16, :16], metric)
    assert small["lpips"] is None and "31x31" in small["lpips_unavailable"]


def test_lpips_weights_from_environment_and_hub(random_trunk: Path, no_hub: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(lpips_metric.WEIGHTS_ENV, str(random_trunk))
    assert lpips_metric.find_backbone() == random_trunk
    monkeypatch.delenv(lpips_metric.WEIGHTS_ENV)
    no_hub.mkdir(parents=True)
    (no_hub / lpips_metric.ALEXNET_FILE).symlink_to(random_trunk)
    assert lpips_metric.find_backbone() == no_hub / lpips_metric.ALEXNET_FILE


def test_lpips_bad_weights_files_are_errors(tmp_path: Path, no_hub: Path):
    with pytest.raises(DataError, match="does not exist"):
        lpips_metric.prepare(str(tmp_path / "missing.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="cannot read"):
        lpips_metric.prepare(str(corrupt))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(DataError, match="not a torchvision AlexNet"):
        lpips_metric.prepare(str(wrong))
