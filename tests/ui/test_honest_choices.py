"""Honest choices in the training panel: DDP processes capped at the cores, slow precisions named."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from tests.ui.test_field_validation import type_into
from workbench.engine import choice_costs
from workbench.engine.devices import DeviceInfo
from workbench.engine.experiment import load_experiment
from workbench.ui.precision_speed import PrecisionSpeedCheck
from workbench.ui.project_document import ProjectDocument
from workbench.ui.training_panel import TrainingPanel

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
CPU = DeviceInfo("cpu", "test CPU", None, ("32-true", "bf16-mixed"), ("gloo",))


def make_panel(qtbot: QtBot, presets: Path) -> TrainingPanel:
    panel = TrainingPanel(ProjectDocument(load_experiment(presets / "toy-mlp.toml")), [CPU])
    qtbot.addWidget(panel)
    panel.show()
    return panel


def test_sixteen_ddp_processes_on_two_cores_are_capped_with_a_message(
    qtbot: QtBot, presets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(choice_costs, "cpu_cores", lambda: 2)
    panel = make_panel(qtbot, presets)
    panel.ddp.setChecked(True)
    type_into(qtbot, panel.nproc, "16")
    ddp = panel.document.experiment.train.ddp
    assert ddp.enabled and ddp.nproc_per_node == 2
    qtbot.waitUntil(lambda: panel.nproc.value() == 2)
    assert panel.ddp_note.isVisible()
    assert panel.ddp_note.text() == (
        "DDP processes capped at 2: this machine has 2 CPU cores, and 16 processes would only "
        "wait on each other"
    )
    type_into(qtbot, panel.nproc, "1")
    assert not panel.ddp_note.isVisible()


def test_a_slower_precision_is_measured_once_and_named(
    qtbot: QtBot, presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured: list[str] = []

    def slowdowns(device: DeviceInfo) -> dict[str, float]:
        measured.append(device.name)
        return {"bf16-mixed": 2.43}

    monkeypatch.setattr(choice_costs, "precision_slowdowns", slowdowns)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    panel = make_panel(qtbot, presets)
    check = PrecisionSpeedCheck(settings, panel.document, panel)
    assert not panel.precision_note.isVisible()  # float32: nothing to say, nothing measured
    panel.document.update_train(precision="bf16-mixed")
    expected = "bfloat16 mixed: 2.4× slower than float32 on this device"
    qtbot.waitUntil(lambda: panel.precision_note.text() == expected, timeout=10_000)
    assert panel.precision_note.isVisible()
    check.shutdown()

    again = make_panel(qtbot, presets)  # a later start: remembered, not measured again
    again.document.update_train(precision="bf16-mixed")
    PrecisionSpeedCheck(settings, again.document, again)
    assert again.precision_note.text() == expected
    assert measured == ["cpu"]
    panel.document.update_train(precision="32-true")
    assert not panel.precision_note.isVisible()
