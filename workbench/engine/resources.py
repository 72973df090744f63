"""Where bundled resources (presets, icons) live: the source tree, or a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path

_SOURCE_RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def resources_dir() -> Path:
    """resources/ next to the package, or inside a PyInstaller bundle (sys._MEIPASS)."""
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "resources" if bundle else _SOURCE_RESOURCES


def icon_path(name: str) -> Path:
    """An SVG icon of resources/icons by name (`train`, `workbench`, ...)."""
    return resources_dir() / "icons" / f"{name}.svg"
