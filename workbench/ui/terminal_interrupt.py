"""Ctrl+C in the terminal that started the window ends its event loop, never mid-import."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from types import FrameType

from PySide6.QtCore import QCoreApplication, QObject, QSocketNotifier, QTimer

from workbench.interrupts import may_handle_interrupts
from workbench.ui.error_dialog import EXIT_INTERRUPTED


class TerminalInterrupt(QObject):
    """While installed, SIGINT asks the application to exit with 130 instead of raising
    KeyboardInterrupt wherever the main thread happens to be.

    A KeyboardInterrupt raised inside importlib's bookkeeping (the GUI thread imports pyqtgraph
    while a worker imports PyTorch) can leave the import lock held, and the worker then waits
    for it forever: the window hung on a Ctrl+C about half a second after launch. The handler
    only posts the exit; a wake-up socket makes the event loop run it at once, also while idle.
    """

    def __init__(self, app: QCoreApplication, earlier: list[int] | None = None) -> None:
        """EARLIER: Ctrl+Cs held back before this took over; one there ends the loop at once."""
        super().__init__(app)
        self.app = app
        self.earlier = earlier if earlier is not None else []
        self.interrupted = False
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        QTimer.singleShot(0, self._exit)  # also when the loop has not started yet

    def _exit(self) -> None:
        self.app.exit(EXIT_INTERRUPTED)

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while self._reader.recv(64):
                pass

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT so for the block (main thread, Ctrl+C not ignored; else leave it)."""
        if not may_handle_interrupts():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, self._on_interrupt)
        if self.earlier:
            self._on_interrupt(signal.SIGINT, None)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.set_wakeup_fd(previous_fd)
            self._notifier.setEnabled(False)
            self._reader.close()
            self._writer.close()
