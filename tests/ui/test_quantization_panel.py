"""The quantization lab as a user meets it: disabled with a reason, runs off-thread, shows the card."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyqtgraph
import pytest
import torch
from pytestqt.qtbot import QtBot

from workbench.controllers.current_model import CurrentModelHolder
from workbench.controllers.jobs import running_threads
from workbench.engine.current_model import RUN, CurrentModel
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.quantization import MeasureSettings, ReportCard
from workbench.engine.trainer import Trainer
from workbench.ui.quantization_panel import NO_MODEL_REASON, QuantizationPanel

ROOT = Path(__file__).resolve().parents[2]
FAST = MeasureSettings(repeats=2, warmup=1, threads=1)
State = Mapping[str, torch.Tensor] | None


@pytest.fixture(scope="module")
def trained() -> tuple[Experiment, dict[str, torch.Tensor]]:
    experiment = load_experiment(ROOT / "resources" / "presets" / "digits-mlp.toml")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=3)
    )
    trainer = Trainer(experiment)
    trainer.fit()
    return experiment, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def Source(experiment: Experiment, state: State) -> CurrentModelHolder:
    """What the window would hand the lab: its current model (run 1, or a fresh one)."""
    if state is None:
        return CurrentModelHolder(CurrentModel.fresh(experiment))
    return CurrentModelHolder(CurrentModel(RUN, "run 1", experiment, state))


@pytest.fixture
def make_panel(qtbot: QtBot, tmp_path: Path) -> Iterator[object]:
    panels: list[QuantizationPanel] = []

    def make(source: CurrentModelHolder) -> QuantizationPanel:
        panel = QuantizationPanel(source, output_folder=tmp_path / "out", measure=FAST)
        qtbot.addWidget(panel)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        assert panel.controller.shutdown()
    assert running_threads() == []


def test_pyqtgraph_draws_with_pyside6() -> None:
    assert pyqtgraph.Qt.QT_LIB == "PySide6"


def test_without_a_trained_model_the_lab_says_why(
    make_panel: object, trained: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = trained
    source = Source(experiment, None)
    panel = make_panel(source)  # type: ignore[operator]
    assert panel.objectName() == "quantizationPanel"
    assert not panel.run_button.isEnabled()
    assert panel.status.text() == NO_MODEL_REASON
    assert panel.run_button.toolTip() == NO_MODEL_REASON
    assert panel.model_name.text() == "Model: fresh initialisation"
    source.set(CurrentModel(RUN, "run 4", experiment, state))
    assert panel.run_button.isEnabled()
    assert panel.status.text() == "Ready."
    assert panel.model_name.text() == "Model: run 4"


def test_method_decides_which_settings_apply(
    make_panel: object, trained: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    panel = make_panel(Source(*trained))  # type: ignore[operator]

    def paths() -> list[str]:
        return [str(panel.path.itemData(i)) for i in range(panel.path.count())]

    panel.method.setCurrentIndex(panel.method.findData("dynamic"))
    assert not panel.calibration.isEnabled() and not panel.qat_epochs.isEnabled()
    assert paths() == ["auto", "eager", "torchao"]
    panel.method.setCurrentIndex(panel.method.findData("static"))
    assert panel.calibration.isEnabled() and panel.observer.isEnabled()
    assert not panel.qat_epochs.isEnabled()
    assert paths() == ["auto", "eager", "pt2e"]
    panel.method.setCurrentIndex(panel.method.findData("qat"))
    assert panel.qat_epochs.isEnabled() and not panel.calibration.isEnabled()
    panel.qat_epochs.setValue(2)
    assert panel.options().method == "qat" and panel.options().qat_epochs == 2


def test_a_run_fills_the_table_and_the_chart(
    qtbot: QtBot,
    make_panel: object,
    tmp_path: Path,
    trained: tuple[Experiment, dict[str, torch.Tensor]],
) -> None:
    panel = make_panel(Source(*trained))  # type: ignore[operator]
    panel.method.setCurrentIndex(panel.method.findData("static"))
    panel.calibration.setValue(64)
    progress: list[float] = []
    cards: list[ReportCard] = []
    panel.controller.progressed.connect(lambda _text, fraction: progress.append(fraction))
    panel.report_shown.connect(cards.append)
    with qtbot.waitSignals(
        [panel.report_shown, panel.controller.run_ended], timeout=120_000, order="strict"
    ):
        panel.run_button.click()
        assert not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    assert len(cards) == 1 and cards[0].method == "static"
    assert progress[-1] == 1.0 and panel.progress.value() == 100
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    first_column = [panel.table.item(row, 0).text() for row in range(panel.table.rowCount())]
    assert first_column[:5] == [
        "accuracy",
        "size on disk",
        "latency, batch 1",
        "latency, batch 64",
        "throughput, batch 64",
    ]
    assert first_column[5:] == [f"class {digit}" for digit in range(10)]
    assert panel.table.item(0, 1).text().endswith("%")
    assert set(panel.chart_values) == {"size", "latency b1", "latency b64", "accuracy"}
    assert panel.chart_values["size"][1] < panel.chart_values["size"][0]
    bars = [
        item for item in panel.chart.getPlotItem().items if isinstance(item, pyqtgraph.BarGraphItem)
    ]
    assert len(bars) == 2
    assert (tmp_path / "out" / "model-static-int8.pth").is_file()
    assert (tmp_path / "out" / "model-static-int8.report.json").is_file()
    assert panel.status.text().startswith("Saved ")
    assert panel.report_title.text() == "Report card of run 1: static int8"
    assert "torch.inference_mode" in panel.notes.toPlainText()


def test_cancel_stops_the_run_and_writes_nothing(
    qtbot: QtBot,
    make_panel: object,
    tmp_path: Path,
    trained: tuple[Experiment, dict[str, torch.Tensor]],
) -> None:
    panel = make_panel(Source(*trained))  # type: ignore[operator]
    panel.method.setCurrentIndex(panel.method.findData("qat"))
    panel.qat_epochs.setValue(50)  # long enough that the cancel arrives mid-run
    with qtbot.waitSignals(
        [panel.controller.run_cancelled, panel.controller.run_ended], timeout=60_000
    ):
        panel.run_button.click()
        panel.cancel_button.click()
        assert not panel.cancel_button.isEnabled()  # "cancelling": one click is enough
    assert panel.status.text() == "Cancelled; nothing was written."
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    assert panel.run_button.isEnabled()


def test_a_failure_is_shown_as_one_line(
    qtbot: QtBot, make_panel: object, trained: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = trained
    wrong = {f"extra.{key}": value for key, value in state.items()}
    panel = make_panel(Source(experiment, wrong))  # type: ignore[operator]
    with qtbot.waitSignal(panel.controller.run_failed, timeout=60_000) as failed:
        panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.controller.is_running)
    assert "does not fit the model" in failed.args[0]
    assert panel.status.text().startswith("Quantization failed: the checkpoint does not fit")
    assert "\n" not in panel.status.text()
