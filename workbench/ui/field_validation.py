"""Typed values are checked, never cleaned: a bad value marks its field, says why, keeps the old."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

INVALID_PROPERTY = "invalidReason"
INVALID_STYLE = "border: 2px solid #D32F2F; border-radius: 3px;"
_USUAL_TIP = "usualToolTip"


def mark_invalid(widget: QWidget, reason: str) -> None:
    """A red frame, and REASON as the tooltip and the accessible description."""
    if not widget.property(INVALID_PROPERTY):
        widget.setProperty(_USUAL_TIP, widget.toolTip())
    widget.setProperty(INVALID_PROPERTY, reason)
    widget.setStyleSheet(f"{type(widget).__name__} {{ {INVALID_STYLE} }}")
    widget.setToolTip(reason)
    widget.setAccessibleDescription(reason)


def clear_invalid(widget: QWidget) -> None:
    if not widget.property(INVALID_PROPERTY):
        return
    widget.setProperty(INVALID_PROPERTY, "")
    widget.setStyleSheet("")
    widget.setToolTip(str(widget.property(_USUAL_TIP) or ""))
    widget.setAccessibleDescription("")


def invalid_reason(widget: QWidget) -> str:
    """Why the field's last typed value was refused ('' when it was accepted)."""
    return str(widget.property(INVALID_PROPERTY) or "")


def spin_problem(spin: QAbstractSpinBox, text: str) -> str | None:
    """Why TEXT is not a value SPIN can take, or None when it is."""
    cleaned = text.strip()
    for affix in (
        (spin.prefix(), spin.suffix()) if isinstance(spin, QSpinBox | QDoubleSpinBox) else ()
    ):
        cleaned = cleaned.removeprefix(affix).removesuffix(affix).strip() if affix else cleaned
    if cleaned and cleaned == spin.specialValueText():
        return None
    state, _, _ = spin.validate(text, len(text))
    if state == QValidator.State.Acceptable:  # Qt's own reading (locale, prefix) takes it
        return None
    whole = isinstance(spin, QSpinBox)
    try:
        number = int(cleaned) if whole else float(cleaned)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        return f"“{text}” is not {kind}: the value stays {_shown_value(spin)}"
    low, high = spin.minimum(), spin.maximum()  # type: ignore[attr-defined]
    if not low <= number <= high:
        return f"{cleaned} is outside {low:g} to {high:g}: the value stays {_shown_value(spin)}"
    return None


def _shown_value(spin: QAbstractSpinBox) -> str:
    if isinstance(spin, QSpinBox):
        return str(spin.textFromValue(spin.value()))
    if isinstance(spin, QDoubleSpinBox):
        return str(spin.textFromValue(spin.value()))
    return spin.text()


class _SpinGuard(QObject):
    """Lets any text be typed into a spin box; on Enter or leaving the field, text that is not
    a value marks the field (the spin box keeps its previous value, as Qt does)."""

    def __init__(self, spin: QAbstractSpinBox) -> None:
        super().__init__(spin)
        self.spin = spin
        edit = spin.findChild(QLineEdit)
        if edit is not None:
            # keep what was typed on screen until it is judged
            edit.setValidator(None)  # type: ignore[arg-type]
            edit.textEdited.connect(lambda _text: clear_invalid(spin))
        spin.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusOut or (
            isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self.judge()
        return False

    def judge(self) -> None:
        spin = self.spin
        edit = spin.findChild(QLineEdit)
        text = edit.text() if edit is not None else spin.text()
        problem = spin_problem(spin, text)
        if problem is None:
            clear_invalid(spin)
        else:
            mark_invalid(spin, problem)


def check_typed_values(root: QWidget) -> None:
    """Guard every spin box under ROOT (and ROOT itself)."""
    spins = root.findChildren(QAbstractSpinBox)
    if isinstance(root, QAbstractSpinBox):
        spins.append(root)
    for spin in spins:
        if spin.findChild(_SpinGuard) is None:
            _SpinGuard(spin)
