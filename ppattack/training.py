"""Training ceremony shared by attack networks and classifiers: precision and progress.

On CUDA, training uses automatic mixed precision (float16 with a gradient scaler); on the
CPU, bfloat16 autocast where the caller asks for it (it helps convolutions and matmuls on
CPUs with native bf16, and costs accuracy nothing measurable at these sizes).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import torch


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


@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise.

    Yields ``advance(n=1)``.
    """
    if not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
