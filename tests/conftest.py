"""Shared test set-up: paths to presets and a quiet, single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "resources" / "presets"


@pytest.fixture
def presets() -> Path:
    return PRESETS
