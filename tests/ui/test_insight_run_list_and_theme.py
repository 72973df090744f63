"""The run list (rename, delete, save, load) and the presentation theme."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.modeltest import ModelTester

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.ui.insight.run_list import RunListModel, run_record, settings_summary
from workbench.ui.theme import PROJECTOR_SCALE, Theme, palette, scaled_font

SUMMARY = {
    "val_accuracy": 0.9526,
    "val_loss": 0.173,
    "train_loss": 0.0747,
    "epochs_completed": 10,
    "wall_seconds": 3.2,
}


def test_settings_summary_tells_runs_apart() -> None:
    text = settings_summary(load_experiment(PRESETS / "digits-mlp.toml"))
    assert text == "digits · 6 layers · adam lr 0.003 · batch 32 · 32-true · seed 1"


def test_run_list_shows_renames_deletes_and_round_trips(
    qtmodeltester: ModelTester, tmp_path: Path
) -> None:
    model = RunListModel()
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    model.add_run(run_record("run 1", experiment, SUMMARY, tmp_path / "run1"))
    model.add_run(run_record("run 2", experiment, {**SUMMARY, "val_accuracy": None}))
    qtmodeltester.check(model)
    row = [model.data(model.index(0, c)) for c in range(model.columnCount())]
    assert row == [
        "run 1",
        settings_summary(experiment),
        "95.26%",
        "0.1730",
        "0.0747",
        "10",
        "3.2 s",
    ]
    assert model.data(model.index(1, 2)) == "n/a"
    assert model.flags(model.index(0, 0)) & Qt.ItemFlag.ItemIsEditable
    assert not model.flags(model.index(0, 1)) & Qt.ItemFlag.ItemIsEditable
    assert model.setData(model.index(0, 0), "  baseline ")
    assert model.data(model.index(0, 0)) == "baseline"
    assert not model.setData(model.index(0, 0), "   ")  # a name cannot be empty
    side_file = tmp_path / "runs.json"
    model.save(side_file)
    assert json.loads(side_file.read_text())["runs"][0]["name"] == "baseline"
    removed = model.delete_run(1)
    assert removed.name == "run 2" and model.rowCount() == 1
    reloaded = RunListModel()
    reloaded.load(side_file)
    assert [run.name for run in reloaded.runs] == ["baseline", "run 2"]
    assert reloaded.runs[0].metrics["val_accuracy"] == pytest.approx(0.9526)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a run list"):
        reloaded.load(tmp_path / "bad.json")


def test_palettes_differ_and_presentation_mode_scales_the_font_once(qapp: QApplication) -> None:
    dark, light = palette(dark=True), palette(dark=False)
    window = QPalette.ColorRole.Window
    assert dark.color(window).lightness() < 60 < light.color(window).lightness()
    font = qapp.font()
    assert scaled_font(font, 2.0).pointSizeF() == pytest.approx(2 * font.pointSizeF())
    theme = Theme(qapp)
    base = qapp.font().pointSizeF()
    try:
        theme.set_presentation_mode(True)
        theme.set_presentation_mode(True)
        assert qapp.font().pointSizeF() == pytest.approx(base * PROJECTOR_SCALE)
        theme.set_presentation_mode(False)
        assert qapp.font().pointSizeF() == pytest.approx(base)
        theme.apply(dark=True)
        assert qapp.palette().color(window) == dark.color(window)
    finally:
        theme.apply(dark=False, scale=1.0)
        qapp.setPalette(QPalette())
