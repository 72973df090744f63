"""The main window's experiment lab: the Experiments tab, the LR finder and the memory line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QWidget

from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import load_experiment
from workbench.ui.error_dialog import show_error
from workbench.ui.project_document import ProjectDocument
from workbench.ui.screen_fit import ScrollingTabs

if TYPE_CHECKING:  # these load PyTorch: the window imports them once the frame is shown
    from workbench.engine.devices import DeviceInfo
    from workbench.ui.experiments_tab import ExperimentsTab
    from workbench.ui.lr_finder_dialog import LRFinderDialog
    from workbench.ui.memory_fit_line import MemoryFitLine
    from workbench.ui.training_panel import TrainingPanel


class ExperimentLab(QMainWindow):
    """Sweeps, the learning-rate finder and "will it fit" (a mixin: MainWindow builds the rest)."""

    document: ProjectDocument
    devices: list[DeviceInfo]
    runs_dir: Path
    tabs: ScrollingTabs
    training_panel: TrainingPanel
    preset_name: str | None
    experiments_tab: ExperimentsTab
    memory_fit: MemoryFitLine

    if TYPE_CHECKING:  # made by the other halves of MainWindow

        def may_leave_project(self) -> bool: ...
        def start_over(self) -> None: ...
        def _update_title(self) -> None: ...
        def _lazy_tab(self, attribute: str, label: str, build: Callable[[], QWidget]) -> None: ...

    def _build_experiment_lab(self) -> None:
        from workbench.ui.memory_fit_line import MemoryFitLine

        self._lazy_tab("experiments_tab", "E&xperiments", self._build_experiments_tab)
        self.memory_fit = MemoryFitLine(self.document, self.devices)
        self.training_panel.add_row("Memory", self.memory_fit)

    def _build_experiments_tab(self) -> ExperimentsTab:
        """The Experiments tab's page (built on first need)."""
        from workbench.ui.experiments_tab import ExperimentsTab

        self.experiments_tab = ExperimentsTab(self.document, self.runs_dir, self.devices)
        self.experiments_tab.open_project_requested.connect(self.open_as_unsaved_project)
        return self.experiments_tab

    def _wire_experiment_lab(self) -> None:
        self.training_panel.lr_find_requested.connect(self.show_lr_finder)

    def show_lr_finder(self) -> LRFinderDialog:
        """The finder on the project as it is; "Use this rate" sets train.lr (undoable)."""
        from workbench.ui.lr_finder_dialog import LRFinderDialog

        dialog = LRFinderDialog(self.document, self.devices, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        dialog.start()
        return dialog

    def open_as_unsaved_project(self, path: Path) -> bool:
        """A trial's experiment.toml as a new, untitled project with unsaved changes."""
        if not self.may_leave_project():
            return False
        try:
            experiment = load_experiment(path)
        except WorkbenchError as exc:
            show_error(self, "Cannot open the trial", str(exc))
            return False
        self.preset_name = None
        self.document.replace(experiment, None)
        self.document.undo_stack.resetClean()  # unsaved: Save asks where it goes
        self.start_over()
        self._update_title()
        self.statusBar().showMessage(f"Opened {path} as an unsaved project", 8000)
        return True
