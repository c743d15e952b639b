"""A function run in a second process beside this one, the CPU threads split between the two.

On a CPU, two processes of one thread each do more work than one process of two threads when
the work is small convolutions (a U-Net step at 32x32 runs 1.6 times faster on two threads than
on one, not twice). A run uses this to train its positive control while it trains the attack:

    with SideProcess(evaluate, (config,)) as side:  # evaluate(config) starts in a new process
        ...                                          # this process goes on with half the threads
        value = side.result()                        # evaluate's return value, or its exception

The side process is spawned (nothing of this process's state is shared: ``target`` must be a
module-level function and its arguments picklable), ignores Ctrl-C (this process stops it), shows
no progress bar and sends its log records to this process's handlers. Leaving the block stops
it if it is still running, and gives this process its threads back. As with any spawned process,
a script that uses it must guard its main code with ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import pickle
import signal
import threading
import time
from typing import Any, Callable

import torch

from . import progress


class SideProcessLost(RuntimeError):
    """The side process ended without sending a result (it was killed, or could not start)."""


def can_split_threads() -> bool:
    """Whether this process has two or more CPU threads to split between two processes."""
    return torch.get_num_threads() >= 2


def _picklable(error: BaseException) -> BaseException:
    """``error``, or a RuntimeError with its text when it would not survive the pipe."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 -- any failure to round-trip means: send its text
        return RuntimeError(f"{type(error).__name__}: {error}")


def _end_with_parent(parent: int) -> None:
    """End this process once its parent is gone (killed where it could not stop its side)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _side_main(target: Callable[..., Any], args: tuple, threads: int, results: Any, records: Any,
               level: int, parent: int) -> None:
    """The side process: run ``target(*args)`` with ``threads`` CPU threads and send
    ``(ok, value or exception, seconds)`` through ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and stops this process
    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    progress.hide()
    forward = logging.handlers.QueueHandler(records)
    forward.setFormatter(logging.Formatter("%(message)s"))  # the parent's handlers add the rest
    logging.basicConfig(level=level, handlers=[forward], force=True)
    logging.captureWarnings(True)
    started = time.time()
    try:
        outcome = (True, target(*args), time.time() - started)
    except BaseException as e:  # noqa: BLE001 -- every failure goes back to the parent, raised there
        outcome = (False, _picklable(e), time.time() - started)
    results.send(outcome)
    results.close()


class _ToOwnLogger(logging.Handler):
    """Hands a record from the side process to this process's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        logging.getLogger(record.name).handle(record)


class SideProcess:
    """``target(*args)`` in a spawned process with ``threads`` of this process's CPU threads
    (default: half), while this process keeps the rest; use it as a context manager."""

    def __init__(self, target: Callable[..., Any], args: tuple = (), threads: int | None = None):
        total = torch.get_num_threads()
        self.threads = threads if threads is not None else max(1, total // 2)
        self._own_threads = total
        self._target, self._args = target, args
        self._process: Any = None
        self._listener: logging.handlers.QueueListener | None = None
        #: The side's own seconds from the start of ``target`` to its end (set by :meth:`result`).
        self.seconds: float | None = None

    def __enter__(self) -> "SideProcess":
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        records = context.Queue()
        self._listener = logging.handlers.QueueListener(records, _ToOwnLogger())
        self._listener.start()
        self._process = context.Process(
            target=_side_main, args=(self._target, self._args, self.threads, send, records,
                                     logging.getLogger().getEffectiveLevel(), os.getpid()), daemon=True)
        self._process.start()
        send.close()  # only the child writes: a child that dies makes recv() raise EOFError
        torch.set_num_threads(max(1, self._own_threads - self.threads))
        return self

    def result(self) -> Any:
        """Wait for the side process: ``target``'s return value, or its exception raised here."""
        try:
            ok, value, self.seconds = self._receive.recv()
        except EOFError:
            self._process.join()
            raise SideProcessLost(f"the side process ended without a result (exit code {self._process.exitcode}; "
                                  "a script that starts processes must guard its main code with "
                                  "if __name__ == '__main__')") from None
        self._process.join()
        if not ok:
            raise value
        return value

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join()
        if self._listener is not None:
            self._listener.stop()
        torch.set_num_threads(self._own_threads)
