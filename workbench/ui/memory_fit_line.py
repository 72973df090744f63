"""Will it fit: a line in the training settings with the estimated peak memory against free
memory, and the question before Train when it will not fit."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from workbench.controllers.memory_fit import DEBOUNCE_MS, MemoryFit, MemoryFitChecker
from workbench.engine.devices import DeviceInfo
from workbench.ui.project_document import ProjectDocument
from workbench.ui.widgets import named

COLORS = {"fits": "#1b7f3b", "tight": "#a15c00", "too_big": "#b00020", "unknown": "#555555"}


class MemoryFitLine(QLabel):
    """Re-estimated in the background (debounced) when the settings it depends on change."""

    def __init__(
        self,
        document: ProjectDocument,
        devices: list[DeviceInfo] | None = None,
        parent: QWidget | None = None,
        delay_ms: int | None = None,
    ) -> None:
        super().__init__("Estimating training memory…", parent)
        named(self, "memoryFitLabel", "Estimated peak training memory against free memory")
        self.setWordWrap(True)
        self.document = document
        self.checker = MemoryFitChecker(devices, self, delay_ms or DEBOUNCE_MS)
        self.checker.estimated.connect(self._show_fit)
        self.checker.failed.connect(self._show_failure)
        document.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.checker.request(self.document.experiment)

    def _show_fit(self, fit: MemoryFit) -> None:
        self.setText(fit.text)
        self.setStyleSheet(f"color: {COLORS.get(fit.verdict, COLORS['unknown'])};")
        self.setToolTip("\n".join(fit.estimate.lines()))

    def _show_failure(self, message: str) -> None:
        self.setText("Peak training memory: no estimate")
        self.setStyleSheet(f"color: {COLORS['unknown']};")
        self.setToolTip(message)

    def confirm_train(self, parent: QWidget) -> bool:
        """False when the estimate says the run will not fit and the user chose not to go on."""
        fit = self.checker.latest
        if fit is None or fit.verdict != "too_big":
            return True
        if not self.checker.is_current(self.document.experiment):
            return True  # an estimate of other settings says nothing about these
        answer = QMessageBox.question(
            parent,
            "It will probably not fit",
            f"{fit.text}.\n\n{fit.estimate.lines()[0]}.\n\nTrain anyway?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self) -> bool:
        return self.checker.shutdown()
