"""The status bar's lasting parts: the device and its memory, shown from the start, beside
messages (which a timer never overwrites)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar


class DeviceStatus(QLabel):
    """`Device: cpu · RAM 3.1/7.7 GB`: the device of the last run, or the one the next run uses."""

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__()
        self.setObjectName("deviceStatus")
        self.setAccessibleName("Device and memory")
        bar.addPermanentWidget(self)

    def show_device(self, device: str) -> None:
        from workbench.engine.memory import memory_status_text

        self.setText(f"Device: {device} · {memory_status_text(device)}")
