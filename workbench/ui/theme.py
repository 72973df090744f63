"""Presentation helpers: dark and light palettes, and a font scale for projectors."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

PROJECTOR_SCALE = 1.6  # text readable from the back of a classroom

_DARK = {
    QPalette.ColorRole.Window: "#202124",
    QPalette.ColorRole.WindowText: "#E8EAED",
    QPalette.ColorRole.Base: "#17181A",
    QPalette.ColorRole.AlternateBase: "#2A2B2E",
    QPalette.ColorRole.ToolTipBase: "#2A2B2E",
    QPalette.ColorRole.ToolTipText: "#E8EAED",
    QPalette.ColorRole.Text: "#E8EAED",
    QPalette.ColorRole.Button: "#2D2E31",
    QPalette.ColorRole.ButtonText: "#E8EAED",
    QPalette.ColorRole.BrightText: "#FF6B6B",
    QPalette.ColorRole.Highlight: "#3D7BD9",
    QPalette.ColorRole.HighlightedText: "#FFFFFF",
    QPalette.ColorRole.Link: "#8AB4F8",
    QPalette.ColorRole.PlaceholderText: "#9AA0A6",
}
_LIGHT = {
    QPalette.ColorRole.Window: "#F3F3F3",
    QPalette.ColorRole.WindowText: "#202020",
    QPalette.ColorRole.Base: "#FFFFFF",
    QPalette.ColorRole.AlternateBase: "#F0F4F8",
    QPalette.ColorRole.ToolTipBase: "#FFFFE6",
    QPalette.ColorRole.ToolTipText: "#202020",
    QPalette.ColorRole.Text: "#202020",
    QPalette.ColorRole.Button: "#EAEAEA",
    QPalette.ColorRole.ButtonText: "#202020",
    QPalette.ColorRole.BrightText: "#C00000",
    QPalette.ColorRole.Highlight: "#0072B2",
    QPalette.ColorRole.HighlightedText: "#FFFFFF",
    QPalette.ColorRole.Link: "#0060A0",
    QPalette.ColorRole.PlaceholderText: "#707070",
}


def palette(dark: bool) -> QPalette:
    """A complete palette; disabled text is dimmed in both themes."""
    result = QPalette()
    for role, colour in (_DARK if dark else _LIGHT).items():
        result.setColor(role, QColor(colour))
    dimmed = QColor("#6F7378" if dark else "#A0A0A0")
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.ButtonText,
    ):
        result.setColor(QPalette.ColorGroup.Disabled, role, dimmed)
    return result


def scaled_font(font: QFont, scale: float) -> QFont:
    """A copy of `font` `scale` times as large (point or pixel sized)."""
    result = QFont(font)
    if font.pointSizeF() > 0:
        result.setPointSizeF(font.pointSizeF() * scale)
    elif font.pixelSize() > 0:
        result.setPixelSize(round(font.pixelSize() * scale))
    return result


class Theme:
    """Applies a palette and a font scale to the application, and undoes the scale again.

    The base font is remembered on first use, so switching presentation mode on and off
    never compounds the scale.
    """

    def __init__(self, app: QApplication) -> None:
        self.app = app
        self.base_font = QFont(app.font())
        self.dark = False
        self.scale = 1.0

    def apply(self, dark: bool | None = None, scale: float | None = None) -> None:
        if dark is not None:
            self.dark = dark
            self.app.setPalette(palette(dark))
        if scale is not None:
            self.scale = scale
            self.app.setFont(scaled_font(self.base_font, scale))

    def set_presentation_mode(self, enabled: bool, scale: float = PROJECTOR_SCALE) -> None:
        """Projector mode: text `scale` times larger; light theme, which survives washed-out
        projectors."""
        self.apply(dark=False if enabled else self.dark, scale=scale if enabled else 1.0)
