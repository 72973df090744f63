"""Ctrl+C held back while code that must not be cut short runs (Qt's bindings loading, joins)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def may_handle_interrupts() -> bool:
    """Whether this code may take over Ctrl+C: on the main thread (the only one Python signal
    handlers run on), unless the process was started with Ctrl+C ignored (in the background)."""
    main_thread = threading.current_thread() is threading.main_thread()
    return main_thread and signal.getsignal(signal.SIGINT) != signal.SIG_IGN


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[list[int]]:
    """A Ctrl+C inside the block is remembered (in the list it gives) and raised
    (KeyboardInterrupt) when it ends.

    Loading PySide6 cut short by an interrupt is a fatal error in shiboken (the process aborts),
    and a worker thread left running when the interpreter exits aborts it too: both wait here.
    Outside the main thread, or with Ctrl+C ignored, the block runs as it is.
    """
    seen: list[int] = []
    if not may_handle_interrupts():
        yield seen
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
    if seen:
        raise KeyboardInterrupt
