"""Inline banners above the tree: errors, refusals and one-click fixes, never a modal traceback."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.checkpoints import COMPILE_PREFIX, MODEL_PREFIX, MODULE_PREFIX
from workbench.engine.safe_text import safe_text
from workbench.ui.checkpoint_editor.shown_text import shown

WRAPPER_ORIGINS = {
    MODULE_PREFIX: "DDP (DistributedDataParallel)",
    COMPILE_PREFIX: "torch.compile",
    MODEL_PREFIX: "a wrapper holding the network as self.model (e.g. Lightning)",
}
# Background, border and text colours per kind; readable on light and dark themes alike.
KIND_COLOURS = {
    "error": ("#fdecea", "#d93025", "#5f1a14"),
    "warning": ("#fff4ce", "#c69500", "#4d3b00"),
    "info": ("#e8f0fe", "#1a73e8", "#0b2e5c"),
}


class Banner(QFrame):
    """A coloured strip with a message, optional action buttons and a close button."""

    closed = Signal()

    def __init__(self, name: str, kind: str = "info", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setAccessibleName(name)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(10, 6, 6, 6)
        text_column = QVBoxLayout()
        self.label = QLabel()
        self.label.setObjectName(f"{name}Text")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text_column.addWidget(self.label)
        outer.addLayout(text_column, 1)
        self.button_row = QHBoxLayout()
        outer.addLayout(self.button_row)
        close = QToolButton()
        close.setObjectName(f"{name}Close")
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Hide this message")
        close.clicked.connect(self._close)
        outer.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.set_kind(kind)
        self.hide()

    def set_kind(self, kind: str) -> None:
        background, border, text = KIND_COLOURS[kind]
        self.setStyleSheet(
            f"#{self.objectName()} {{ background: {background}; border: 1px solid {border}; "
            f"border-radius: 4px; }} #{self.objectName()} QLabel {{ color: {text}; }}"
        )

    def add_button(self, name: str, text: str, tooltip: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAccessibleName(name)
        button.setToolTip(tooltip)
        self.button_row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        return button

    def show_message(self, text: str, rich: bool = False) -> None:
        self.label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
        self.label.setText(text if rich else safe_text(text, multiline=True))
        self.show()

    @property
    def text(self) -> str:
        return self.label.text()

    def _close(self) -> None:
        self.hide()
        self.closed.emit()


def wrapper_banner_text(prefixes: list[str]) -> str:
    joined = "".join(prefixes)
    origins = " and ".join(dict.fromkeys(WRAPPER_ORIGINS[p] for p in prefixes))
    return (
        f"This file was saved from {origins}: strip '{joined}'. Every key starts with "
        f"'{joined}', and the plain model expects its keys without it."
    )


def refusal_text(path: Path, unsafe_globals: tuple[str, ...]) -> str:
    """The refusal in window words (the engine's message speaks of command-line flags)."""
    listed = "".join(f"<li><code>{escape(shown(name))}</code></li>" for name in unsafe_globals)
    return (
        f"<b>Refused to open {escape(shown(path.name))}.</b> Loading it would import and run these "
        f"Python objects, which a weights-only load does not allow:<ul>{listed}</ul>"
        "A pickled checkpoint can run any code it names while it is read; plain weights never "
        "need these. If you made this file or trust whoever did, <i>Load anyway…</i> reads it "
        "in a separate process and keeps only its tensors. Better: re-save it once as a plain "
        "state_dict or .safetensors."
    )
