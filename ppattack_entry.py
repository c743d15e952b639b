"""The ``ppattack`` command's entry point.

Importing ``ppattack`` imports torch, which takes seconds. A Ctrl-C or SIGTERM in that time
used to print a KeyboardInterrupt traceback from inside the import (or abort the interpreter
from torch's C++ code). Here such a signal is only noted while the package loads; the command
then stops as it does when interrupted at work: one ``error:`` line and exit status 130.
This module stays outside the package so that it runs before the package's imports.
"""
from __future__ import annotations

import signal
import sys
from typing import Any

#: The line ``ppattack`` prints when a signal stops it (the same as ppattack.cli's).
INTERRUPTED = "error: interrupted; outputs appear only when a command completes"


def main() -> None:
    """Load the CLI with SIGINT and SIGTERM deferred, then run it (it installs its own handlers)."""
    received: list[int] = []

    def note(signum: int, frame: Any) -> None:
        received.append(signum)

    for stopping in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping, note)
    from ppattack.cli import main as cli_main

    if received:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    cli_main()
