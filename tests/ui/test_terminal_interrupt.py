"""Ctrl+C while the window runs: the event loop is asked to end with 130, nothing is raised."""

from __future__ import annotations

import os
import signal

import pytest
from PySide6.QtWidgets import QApplication

from workbench.ui.terminal_interrupt import EXIT_INTERRUPTED, TerminalInterrupt


def test_ctrl_c_asks_the_loop_to_end_with_130_and_raises_nothing(
    qtbot,
    qapp: QApplication,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    bridge = TerminalInterrupt(qapp)
    exits: list[int] = []
    monkeypatch.setattr(bridge, "_exit", lambda: exits.append(EXIT_INTERRUPTED))
    before = signal.getsignal(signal.SIGINT)
    with bridge.installed():
        os.kill(os.getpid(), signal.SIGINT)  # a KeyboardInterrupt here would fail the test
        qtbot.waitUntil(lambda: exits == [EXIT_INTERRUPTED], timeout=5_000)
    assert bridge.interrupted
    assert signal.getsignal(signal.SIGINT) is before  # the command line's handler is back


def test_a_ctrl_c_held_back_before_the_loop_ends_it_at_once(
    qtbot,
    qapp: QApplication,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    bridge = TerminalInterrupt(qapp, earlier=[signal.SIGINT])  # pressed while Qt was loading
    exits: list[int] = []
    monkeypatch.setattr(bridge, "_exit", lambda: exits.append(EXIT_INTERRUPTED))
    with bridge.installed():
        qtbot.waitUntil(lambda: exits == [EXIT_INTERRUPTED], timeout=5_000)
