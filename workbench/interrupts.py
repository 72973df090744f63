"""Ctrl+C held back while code that must not be cut short runs (Qt's bindings loading, joins)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """A Ctrl+C inside the block is remembered and raised (KeyboardInterrupt) when it ends.

    Loading PySide6 cut short by an interrupt is a fatal error in shiboken (the process aborts),
    and a worker thread left running when the interpreter exits aborts it too: both wait here.
    Outside the main thread, or with Ctrl+C ignored, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        yield
        return
    seen: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if seen:
        raise KeyboardInterrupt
