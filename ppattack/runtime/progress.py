"""The progress bar of long loops (decoding, training): on a terminal only."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator


_shown = True


def hide() -> None:
    """Show no progress bar in this process from now on (a side process: its parent shows its own)."""
    global _shown
    _shown = False


@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise.

    Yields ``advance(n=1)``.
    """
    if not (_shown and sys.stderr.isatty()):
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
