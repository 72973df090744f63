"""Help > Diagnostics: the devices available_devices() reports, read-only and monospace, copyable."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QFontMetrics, QGuiApplication
from pytestqt.qtbot import QtBot

import workbench.engine.devices as device_discovery
from workbench.engine.devices import DeviceInfo
from workbench.ui.diagnostics_dialog import DiagnosticsDialog

FAKE_GPU = DeviceInfo(
    "cuda:0",
    "NVIDIA Fake 9000",
    24 * 2**30,
    ("32-true", "16-mixed", "bf16-mixed"),
    ("nccl", "gloo"),
)


@pytest.fixture
def with_fake_gpu(monkeypatch: pytest.MonkeyPatch) -> list[DeviceInfo]:
    devices = [*device_discovery.available_devices(), FAKE_GPU]
    monkeypatch.setattr(device_discovery, "available_devices", lambda: devices)
    return devices


def open_dialog(qtbot: QtBot) -> DiagnosticsDialog:
    dialog = DiagnosticsDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_lists_every_device_available_devices_returns(
    qtbot: QtBot, with_fake_gpu: list[DeviceInfo]
) -> None:
    dialog = open_dialog(qtbot)
    assert dialog.objectName() == "diagnosticsDialog"
    text = dialog.plain_text()
    for device in with_fake_gpu:
        assert device.label() in text
    assert "cuda:0 — NVIDIA Fake 9000, 24.0 GiB" in text
    assert "  16-mixed    yes  cuda:0" in text.splitlines()
    assert "  nccl        yes  cuda:0" in text.splitlines()


def test_without_a_gpu_it_says_why_16_mixed_is_missing(qtbot: QtBot) -> None:
    cpu = DeviceInfo("cpu", "CPU, 2 threads", None, ("32-true", "bf16-mixed"), ("gloo",))
    dialog = DiagnosticsDialog([cpu])
    qtbot.addWidget(dialog)
    lines = dialog.plain_text().splitlines()
    assert any(line.startswith("  16-mixed    no   needs a CUDA GPU (") for line in lines)
    assert any(line.startswith("  nccl        no   needs CUDA (") for line in lines)


def test_text_is_read_only_monospace_and_names_qt(qtbot: QtBot) -> None:
    dialog = open_dialog(qtbot)
    assert dialog.text.isReadOnly()
    # Columns line up: every character is as wide as any other. (QFontInfo.fixedPitch() is
    # False for some monospaced fonts, Noto Sans Mono among them, so measure instead.)
    metrics = QFontMetrics(dialog.text.font())
    assert metrics.horizontalAdvance("iiii") == metrics.horizontalAdvance("WWWW")
    assert "\nQt\n  Qt 6." in dialog.plain_text()
    assert "platform offscreen" in dialog.plain_text()


def test_copy_puts_the_whole_text_on_the_clipboard(qtbot: QtBot, with_fake_gpu: object) -> None:
    dialog = open_dialog(qtbot)
    QGuiApplication.clipboard().clear()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == dialog.plain_text()
    assert "NVIDIA Fake 9000" in QGuiApplication.clipboard().text()
    assert dialog.copied.text() == "Copied to the clipboard."
