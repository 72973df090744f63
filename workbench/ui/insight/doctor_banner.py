"""The training doctor's banner: the most serious finding in plain words, and what to change."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from workbench.engine.insight.doctor import PROBLEM, Diagnosis

COLOURS = {  # background, border, title
    PROBLEM: ("#FDECEA", "#D55E00", "#8A2A00"),
    "warning": ("#FFF6DB", "#E69F00", "#6B4A00"),
}


class DoctorBanner(QFrame):
    """Hidden while training looks healthy. Shows the most serious finding; "More" lists the
    rest; the close button hides it until the findings change."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("doctorBanner")
        self.setAccessibleName("doctorBanner")
        self.diagnoses: list[Diagnosis] = []
        self._dismissed_codes: tuple[str, ...] = ()
        self.title = QLabel()
        self.title.setObjectName("doctorTitle")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.message.setObjectName("doctorMessage")
        self.others = QLabel()
        self.others.setWordWrap(True)
        self.others.setTextFormat(Qt.TextFormat.RichText)
        self.others.hide()
        self.more = QToolButton()
        self.more.setText("More")
        self.more.setCheckable(True)
        self.more.toggled.connect(self.others.setVisible)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Hide until something new is found")
        self.close_button.setAccessibleName("dismissDoctorBanner")
        self.close_button.clicked.connect(self.dismiss)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.message)
        text.addWidget(self.others)
        buttons = QVBoxLayout()
        buttons.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignRight)
        buttons.addWidget(self.more, 0, Qt.AlignmentFlag.AlignRight)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addLayout(text, 1)
        layout.addLayout(buttons)
        self.hide()

    def set_diagnoses(self, diagnoses: Sequence[Diagnosis]) -> None:
        """Show the findings (the most serious first); an empty list hides the banner."""
        self.diagnoses = list(diagnoses)
        codes = tuple(d.code for d in self.diagnoses)
        if not self.diagnoses or codes == self._dismissed_codes:
            self.hide()
            return
        first = self.diagnoses[0]
        background, border, title = COLOURS.get(first.severity, COLOURS["warning"])
        self.setStyleSheet(
            f"QFrame#doctorBanner {{ background: {background}; border: 1px solid {border}; "
            f"border-left: 5px solid {border}; border-radius: 4px; }}"
            f"QLabel {{ background: transparent; border: none; color: #202020; }}"
            f"QLabel#doctorTitle {{ color: {title}; font-weight: bold; }}"
        )
        icon = "⛔" if first.severity == PROBLEM else "⚠"
        self.title.setText(f"{icon}  Training doctor: {first.title}")
        self.message.setText(
            f"{_html(_sentence(first.message))}<br><b>What to change:</b> {_html(first.suggestion)}"
        )
        rest = self.diagnoses[1:]
        self.more.setVisible(bool(rest))
        self.more.setText(f"{len(rest)} more")
        self.others.setText(
            "<br>".join(
                f"<b>{_html(d.title)}</b>: {_html(d.message)} {_html(d.suggestion)}" for d in rest
            )
        )
        self.show()

    def dismiss(self) -> None:
        self._dismissed_codes = tuple(d.code for d in self.diagnoses)
        self.hide()
        self.dismissed.emit()

    def text(self) -> str:
        """What the banner says, as plain text (for tests and screen readers)."""
        return f"{self.title.text()}\n{self.message.text()}"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
