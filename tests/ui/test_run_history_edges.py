"""Run history edges: a tiny-gpt run (perplexity columns and more) lists and overlays; old rows
without them still overlay; the window's run folders never collide within a second."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests import factories
from tests.conftest import PRESETS
from workbench.controllers.run_session import RunSession
from workbench.engine.experiment import load_experiment
from workbench.engine.run_files import METRIC_COLUMNS
from workbench.engine.run_history import write_run_label
from workbench.ui.insight.run_list import RunRecord
from workbench.ui.main_window import MainWindow
from workbench.ui.plots import PlotsPanel
from workbench.ui.runs_panel import RunsPanel, epoch_history

Rig = tuple[RunsPanel, PlotsPanel, RunSession]


@pytest.fixture
def rig(qtbot: QtBot, tmp_path: Path) -> Iterator[Rig]:
    plots, session = PlotsPanel(), RunSession()
    panel = RunsPanel(plots, session, tmp_path / "runs")
    qtbot.addWidget(plots)
    qtbot.addWidget(panel)
    yield panel, plots, session
    session.shutdown()


def tiny_gpt_run(folder: Path) -> None:
    """A finished tiny-gpt run as the trainer leaves it, its metrics.csv with one more column
    (`future_metric`) than this version writes."""
    experiment = load_experiment(PRESETS / "tiny-gpt.toml")
    write_run_label(folder, "preset:tiny-gpt", experiment)
    columns = [*METRIC_COLUMNS, "future_metric"]
    with (folder / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for epoch, loss in ((1, 3.2), (2, 2.6), (3, 2.1)):
            writer.writerow({
                "epoch": epoch, "train_loss": loss + 0.1, "train_accuracy": "", "val_loss": loss,
                "val_accuracy": "", "lr": 0.001, "samples_per_second": 900.0,
                "elapsed_seconds": 4.0 * epoch, "skipped_steps": 0,
                "train_perplexity": 2.718 ** (loss + 0.1), "val_perplexity": 2.718**loss,
                "val_bits_per_char": loss / 0.693, "tokens_per_second": 57600.0,
                "future_metric": 0.5,
            })  # fmt: skip
    summary = {"status": "completed", "epochs_completed": 3, "val_loss": 2.1, "parameters": 816}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def overlay_names(plots: PlotsPanel) -> list[str]:
    return sorted(item.name() for item in plots.epoch_loss_plot.plotItem.listDataItems())


def test_a_tiny_gpt_run_folder_is_listed_and_its_curves_overlay(
    qtbot: QtBot, rig: Rig, tmp_path: Path
) -> None:
    panel, plots, _ = rig
    tiny_gpt_run(tmp_path / "runs" / "tiny-gpt-20261203-180000")
    panel.bind_project(None, key="preset:tiny-gpt")
    assert [run.name for run in panel.runs] == ["tiny-gpt-20261203-180000"]
    history = epoch_history(panel.runs[0])
    assert [report.val_perplexity for report in history] == pytest.approx(
        [2.718**3.2, 2.718**2.6, 2.718**2.1]
    )
    panel.set_overlaid(0, True)
    names = overlay_names(plots)
    assert "tiny-gpt-20261203-180000 train" in names
    assert "tiny-gpt-20261203-180000 validation" in names


def test_rows_saved_before_the_sequence_fields_still_overlay(rig: Rig) -> None:
    panel, plots, _ = rig
    rows = factories.as_rows(factories.history(3))
    for row in rows:
        for field in ("train_perplexity", "val_perplexity", "val_bits_per_char",
                      "tokens_per_second"):  # fmt: skip
            row.pop(field)
    record = RunRecord(name="old run", settings="moons", metrics={"history": rows})
    assert [report.epoch for report in epoch_history(record)] == [1, 2, 3]
    panel.add_run(record)
    panel.set_overlaid(0, True)
    assert "old run train" in overlay_names(plots)


def test_two_runs_named_in_the_same_second_get_two_folders(window: MainWindow) -> None:
    first = window._new_run_folder()
    second = window._new_run_folder()
    assert first != second
    assert first.is_dir() and second.is_dir()  # made when named: a third cannot take them
