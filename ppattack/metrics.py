"""Image-quality metrics of reconstructions against the plain images (attacks.md conventions).

- ``ssim`` ("wang"): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 255, per
  channel then averaged, over the valid region (as scikit-image crops its border); batched
  on the device with kornia.
- ``ssim_skimage_legacy``: scikit-image defaults on uint8 RGB (7x7 uniform window), the
  convention of public reproductions.
- ``psnr``: peak 255, per image.
All take uint8 batches ``(N, C, H, W)`` and return float64 NumPy arrays of length N.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import ShapeError


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ShapeError(f"metrics need two batches of equal shape (N, C, H, W), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def ssim(x: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """Per-image SSIM "wang" (Gaussian 11 / 1.5, data range 255)."""
    import kornia

    _check_pair(x, y)
    values = []
    for start in range(0, len(x), chunk):
        a = x[start:start + chunk].float()
        b = y[start:start + chunk].to(a.device).float()
        ssim_map = kornia.metrics.ssim(a, b, window_size=11, max_val=255.0, padding="valid")
        values.append(ssim_map.mean(dim=(1, 2, 3)).double().cpu())
    return torch.cat(values).numpy() if values else np.zeros(0)


def ssim_skimage_legacy(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image SSIM with scikit-image defaults on uint8 RGB (7x7 uniform window)."""
    from skimage.metrics import structural_similarity

    _check_pair(x, y)
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


def summarize(values: np.ndarray) -> dict[str, Any]:
    """Mean, median, std and the per-image values (JSON-ready; inf becomes the string "inf")."""
    def clean(v: float) -> float | str:
        return "inf" if math.isinf(v) else float(v)

    if len(values) == 0:
        return {"mean": None, "median": None, "std": None, "values": []}
    return {"mean": clean(float(np.mean(values))), "median": clean(float(np.median(values))),
            "std": clean(float(np.std(values))) if np.isfinite(values).all() else None,
            "values": [clean(float(v)) for v in values]}


def score(restored: torch.Tensor, plain: torch.Tensor) -> dict[str, Any]:
    """All metrics of ``restored`` against ``plain``, summarized."""
    return {"ssim": summarize(ssim(restored, plain)),
            "ssim_skimage_legacy": summarize(ssim_skimage_legacy(restored, plain)),
            "psnr": summarize(psnr(restored, plain)),
            "lpips": None,
            "lpips_unavailable": "LPIPS is not computed by this version"}
