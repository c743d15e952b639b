"""Content digests of tensors: the part of a cache identity that names data."""
from __future__ import annotations

import hashlib

import torch


def tensor_digest(*tensors: torch.Tensor, chunk_bytes: int = 64 * 2**20) -> str:
    """Short SHA-256 of tensors' shapes, dtypes and bytes (the content part of an identity).

    Hashed in slices of about ``chunk_bytes`` (a tensor on a GPU comes over a slice at a time,
    and no slice is copied again into a bytes object)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        flat = tensor.reshape(-1)
        step = max(1, chunk_bytes // max(1, flat.element_size()))
        for start in range(0, flat.numel(), step):
            part = flat[start:start + step].cpu().contiguous()
            digest.update(part.view(torch.uint8).numpy())
    return digest.hexdigest()[:24]
