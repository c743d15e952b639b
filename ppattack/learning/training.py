"""Training ceremony shared by attack networks and classifiers: precision, batches, prefetching
and the pixel conventions of networks (the progress bar is :mod:`ppattack.runtime.progress`).

On CUDA, training uses automatic mixed precision (float16 with a gradient scaler); on the
CPU, bfloat16 autocast where the caller asks for it (it helps convolutions and matmuls on
CPUs with native bf16, and costs accuracy nothing measurable at these sizes).
"""
from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, TypeVar

import torch

T = TypeVar("T")


def autocast(device: torch.device, cpu_bf16: bool = True) -> contextlib.AbstractContextManager:
    """Mixed-precision context for the forward pass on ``device``."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, active only for float16 AMP on CUDA."""
    return torch.amp.GradScaler("cuda", enabled=device.type == "cuda")


def cpu_bf16_supported() -> bool:
    """True when the CPU has native bfloat16 arithmetic (AVX512-BF16 / AMX).

    Without it, bf16 autocast on the CPU is emulated and several times slower than float32, so
    attack training asks for it only where it helps: ``autocast(device, cpu_bf16_supported())``.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def batch_indices(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """An endless stream of index batches, reshuffled each epoch (drops no image: the last
    batch of an epoch is topped up from the next epoch's order)."""
    batch_size = max(1, min(batch_size, count))
    pending = torch.empty(0, dtype=torch.long)
    while True:
        while len(pending) < batch_size:
            pending = torch.cat([pending, torch.randperm(count, generator=generator)])
        yield pending[:batch_size]
        pending = pending[batch_size:]


def prefetched(produce: Callable[[], T], count: int, ahead: int = 2) -> Iterator[T]:
    """``produce()`` called ``count`` times in order, by one background thread that keeps up to
    ``ahead`` results ready: CPU-side batch preparation (fresh keys, encryption) overlaps the
    device's training step. One thread runs the calls one after another, so whatever randomness
    ``produce`` draws comes out exactly as in a plain loop."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ppattack-batches") as pool:
        pending: deque = deque(pool.submit(produce) for _ in range(min(ahead, count)))
        submitted = len(pending)
        while pending:
            result = pending.popleft().result()
            if submitted < count:
                pending.append(pool.submit(produce))
                submitted += 1
            yield result


def inference_chunk(elements_per_image: int, device: torch.device, most: int = 256) -> int:
    """Images per forward pass at inference: as many as keep about ``elements_per_image``
    activations each within an eighth of the free GPU memory (fp32), or 2^28 activations on the
    CPU; between 1 and ``most``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 8 // 4
    else:
        budget = 2**28
    return int(max(1, min(most, budget // max(1, elements_per_image))))


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1]."""
    return x.float().div(127.5).sub(1.0)


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 (rounded, clipped)."""
    return y.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def crop_pad(side: int) -> int:
    """The zero padding of :func:`crop_flip` for images ``side`` pixels wide: an eighth of the
    side (the standard 4 pixels at 32x32), at least 1."""
    return max(1, side // 8)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, per image (``crop_flip`` without the crop).

    Shape: ``(N, C, H, W)`` in, same out (any dtype). Every output is its input or its
    mirror: nothing is added that the other side of an unpaired comparison lacks (a GAN's
    generated images have no zero borders, so cropping only the real ones teaches the
    discriminator to look for borders).
    """
    return crop_flip(x, 0, generator)


def crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero-padding by ``pad`` and random horizontal flip, per image.

    Shape: ``(N, C, H, W)`` in, same out (any dtype). The standard CIFAR augmentation;
    ``pad`` 0: flip only.
    """
    n, _, h, w = x.shape
    flips = torch.rand(n, generator=generator) < 0.5
    if pad <= 0:
        return torch.where(flips.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    tops = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    lefts = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (tops.view(n, 1) + torch.arange(h)).to(x.device)  # (N, H)
    cols = (lefts.view(n, 1) + torch.arange(w)).to(x.device)  # (N, W)
    cols = torch.where(flips.view(n, 1).to(x.device), cols.flip(-1), cols)
    index = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[index, rows.view(n, h, 1), cols.view(n, 1, w)]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
