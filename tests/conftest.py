"""Shared test set-up: paths to presets and a quiet, single-threaded torch."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "resources" / "presets"


@pytest.fixture
def presets() -> Path:
    return PRESETS


@pytest.fixture(autouse=True)
def no_leaked_qthreads() -> Iterator[None]:
    """Fail any test that leaves a worker QThread running (shut its owner down)."""
    yield
    jobs = sys.modules.get("workbench.controllers.jobs")  # loaded only by tests that use Qt
    leaked = [thread.objectName() for thread in jobs.running_threads()] if jobs else []
    assert not leaked, f"QThreads still running after the test: {leaked}"


@pytest.fixture(autouse=True)
def no_import_gate_left() -> Iterator[None]:
    """A window guards model-code imports with a gate while it lives; the next test starts
    without one (windows in tests are not always closed)."""
    yield
    user_code = sys.modules.get("workbench.engine.user_code")
    if user_code is not None:
        user_code.set_import_gate(None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` need a CUDA GPU: they skip cleanly without one (CI never has one)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
