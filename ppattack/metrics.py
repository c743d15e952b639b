"""Image-quality metrics of reconstructions against the plain images (docs/protocol.md,
"Results, metrics and reports").

- ``ssim`` ("wang"): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 255, per
  channel then averaged, over the valid region (as scikit-image crops its border); batched
  on the device with kornia.
- ``ssim_up_to_mirror``: ``ssim`` with the restorations in the better of their two left-right
  orientations, chosen once for the whole set (:func:`ssim_up_to_mirror`).
- ``ssim_skimage_legacy``: scikit-image defaults on uint8 RGB (7x7 uniform window), the
  convention of public reproductions.
- ``psnr``: peak 255, per image.
- LPIPS: AlexNet, version 0.1, ``normalize=True`` on [0, 1] inputs (:mod:`ppattack.lpips_metric`);
  null with the reason when the trunk weights cannot be had, never a random trunk.
All take uint8 batches ``(N, C, H, W)`` and return float64 NumPy arrays of length N.
:data:`METRICS` is the one table of them (name, per-image function, direction, digits, label)
that scoring, result.json's schema, report.md, the terminal summary and the bench and audit
tables iterate: adding a metric is a row there plus its function. :func:`score` summarizes
them (mean, median, std, per-image values).

    >>> x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    >>> ssim(x, x).tolist()
    [1.0, 1.0]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .errors import ShapeError
from .lpips_metric import LPIPS, describe as describe_lpips

WINDOW = 11  # SSIM "wang": Gaussian window taps (sigma 1.5)


def _check_pair(x: torch.Tensor, y: torch.Tensor, min_side: int = 1) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ShapeError(f"metrics need two batches of equal shape (N, C, H, W), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[2:]) < min_side:
        raise ShapeError(f"SSIM needs images of at least {min_side}x{min_side} pixels, got "
                         f"{x.shape[2]}x{x.shape[3]}")


def ssim(x: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """Per-image SSIM "wang" (Gaussian 11 / 1.5, data range 255), batched on ``x``'s device.

    Equal to scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=...)`` to float32 rounding: both
    keep only the pixels whose whole window lies inside the image.

    Args:
        x, y: uint8 (or float in [0, 255]) batches of the same shape.
        chunk: images per kornia call (memory bound).

    Returns:
        float64 array ``(N,)``.

    Shape:
        ``(N, C, H, W)`` with ``H, W >= 11``.
    """
    import kornia

    _check_pair(x, y, WINDOW)
    values = []
    for start in range(0, len(x), chunk):
        a = x[start:start + chunk].float()
        b = y[start:start + chunk].to(a.device).float()
        ssim_map = kornia.metrics.ssim(a, b, window_size=WINDOW, max_val=255.0, padding="valid")
        values.append(ssim_map.mean(dim=(1, 2, 3)).double().cpu())
    return torch.cat(values).numpy() if values else np.zeros(0)


def better_orientation(as_restored: np.ndarray, mirrored: np.ndarray) -> tuple[np.ndarray, bool]:
    """The per-image SSIM of the orientation whose mean over the set is higher, and whether it
    is the mirrored one (a tie, or no images, keeps the restorations as they are).

    One choice for the whole set, never a per-image maximum: a shared key restores every image
    alike, and a per-image maximum would lift noise. Both arrays are ``(N,)``, image by image.

        >>> better_orientation(np.array([0.2, 0.3]), np.array([1.0, 0.9]))
        (array([1. , 0.9]), True)
    """
    if len(as_restored) and float(np.mean(mirrored)) > float(np.mean(as_restored)):
        return mirrored, True
    return as_restored, False


def ssim_up_to_mirror(restored: torch.Tensor, plain: torch.Tensor) -> tuple[np.ndarray, bool]:
    """Per-image SSIM "wang" of ``restored`` as it is or mirrored left-right (the whole set in
    one orientation, :func:`better_orientation`), and whether the mirror was chosen.

    For a cipher whose pieces may turn, the key that decrypts every picture to its mirror image
    fits as well as the true one, and no statistic of natural photos reliably tells the two
    apart: this scores an attack that restored the mirror image as the restoration it is.

    Returns:
        float64 array ``(N,)`` and ``mirrored``.
    """
    return better_orientation(ssim(restored, plain), ssim(restored.flip(-1), plain))


def ssim_skimage_legacy(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image SSIM with scikit-image defaults on uint8 RGB (7x7 uniform window)."""
    from skimage.metrics import structural_similarity

    _check_pair(x, y, 7)
    a = x.detach().cpu().permute(0, 2, 3, 1).numpy()
    b = y.detach().cpu().permute(0, 2, 3, 1).numpy()
    return np.array([structural_similarity(p, q, channel_axis=2, data_range=255)
                     for p, q in zip(a, b)], dtype=np.float64)


