"""Qt test set-up for widgets: every test must leave no worker thread behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def no_leaked_threads(qapp: QApplication) -> Iterator[None]:
    """Fail a test that leaves a thread running (a controller not shut down, a stray pool job)."""
    before = threading.active_count()
    yield
    QThreadPool.globalInstance().waitForDone(5_000)
    assert threading.active_count() <= before, (
        f"{threading.active_count() - before} thread(s) still running after the test: "
        f"{[thread.name for thread in threading.enumerate()]}"
    )
