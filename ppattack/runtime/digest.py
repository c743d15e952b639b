"""Content digests: of tensors (the part of a cache identity that names data) and of Python
source (the part that names the code that trains)."""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

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


def source_digest(path: Path) -> str:
    """Short SHA-256 of Python source: the file ``path``, or every ``.py`` file under the folder
    ``path``, each named by its path relative to ``path`` (a rename counts, other files do not)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    digest = hashlib.sha256()
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def class_source_digest(cls: type) -> str:
    """:func:`source_digest` of the file that defines ``cls`` ("-" when it has none, e.g. a
    class built at run time)."""
    try:
        return source_digest(Path(inspect.getfile(cls)))
    except (TypeError, OSError):
        return "-"
