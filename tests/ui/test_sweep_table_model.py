"""The trial table: what each cell reads, live epochs, and sorting numbers (missing ones last)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from tests import factories
from workbench.engine.experiment import frozen_mapping
from workbench.engine.sweep import TrialResult
from workbench.engine.sweep_plan import Trial
from workbench.ui.sweep_table_model import SweepSortProxy, SweepTableModel

KEYS = ("train.lr", "train.optimizer")


def result(number: int, accuracy: float | None, status: str = "completed", **values: Any):  # type: ignore[no-untyped-def]
    return TrialResult(
        Trial(number, frozen_mapping(values)),
        status=status,
        final={"val_accuracy": accuracy, "val_loss": 0.5},
        best_val_accuracy=accuracy,
        best_epoch=2 if accuracy is not None else None,
        wall_seconds=3.25,
        message="it diverged" if status == "failed" else "",
    )


def filled() -> SweepTableModel:
    model = SweepTableModel()
    model.set_results(KEYS, [
        result(1, 0.9, **{"train.lr": 0.1, "train.optimizer": "adam"}),
        result(2, None, "failed", **{"train.lr": 0.01, "train.optimizer": "sgd"}),
        result(3, 0.95, **{"train.lr": 0.001, "train.optimizer": "adam"}),
    ])  # fmt: skip
    return model


def test_cells_read_as_a_user_expects(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    model = filled()
    qtmodeltester.check(model)
    assert model.headers()[:4] == ["Trial", "Status", "train.lr", "train.optimizer"]
    row = [model.index(0, column).data() for column in range(model.columnCount())]
    assert row == ["1", "completed", "0.1", "adam", "90.00 %", "90.00 %", "0.5000", "—", "2",
                   "3.2 s"]  # fmt: skip
    failed = model.index(1, 1)
    assert failed.data() == "failed"
    assert failed.data(Qt.ItemDataRole.ToolTipRole) == "it diverged"

    model.mark_running(3, factories.epoch_report(2, epochs=5))
    assert model.index(2, 1).data() == "running · epoch 2/5"
    model.update_result(result(3, 0.97, **{"train.lr": 0.001, "train.optimizer": "adam"}))
    assert model.index(2, 1).data() == "completed"
    assert model.index(2, model.column_of("Val accuracy")).data() == "97.00 %"


def test_sorting_uses_numbers_and_puts_missing_values_last_when_descending() -> None:
    model = filled()
    proxy = SweepSortProxy(model)
    column = model.column_of("Val accuracy")
    proxy.sort(column, Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, 0).data() for r in range(3)] == ["3", "1", "2"]
    proxy.sort(model.column_of("train.lr"), Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 0).data() for r in range(3)] == ["3", "2", "1"]
    proxy.setFilterFixedString("SGD")
    assert proxy.rowCount() == 1 and proxy.index(0, 0).data() == "2"
