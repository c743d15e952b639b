"""LPIPS (Zhang et al. 2018, "The unreasonable effectiveness of deep features as a perceptual
metric") with the AlexNet trunk, version 0.1, ``normalize=True`` on [0, 1] inputs.

The ``lpips`` package ships its calibrated linear layers, but the AlexNet trunk is torchvision's
ImageNet checkpoint (``alexnet-owt-7be5be79.pth``), normally downloaded into the torch hub cache.
This module finds that checkpoint without surprises:

1. an explicit file (``--lpips-weights PATH``, or ``$PPATTACK_LPIPS_WEIGHTS``);
2. the torch hub cache (``$TORCH_HOME/hub/checkpoints``);
3. a download into the hub cache (hash checked), unless offline (``PPATTACK_OFFLINE=1`` or
   ``HF_HUB_OFFLINE=1``).

When none works, LPIPS is *unavailable* and the reason says why; a randomly initialised trunk
is never used in its place. Weight files are read with ``torch.load(weights_only=True)``.

    metric = prepare(None, "cpu")        # an LPIPS, or the reason (str) it is unavailable
    if isinstance(metric, LPIPS):
        distances = metric(restored, plain)     # uint8 (N, C, H, W) -> float64 (N,)
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError, ShapeError
from .offline import offline, offline_flag

log = logging.getLogger(__name__)

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_FILE = ALEXNET_URL.rsplit("/", 1)[1]
ALEXNET_SHA256_PREFIX = "7be5be79"  # torch hub names checkpoints by their SHA-256 prefix
WEIGHTS_ENV = "PPATTACK_LPIPS_WEIGHTS"
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download is given up
MIN_SIDE = 31  # AlexNet's two 3x3/2 max-pools need at least this many pixels per side
#: AlexNet ``features`` layers with weights, and their shapes.
_CONV_SHAPES = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3),
                10: (256, 256, 3, 3)}


class LPIPSUnavailable(DataError):
    """The AlexNet trunk weights cannot be found or downloaded; the message is the reason."""


def hub_checkpoint() -> Path:
    """Where torchvision keeps (or would download) the AlexNet checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def find_backbone(weights: str | os.PathLike | None = None, *, download: bool | None = None) -> Path:
    """Path of the AlexNet trunk checkpoint; downloads it when allowed and missing.

    Args:
        weights: an explicit checkpoint (a torchvision AlexNet ``state_dict``); default
            ``$PPATTACK_LPIPS_WEIGHTS``, then the torch hub cache.
        download: allow a download; default: unless :func:`offline`.

    Raises:
        DataError: an explicit file that does not exist.
        LPIPSUnavailable: nothing found and no download (the message says why and what to do).
    """
    explicit = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DataError(f"LPIPS weights file {path} does not exist (expected torchvision's "
                            f"{ALEXNET_FILE})")
        return path
    cached = hub_checkpoint()
    if cached.is_file():
        return cached
    advice = f"pass --lpips-weights PATH (torchvision's {ALEXNET_FILE})"
    if download is False or (download is None and offline()):
        why = f"offline: {offline_flag()}" if download is None else "downloads disabled"
        raise LPIPSUnavailable(f"AlexNet weights not found in {cached.parent} and not downloaded "
                               f"({why}): {advice}")
    if str(cached) in _failed_downloads:  # tried in this process already (e.g. an earlier bench cell)
        raise LPIPSUnavailable(_failed_downloads[str(cached)])
    try:
        log.info("downloading %s to %s", ALEXNET_URL, cached)
        _download(ALEXNET_URL, cached, ALEXNET_SHA256_PREFIX)
    except (OSError, ValueError) as e:
        _failed_downloads[str(cached)] = (f"AlexNet weights not found in {cached.parent} and could "
                                          f"not be downloaded ({e.__class__.__name__}: {e}): {advice}")
        raise LPIPSUnavailable(_failed_downloads[str(cached)]) from None
    return cached


_failed_downloads: dict[str, str] = {}


