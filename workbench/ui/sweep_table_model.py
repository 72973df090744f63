"""The trials of a sweep as a table: swept values, final and best metrics, best epoch, wall time."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from workbench.engine.reports import EpochReport
from workbench.engine.sweep import TrialResult

SORT_ROLE = Qt.ItemDataRole.UserRole  # the raw value: numbers sort as numbers
Index = QModelIndex | QPersistentModelIndex


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return "—" if not value else f"{value:.1f} s"


# (header, the raw value of a trial, how it reads)
METRICS: tuple[tuple[str, Callable[[TrialResult], Any], Callable[[Any], str]], ...] = (
    ("Val accuracy", lambda r: r.final.get("val_accuracy"), _percent),
    ("Best val accuracy", lambda r: r.best_val_accuracy, _percent),
    ("Val loss", lambda r: r.final.get("val_loss"), _number),
    ("Best val loss", lambda r: r.best_val_loss, _number),
    ("Best epoch", lambda r: r.best_epoch, lambda v: "—" if v is None else str(v)),
    ("Wall time", lambda r: r.wall_seconds, _seconds),
)


class SweepTableModel(QAbstractTableModel):
    """One row per trial (in trial order); columns: Trial, Status, each swept key, METRICS."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.keys: tuple[str, ...] = ()
        self.results: list[TrialResult] = []
        self.progress: dict[int, EpochReport] = {}  # the running trial's last epoch

    # ------------------------------------------------------------------ filling

    def set_results(self, keys: Sequence[str], results: Sequence[TrialResult]) -> None:
        self.beginResetModel()
        self.keys = tuple(keys)
        self.results = list(results)
        self.progress = {}
        self.endResetModel()

    def update_result(self, result: TrialResult) -> None:
        row = self.row_of(result.trial.number)
        if row is None:
            return
        self.results[row] = result
        self.progress.pop(result.trial.number, None)
        self._row_changed(row)

    def mark_running(self, number: int, report: EpochReport | None = None) -> None:
        row = self.row_of(number)
        if row is None:
            return
        if report is not None:
            self.progress[number] = report
        if self.results[row].status != "running":
            self.results[row] = replace(self.results[row], status="running")
        self._row_changed(row)

    def row_of(self, number: int) -> int | None:
        for row, result in enumerate(self.results):
            if result.trial.number == number:
                return row
        return None

    def _row_changed(self, row: int) -> None:
        last = self.columnCount() - 1
        self.dataChanged.emit(self.index(row, 0), self.index(row, last))

    # ------------------------------------------------------------------ the Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.results)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 2 + len(self.keys) + len(METRICS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        return self.headers()[section] if 0 <= section < self.columnCount() else None

    def headers(self) -> list[str]:
        return ["Trial", "Status", *self.keys, *(name for name, _, _ in METRICS)]

    def column_of(self, header: str) -> int:
        return self.headers().index(header)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.results):
            return None
        result = self.results[index.row()]
        raw, text = self._cell(result, index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == SORT_ROLE:
            if raw is None or (isinstance(raw, float) and math.isnan(raw)):
                return -math.inf  # missing values sort below every number
            return raw if isinstance(raw, int | float | str) else str(raw)
        if role == Qt.ItemDataRole.ToolTipRole and result.message:
            return result.message
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _cell(self, result: TrialResult, column: int) -> tuple[Any, str]:
        if column == 0:
            return result.trial.number, str(result.trial.number)
        if column == 1:
            return result.status, self._status(result)
        if column < 2 + len(self.keys):
            value = result.trial.values.get(self.keys[column - 2])
            return value, str(value)
        _, getter, show = METRICS[column - 2 - len(self.keys)]
        raw = getter(result)
        return raw, show(raw)

    def _status(self, result: TrialResult) -> str:
        report = self.progress.get(result.trial.number)
        if result.status == "running" and report is not None:
            return f"running · epoch {report.epoch}/{report.epochs}"
        return result.status.replace("_", " ")


class SweepSortProxy(QSortFilterProxyModel):
    """Sorts on the raw values (numbers as numbers) and filters on any column's text."""

    def __init__(self, source: SweepTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def lessThan(self, left: Index, right: Index) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return bool(a < b)
        return str(a) < str(b)
