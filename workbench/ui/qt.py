"""Binds pyqtgraph to PySide6 (imported first) and sets its look once; ui modules import pg from here."""

from __future__ import annotations

import importlib
import os
from typing import Any

# pyqtgraph picks the first Qt binding it finds; importing PySide6 first and naming it makes the
# choice explicit, so a stray PyQt install can never end up drawing our plots.
os.environ["PYQTGRAPH_QT_LIB"] = "PySide6"

import PySide6.QtCore

# isort: split
import pyqtgraph as pg
import pyqtgraph.exporters  # pyqtgraph does not import its exporters itself

QT_BINDING_VERSION = PySide6.QtCore.qVersion()

# Light background: dark plots wash out on projectors and in printed reports.
pg.setConfigOptions(antialias=True, background="w", foreground="#202020")

__all__ = ["QT_BINDING_VERSION", "pg"]


def _tolerate_closed_svg_paths() -> None:
    """pyqtgraph 0.14's SVG export chokes on the `Z` Qt 6.8+ writes to close a path
    (pyqtgraph issue #3495); hide those tokens from its coordinate fix-up, then put them back."""
    module = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = getattr(module, "correctCoordinates")  # noqa: B009 - untyped module attribute
    if getattr(original, "workbench_tolerates_z", False):
        return

    def correct_coordinates(node: Any, defs: Any, item: Any, options: Any) -> Any:
        closed: list[tuple[Any, list[int]]] = []
        for path in node.getElementsByTagName("path"):
            tokens = path.getAttribute("d").split()
            positions = [index for index, token in enumerate(tokens) if token in ("Z", "z")]
            if positions:
                kept = [token for token in tokens if token not in ("Z", "z")]
                path.setAttribute("d", " ".join(kept))
                closed.append((path, positions))
        result = original(node, defs, item, options)
        for path, positions in closed:
            tokens = path.getAttribute("d").split()
            for position in positions:
                tokens.insert(position, "Z")
            path.setAttribute("d", " ".join(tokens))
        return result

    correct_coordinates.workbench_tolerates_z = True  # type: ignore[attr-defined]
    setattr(module, "correctCoordinates", correct_coordinates)  # noqa: B010


_tolerate_closed_svg_paths()