def _download(url: str, target: Path, sha256_prefix: str) -> None:
    """Fetch ``url`` to ``target`` atomically; a wrong hash leaves nothing behind."""
    from .file_io import atomic_write

    def write(f) -> None:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if not digest.hexdigest().startswith(sha256_prefix):
            raise ValueError(f"downloaded file has SHA-256 {digest.hexdigest()[:16]}..., "
                             f"expected {sha256_prefix}...")

    atomic_write(target, write)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def backbone_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``features`` tensors of a torchvision AlexNet checkpoint, checked layer by layer."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file: never unpickle anything else
        raise DataError(f"cannot read LPIPS weights {path}: {e.__class__.__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict):
        raise DataError(f"LPIPS weights {path} hold a {type(state).__name__}, not a state_dict")
    features: dict[str, torch.Tensor] = {}
    for index, shape in _CONV_SHAPES.items():
        for kind, expected in (("weight", shape), ("bias", shape[:1])):
            name = f"features.{index}.{kind}"
            value = state.get(name)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else "missing"
                raise DataError(f"LPIPS weights {path} are not a torchvision AlexNet state_dict: "
                                f"{name} is {got}, expected {expected}")
            features[f"{index}.{kind}"] = value.float()
    return features


class LPIPS:
    """LPIPS v0.1 with an AlexNet trunk loaded from ``weights`` (see :func:`load_lpips`).

    ``backbone`` describes the trunk: its file name, SHA-256, and whether it is torchvision's
    ImageNet checkpoint (``torchvision_imagenet``).
    """

    def __init__(self, weights: Path, device: torch.device):
        import lpips

        features = backbone_state(weights)
        stat = weights.stat()
        sha = _sha256(str(weights), stat.st_size, stat.st_mtime_ns)
        # The module is built on the meta device (no download, no random numbers drawn, no
        # memory), then every tensor is assigned from the files: trunk, linear layers, scaling.
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True,
                                verbose=False)
        state = {f"scaling_layer.{k}": v for k, v in lpips.ScalingLayer().state_dict().items()}
        for name in model.net.state_dict():  # "slice2.3.weight" holds features.3.weight
            _, index, kind = name.split(".")
            state[f"net.{name}"] = features[f"{index}.{kind}"]
        linear_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
        state.update(torch.load(linear_path, map_location="cpu", weights_only=True))
        loaded = model.load_state_dict(state, strict=False, assign=True)
        unset = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if loaded.unexpected_keys or unset:
            raise DataError(f"the lpips package's weights {linear_path} do not fit its AlexNet "
                            f"model (unset {unset}, unexpected {loaded.unexpected_keys})")
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = device
        self.backbone = {"file": weights.name, "sha256": sha,
                         "torchvision_imagenet": sha.startswith(ALEXNET_SHA256_PREFIX)}

    def __call__(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 64) -> np.ndarray:
        """Per-image LPIPS distance of two uint8 batches ``(N, C, H, W)`` (C 1 or 3)."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ShapeError(f"LPIPS needs two batches of equal shape (N, 1 or 3, H, W), got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[2:]) < MIN_SIDE:
            raise ShapeError(f"LPIPS (AlexNet) needs images of at least {MIN_SIDE}x{MIN_SIDE} "
                             f"pixels, got {x.shape[2]}x{x.shape[3]}")
        values = []
        with torch.inference_mode():
            for start in range(0, len(x), chunk):
                a, b = (t[start:start + chunk].to(self.device).float().div(255.0).expand(-1, 3, -1, -1)
                        for t in (x, y))
                values.append(self.model(a, b, normalize=True).flatten().double().cpu())
        return torch.cat(values).numpy() if values else np.zeros(0)


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str) -> LPIPS:
    return LPIPS(Path(path), torch.device(device))


def load_lpips(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu", *,
               download: bool | None = None) -> LPIPS:
    """The LPIPS metric on ``device``, built once per (weights file, device) in a process.

    Raises:
        LPIPSUnavailable: no trunk weights (see :func:`find_backbone`).
        DataError: an explicit weights file that is missing or not an AlexNet checkpoint.
    """
    path = find_backbone(weights, download=download)
    return _load(str(path.resolve()), str(torch.device(device)))


_warned: set[str] = set()


def prepare(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LPIPS | str:
    """:func:`load_lpips`, or the reason (a sentence) LPIPS is unavailable.

    A bad explicit weights file still raises :class:`DataError`: the user asked for it.
    """
    try:
        return load_lpips(weights, device)
    except LPIPSUnavailable as e:
        if str(e) not in _warned:
            _warned.add(str(e))
            log.info("LPIPS unavailable: %s", e)
        return str(e)


def describe(metric: LPIPS | str | None) -> dict[str, Any]:
    """The LPIPS convention recorded in result.json."""
    info: dict[str, Any] = {"net": "alex", "version": "0.1", "normalize": True, "input_range": [0, 1]}
    if isinstance(metric, LPIPS):
        info["backbone"] = dict(metric.backbone)
    return info
