"""Qt test set-up for widgets: every test must leave no worker thread behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QApplication

# Qt's offscreen platform says this whenever a shown window's size limits change; it is about the
# test platform, not our widgets. (Better as `qt_log_ignore` in pyproject's pytest options.)
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


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
