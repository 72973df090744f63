"""The page a new window shows while PyTorch loads: a short message and a busy bar."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget


class LoadingView(QWidget):
    """Stands in for the panels for the two or three seconds that `import torch` takes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loadingView")
        self.heading = QLabel("Torch Workbench")
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        heading_font = self.heading.font()
        heading_font.setPointSizeF(heading_font.pointSizeF() * 2.2)
        heading_font.setBold(True)
        self.heading.setFont(heading_font)
        self.message = QLabel("Loading PyTorch…")
        self.message.setObjectName("loadingMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        font = self.message.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.message.setFont(font)
        self.busy = QProgressBar()
        self.busy.setObjectName("loadingBusy")
        self.busy.setRange(0, 0)  # indeterminate: Qt animates it while the GUI thread is free
        self.busy.setMaximumWidth(320)
        self.busy.setTextVisible(False)
        box = QVBoxLayout(self)
        box.addStretch(1)
        box.addWidget(self.heading)
        box.addWidget(self.message)
        box.addWidget(self.busy, 0, Qt.AlignmentFlag.AlignHCenter)
        box.addStretch(1)

    def show_failure(self, message: str) -> None:
        """The import failed (a broken PyTorch install): say so and how to check it."""
        self.busy.hide()
        self.message.setText(
            "Torch Workbench could not load PyTorch:\n"
            f"{message}\n\n"
            'Check the installation with `python -c "import torch"`, then restart.'
        )
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
