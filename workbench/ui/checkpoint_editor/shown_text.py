"""Text from a checkpoint as the editor shows it: hidden characters escaped, markup inert."""

from __future__ import annotations

from html import escape

from workbench.engine.safe_text import safe_text


def shown(text: object) -> str:
    """A key, name or value for a plain-text cell: control and bidi characters as escapes."""
    return safe_text(text)


def tooltip(text: object) -> str:
    """A tooltip that shows `text` literally: Qt reads tooltips that look like HTML as HTML, so
    a key such as `<b>x` is escaped inside an explicit rich-text paragraph."""
    lines = safe_text(text, multiline=True).split("\n")
    return "<p style='white-space:pre'>" + "<br>".join(escape(line) for line in lines) + "</p>"
