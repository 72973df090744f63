"""Shared test set-up: paths to presets and a quiet, single-threaded torch."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

CONTROLLERS_WITH_THREADS = (
    ("workbench.controllers.training_controller", "TrainingController"),
    ("workbench.controllers.background_task", "BackgroundTask"),
    ("workbench.controllers.checkpoint_loader", "CheckpointLoader"),
    ("workbench.controllers.quantization_controller", "QuantizationController"),
)

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "resources" / "presets"


@pytest.fixture
def presets() -> Path:
    return PRESETS


@pytest.fixture(autouse=True)
def no_leaked_qthreads() -> Iterator[None]:
    """Fail any test that leaves a controller's worker QThread running (shut controllers down)."""
    yield
    leaked: list[str] = []
    for module_name, class_name in CONTROLLERS_WITH_THREADS:
        module = sys.modules.get(module_name)
        if module is not None:
            leaked += [
                f"{class_name}: {t.objectName() or 'QThread'}"
                for t in getattr(module, class_name).running_threads()
            ]
    assert not leaked, f"QThreads still running after the test: {leaked}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` need a CUDA GPU: they skip cleanly without one (CI never has one)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
