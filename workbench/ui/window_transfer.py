"""The window's transfer-learning parts: File > Start from a Pretrained Network… (and the welcome
banner's button) and the Augmentation dock beside the Data panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget

from workbench.ui.augmentation_panel import AugmentationPanel
from workbench.ui.pretrained_start import install_pretrained_start

if TYPE_CHECKING:
    from workbench.ui.main_window import MainWindow


class TransferLearning(QObject):
    """Adds its action and dock to `window`; `shutdown()` waits for the preview job."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.pretrained_action = install_pretrained_start(window)
        self.augmentation = AugmentationPanel(window.document)
        self.augmentation_dock = dock = QDockWidget("Augmentation", window)
        dock.setObjectName("augmentationDock")
        dock.setWidget(self.augmentation)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        window.tabifyDockWidget(window.data_dock, dock)
        window.layers_dock.raise_()
        window.view_menu.insertAction(window.run_dock.toggleViewAction(), dock.toggleViewAction())

    def show_augmentation(self) -> None:
        self.augmentation_dock.show()
        self.augmentation_dock.raise_()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        return self.augmentation.shutdown(timeout_ms)