def psnr(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image PSNR in dB with peak 255 (``inf`` for identical images)."""
    _check_pair(x, y)
    mse = (x.float() - y.to(x.device).float()).pow(2).mean(dim=(1, 2, 3)).double().cpu().numpy()
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


def lpips_distance(x: torch.Tensor, y: torch.Tensor, network: LPIPS) -> np.ndarray:
    """Per-image LPIPS distance of ``x`` to ``y`` under the run's ``network``."""
    return network(x, y)


@dataclass(frozen=True)
class Metric:
    """One image-quality metric of restorations against the plain images, as every table shows it.

    Attributes:
        name: its key in result.json's ``metrics`` and in the bench and audit tables.
        per_image: its score of each restored image against its plain image: two uint8 batches
            ``(N, C, H, W)`` -> float64 ``(N,)``.
        higher_is_better: the direction: whether a higher score means a closer restoration.
        digits: decimals shown in tables.
        label: its name in report.md and the terminal summary (:meth:`heading` adds the arrow).
        convention: what it means, exactly, recorded in every result.json
            (``metric_conventions``).
        up_to_mirror: score the restorations as restored and all mirrored left-right and keep the
            orientation whose mean is higher (:func:`better_orientation`); the summary says which
            (``mirrored``).
        needs_lpips: ``per_image`` takes the run's LPIPS network as a third argument; without
            one the metric is null and result.json's ``lpips_unavailable`` says why.
    """

    name: str
    per_image: Callable[..., np.ndarray]
    higher_is_better: bool
    digits: int
    label: str
    convention: str
    up_to_mirror: bool = False
    needs_lpips: bool = False

    def heading(self) -> str:
        """The label with the direction, e.g. ``"PSNR (dB) ↑"``."""
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


#: Every metric a run reports, in the order tables show them.
METRICS: tuple[Metric, ...] = (
    Metric("ssim", ssim, True, 3, "SSIM (wang)",
           "wang: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 255, "
           "per channel over the valid region (5-pixel border dropped), then averaged"),
    Metric("ssim_up_to_mirror", ssim, True, 3, "SSIM (wang) up to a left-right mirror",
           "ssim (wang) of the restorations as restored or all mirrored left-right, whichever "
           "orientation has the higher mean over the whole set (one choice for every image; "
           "'mirrored' says which)", up_to_mirror=True),
    Metric("ssim_skimage_legacy", ssim_skimage_legacy, True, 3, "SSIM (skimage-legacy)",
           "scikit-image structural_similarity defaults on uint8 RGB: 7x7 uniform window, sample "
           "covariance, data range 255"),
    Metric("psnr", psnr, True, 2, "PSNR (dB)", "peak 255, per image, in dB (inf for identical images)"),
    Metric("lpips", lpips_distance, False, 3, "LPIPS (AlexNet)",
           "lpips v0.1, AlexNet trunk, normalize=True on [0, 1] inputs; lower is more similar",
           needs_lpips=True),
)


class MetricUnavailable(Exception):
    """A metric that cannot be measured in this run (its network is missing), and why."""


def per_image_scores(metric: Metric, restored: torch.Tensor, plain: torch.Tensor,
                     lpips: LPIPS | str | None = None) -> np.ndarray:
    """``metric.per_image`` of ``restored`` against ``plain`` as restored (``lpips``: as for
    :func:`score`); :class:`MetricUnavailable` when it needs an LPIPS network that is missing or
    cannot take these images."""
    if not metric.needs_lpips:
        return metric.per_image(restored, plain)
    if not isinstance(lpips, LPIPS):
        raise MetricUnavailable(lpips or "LPIPS was not requested")
    try:
        return metric.per_image(restored, plain, lpips)
    except ShapeError as e:
        raise MetricUnavailable(str(e)) from None


def summarize(values: np.ndarray) -> dict[str, Any]:
    """Mean, median, std and the per-image values (JSON-ready; inf becomes the string "inf")."""
    def clean(v: float) -> float | str:
        return "inf" if math.isinf(v) else float(v)

    if len(values) == 0:
        return {"mean": None, "median": None, "std": None, "values": []}
    return {"mean": clean(float(np.mean(values))), "median": clean(float(np.median(values))),
            "std": clean(float(np.std(values))) if np.isfinite(values).all() else None,
            "values": [clean(float(v)) for v in values]}


def score(restored: torch.Tensor, plain: torch.Tensor, lpips: LPIPS | str | None = None) -> dict[str, Any]:
    """Every metric of :data:`METRICS` of ``restored`` against ``plain``, summarized.

    Args:
        lpips: an :class:`~ppattack.lpips_metric.LPIPS` metric, or the reason it is unavailable
            (see :func:`ppattack.lpips_metric.prepare`); ``None``: not requested.

    Returns:
        ``{name: summary}`` for each metric in table order (:func:`summarize`; a metric scored up
        to a mirror adds ``mirrored``, :func:`better_orientation`), then ``lpips_unavailable``:
        why the metrics that need the LPIPS network are ``None``, else ``None``.
    """
    scores: dict[str, Any] = {}
    unavailable = None
    as_restored: dict[Callable[..., np.ndarray], np.ndarray] = {}  # ssim's values serve both SSIM rows
    for metric in METRICS:
        try:
            if metric.per_image not in as_restored:
                as_restored[metric.per_image] = per_image_scores(metric, restored, plain, lpips)
        except MetricUnavailable as e:
            scores[metric.name], unavailable = None, str(e)
            continue
        values = as_restored[metric.per_image]
        if metric.up_to_mirror:
            values, mirrored = better_orientation(values, per_image_scores(metric, restored.flip(-1), plain, lpips))
            scores[metric.name] = {**summarize(values), "mirrored": mirrored}
        else:
            scores[metric.name] = summarize(values)
    scores["lpips_unavailable"] = unavailable
    return scores


def conventions(lpips: LPIPS | str | None = None) -> dict[str, Any]:
    """What the metrics mean, for result.json: each metric's convention (:data:`METRICS`) plus
    the LPIPS trunk used."""
    return {**{metric.name: metric.convention for metric in METRICS}, "lpips_model": describe_lpips(lpips)}
