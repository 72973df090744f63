"""Help > Diagnostics: what this machine offers and why, as text a user can paste into a bug report."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import qVersion
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.devices import DeviceInfo
from workbench.engine.diagnostics import diagnostics_text


def qt_text() -> str:
    """The window's own facts, which the command line cannot know."""
    platform = QGuiApplication.platformName() or "none"
    screen = QGuiApplication.primaryScreen()
    scale = f", scale {screen.devicePixelRatio():g}" if screen is not None else ""
    return f"Qt\n  Qt {qVersion()}, platform {platform}{scale}"


class DiagnosticsDialog(QDialog):
    """The diagnostics text (as `workbench devices --verbose` prints it) and a Copy button."""

    def __init__(
        self, devices: Sequence[DeviceInfo] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("diagnosticsDialog")
        self.setAccessibleName("diagnosticsDialog")
        self.setWindowTitle("Diagnostics — Torch Workbench")
        self.text = QPlainTextEdit()
        self.text.setObjectName("diagnosticsText")
        self.text.setAccessibleName("diagnosticsText")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setPlainText(f"{diagnostics_text(devices)}\n\n{qt_text()}")
        self.copied = QLabel()
        self.copied.setObjectName("diagnosticsCopiedLabel")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("&Copy to Clipboard")
        self.copy_button.setObjectName("copyDiagnosticsButton")
        self.copy_button.setAccessibleName("copyDiagnosticsButton")
        self.copy_button.setToolTip("Copy this text, to paste it into a bug report")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel("What Torch Workbench found on this machine. Paste it into bug reports.")
        )
        layout.addWidget(self.text, 1)
        layout.addWidget(self.copied)
        layout.addWidget(buttons)
        self.resize(760, 560)

    def plain_text(self) -> str:
        return self.text.toPlainText()

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.plain_text())
        self.copied.setText("Copied to the clipboard.")
