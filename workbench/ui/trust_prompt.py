"""Asking before the window runs a project's Python file: once per file content, "Trust and run"
or "Cancel"; the answer is kept (TrustedCode) so the same unchanged file is not asked again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from workbench.controllers.code_trust import TrustedCode

TRUST_BUTTON = "Trust and run"
Asker = Callable[[QWidget | None, Path], bool]  # (parent, file) -> did the user agree?


class TrustPrompt(QMessageBox):
    """The question itself: the file's full path, what agreeing means, two plain buttons."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trustPrompt")
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle("Run this model code?")
        self.setText(f"This project's model is Python code:\n\n{path}")
        self.setInformativeText(
            "Showing, training or quantizing it imports the file, and importing a Python file "
            "runs it, with your permissions. Trust it only if you know where it came from.\n\n"
            "You are asked again if the file changes."
        )
        self.trust_button = self.addButton(TRUST_BUTTON, QMessageBox.ButtonRole.AcceptRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.cancel_button)
        self.setEscapeButton(self.cancel_button)

    def agreed(self) -> bool:
        return self.clickedButton() is self.trust_button


def ask_with_dialog(parent: QWidget | None, path: Path) -> bool:
    prompt = TrustPrompt(path, parent)
    prompt.exec()
    return prompt.agreed()


class TrustGuard:
    """Decides, on the GUI thread, whether the window may import a file now: yes when its
    content was agreed to before, else it asks (`ask`, the dialog by default) and records a yes."""

    def __init__(self, trusted: TrustedCode, parent: QWidget | None = None) -> None:
        self.trusted = trusted
        self.parent = parent
        self.ask: Asker = ask_with_dialog

    def is_trusted(self, path: Path) -> bool:
        return self.trusted.is_trusted(path)

    def may_import(self, path: Path) -> bool:
        if self.trusted.is_trusted(path):
            return True
        if not path.is_file():
            return True  # nothing to run: building it says the file is missing
        if not self.ask(self.parent, path):
            return False
        self.trusted.trust(path)
        return True
