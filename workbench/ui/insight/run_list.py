"""Finished runs side by side: name, settings in a line, final metrics; renamed, deleted, saved."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from workbench.engine.atomic import atomic_write_text
from workbench.engine.experiment import Experiment

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
COLUMNS = ("name", "settings", "val acc", "val loss", "train loss", "epochs", "time")
FORMAT = "workbench-runs/1"


@dataclass(frozen=True)
class RunRecord:
    """One finished run as the list shows it; `metrics` is the run's summary.json subset."""

    name: str
    settings: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    folder: str | None = None
    finished_at: float = 0.0


def settings_summary(experiment: Experiment) -> str:
    """The settings that tell runs apart, in one line."""
    data, train = experiment.data, experiment.train
    parts = [
        data.name,
        f"{len(experiment.model.layers)} layers",
        f"{train.optimizer} lr {train.lr:g}",
        f"batch {data.batch_size}"
        + (f"×{train.accumulate_grad_batches}" if train.accumulate_grad_batches > 1 else ""),
        train.precision,
        f"seed {train.seed}",
    ]
    if train.ddp.enabled:
        parts.append(f"DDP ×{train.ddp.nproc_per_node}")
    return " · ".join(parts)


def run_record(
    name: str, experiment: Experiment, summary: Mapping[str, Any], folder: str | Path | None = None
) -> RunRecord:
    keys = (
        "val_accuracy",
        "val_loss",
        "train_loss",
        "train_accuracy",
        "epochs_completed",
        "wall_seconds",
        "status",
        "val_perplexity",  # text runs
    )
    return RunRecord(
        name=name,
        settings=settings_summary(experiment),
        metrics={key: summary.get(key) for key in keys},
        folder=str(folder) if folder is not None else None,
        finished_at=time.time(),
    )


class RunListModel(QAbstractTableModel):
    """A table of finished runs; the name column is editable (rename), rows can be removed."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.runs: list[RunRecord] = []

    # ------------------------------------------------------------------ Qt model
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.runs):
            return None
        run = self.runs[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._cell(run, index.column(), role == Qt.ItemDataRole.EditRole)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{run.name}: {run.settings}" + (f"\n{run.folder}" if run.folder else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= 2:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    @staticmethod
    def _cell(run: RunRecord, column: int, editing: bool) -> Any:
        metrics = run.metrics
        if column == 0:
            return run.name
        if column == 1:
            return None if editing else run.settings
        if editing:
            return None
        if column == 2:
            return _percent(metrics.get("val_accuracy"))
        if column in (3, 4):
            value = metrics.get("val_loss" if column == 3 else "train_loss")
            return "n/a" if value is None else f"{value:.4f}"
        if column == 5:
            return str(metrics.get("epochs_completed", ""))
        seconds = metrics.get("wall_seconds")
        return "" if seconds is None else f"{seconds:.1f} s"

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or index.column() != 0:
            return False
        return self.rename(index.row(), str(value))

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return flags | Qt.ItemFlag.ItemIsEditable if index.column() == 0 else flags

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or orientation != Qt.Orientation.Horizontal:
            return None
        return COLUMNS[section] if 0 <= section < len(COLUMNS) else None

    # ------------------------------------------------------------------ edits
    def add_run(self, run: RunRecord) -> None:
        row = len(self.runs)
        self.beginInsertRows(_ROOT, row, row)
        self.runs.append(run)
        self.endInsertRows()

    def rename(self, row: int, name: str) -> bool:
        name = name.strip()
        if not name or not 0 <= row < len(self.runs):
            return False
        self.runs[row] = replace(self.runs[row], name=name)
        self.dataChanged.emit(self.index(row, 0), self.index(row, 0))
        return True

    def delete_run(self, row: int) -> RunRecord:
        """Remove the run from the list (its folder on disk is left alone)."""
        self.beginRemoveRows(_ROOT, row, row)
        run = self.runs.pop(row)
        self.endRemoveRows()
        return run

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """A JSON side file next to the project, written atomically."""
        payload = {
            "format": FORMAT,
            "runs": [asdict(run) | {"metrics": dict(run.metrics)} for run in self.runs],
        }
        atomic_write_text(Path(path), json.dumps(payload, indent=2))

    def load(self, path: str | Path) -> None:
        """Replace the list with a saved one; an unreadable file raises ValueError saying why."""
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
            runs = [RunRecord(**entry) for entry in payload["runs"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a run list ({exc})") from None
        self.beginResetModel()
        self.runs = runs
        self.endResetModel()


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2%}"
