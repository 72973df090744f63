"""Class colours shared by the insight views: distinguishable, colour-blind aware (Okabe-Ito)."""

from __future__ import annotations

from PySide6.QtGui import QColor

# Okabe & Ito's palette, reordered so two classes get the strongest contrast (blue, orange).
CLASS_COLOURS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#882255",
)


def class_colour(index: int) -> QColor:
    """The colour of class `index`; past the palette, evenly spaced hues."""
    if index < len(CLASS_COLOURS):
        return QColor(CLASS_COLOURS[index])
    return QColor.fromHsvF((index * 0.618034) % 1.0, 0.75, 0.85)


def class_rgb(index: int) -> tuple[int, int, int]:
    colour = class_colour(index)
    return colour.red(), colour.green(), colour.blue()
