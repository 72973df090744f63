"""Every run as one immutable RunResult: made when a run ends, or read back from its folder."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from workbench.engine.atomic import atomic_write_text
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment, dump_experiment, parse_experiment
from workbench.engine.reports import EpochReport
from workbench.engine.run_files import METRIC_COLUMNS

RUN_LABEL = "label.json"  # written by the window when a run starts: project, name, experiment
LABEL_FORMAT = "workbench-run/1"
ENDINGS = ("completed", "early_stopped", "stopped", "failed", "interrupted")
# A run folder the window made, and files the trainer writes in one.
RUN_FILES = (RUN_LABEL, "summary.json", "checkpoint.pt", "model.pth", "metrics.csv")


class RunHistoryError(WorkbenchError):
    """A folder that is not a readable run folder."""


@dataclass(frozen=True, eq=False)
class RunResult:
    """How a run ended, with everything the window shows of it afterwards.

    `ended` is the summary's status (completed, early_stopped, stopped, failed) or `interrupted`
    for a folder whose run never wrote its summary (a crash, a kill). `state_dict` holds the
    final weights on the CPU (None when the run left none, or when read without them).
    """

    experiment: Experiment
    summary: Mapping[str, Any]
    history: tuple[EpochReport, ...]
    state_dict: Mapping[str, torch.Tensor] | None
    folder: Path | None
    ended: str
    message: str = ""
    name: str = ""  # the name the user gave it ("" until named)
    project: str = ""  # the project key it was started from
    started_at: float = field(default_factory=time.time)

    @property
    def resumable(self) -> bool:
        return self.ended == "interrupted" and self.checkpoint is not None

    @property
    def checkpoint(self) -> Path | None:
        if self.folder is None:
            return None
        path = self.folder / "checkpoint.pt"
        return path if path.is_file() else None

    @property
    def succeeded(self) -> bool:
        """It ended on its own terms (completed, early stop or a Stop), weights and all."""
        return self.ended in ("completed", "early_stopped", "stopped")


def frozen_summary(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(summary))


def cpu_copy(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state_dict detached from the model and its device, safe to hand to another thread."""
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


def epoch_reports(rows: Sequence[Mapping[str, Any]], epochs: int) -> tuple[EpochReport, ...]:
    """EpochReports from metrics rows or a trainer's history (rows missing a field are skipped)."""
    names = {f.name for f in dataclasses.fields(EpochReport)}
    reports = []
    for row in rows:
        values = {key: row[key] for key in names if key in row}
        values.setdefault("epochs", epochs)
        try:
            reports.append(EpochReport(**values))
        except TypeError:
            continue
    return tuple(reports)


# --------------------------------------------------------------------------- the label


def write_run_label(folder: Path, project: str, experiment: Experiment) -> None:
    """Mark `folder` as a run of `project` before it starts (so a crash still leaves a record)."""
    label = {
        "format": LABEL_FORMAT,
        "project": project,
        "name": "",
        "hidden": False,
        "started_at": time.time(),
        "experiment": dump_experiment(experiment),
    }
    atomic_write_text(folder / RUN_LABEL, json.dumps(label, indent=2) + "\n")


def read_run_label(folder: Path) -> dict[str, Any]:
    """The folder's label.json, or {} when it has none (a run made outside the window)."""
    path = folder / RUN_LABEL
    if not path.is_file():
        return {}
    try:
        label = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunHistoryError(f"{path}: unreadable run label ({exc})") from None
    if not isinstance(label, dict) or label.get("format") != LABEL_FORMAT:
        raise RunHistoryError(f"{path}: not a Torch Workbench run label")
    return label


def update_run_label(folder: Path, **changes: Any) -> None:
    """Rename a run (`name=`) or take it off the list (`hidden=True`); its files stay."""
    label = read_run_label(folder)
    if label:
        atomic_write_text(folder / RUN_LABEL, json.dumps({**label, **changes}, indent=2) + "\n")


# --------------------------------------------------------------------------- reading back


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunHistoryError(f"{path}: unreadable ({exc})") from None
    return value if isinstance(value, dict) else None


def read_metrics(path: Path, epochs: int) -> tuple[EpochReport, ...]:
    """The per-epoch rows of a metrics.csv (empty cells are None)."""
    if not path.is_file():
        return ()
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise RunHistoryError(f"{path}: unreadable ({exc})") from None
    try:
        parsed = [_metrics_row(row) for row in rows]
    except ValueError as exc:
        raise RunHistoryError(f"{path}: not a metrics table ({exc})") from None
    return epoch_reports(parsed, epochs)


def _metrics_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in METRIC_COLUMNS:
        text = (row.get(key) or "").strip()
        number: Any = None if not text else float(text)
        values[key] = int(number) if key in ("epoch", "skipped_steps") and text else number
    return values


def _experiment(folder: Path, label: Mapping[str, Any]) -> Experiment:
    text = label.get("experiment")
    source = str(folder / RUN_LABEL)
    if not isinstance(text, str):
        path = folder / "experiment.toml"
        if not path.is_file():
            raise RunHistoryError(f"{folder}: no experiment.toml or run label; not a run folder")
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise RunHistoryError(f"{path}: unreadable ({exc})") from None
    return parse_experiment(text, source)


def load_run_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The run's model.pth, loaded safely (weights_only)."""
    path = folder / "model.pth"
    if not path.is_file():
        raise RunHistoryError(f"{path}: the run left no model.pth")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise RunHistoryError(f"{path}: cannot be read safely ({exc})") from None
    if not isinstance(state, dict):
        raise RunHistoryError(f"{path}: not a state_dict")
    return state


def read_run(folder: Path, weights: bool = False) -> RunResult:
    """A run folder as a RunResult; `weights` also loads model.pth (a file read: not on a GUI
    thread). Raises RunHistoryError when the folder is not a readable run."""
    folder = Path(folder)
    label = read_run_label(folder)
    experiment = _experiment(folder, label)
    summary = _read_json(folder / "summary.json")
    history = read_metrics(folder / "metrics.csv", experiment.train.epochs)
    if summary is None:
        if not (folder / "checkpoint.pt").is_file() and not label:
            raise RunHistoryError(f"{folder}: no summary.json or checkpoint.pt; not a run folder")
        ended = "interrupted"
        summary = {"status": ended, "epochs_completed": len(history)}
    else:
        ended = str(summary.get("status") or "completed")
    state = load_run_weights(folder) if weights and (folder / "model.pth").is_file() else None
    started = label.get("started_at")
    return RunResult(
        experiment=experiment,
        summary=frozen_summary(summary),
        history=history,
        state_dict=state,
        folder=folder,
        ended=ended if ended in ENDINGS else "completed",
        name=str(label.get("name") or ""),
        project=str(label.get("project") or ""),
        started_at=float(started) if isinstance(started, int | float) else _mtime(folder),
    )


def _mtime(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


def list_runs(runs_dir: Path, project: str | None = None) -> list[RunResult]:
    """The runs kept under `runs_dir` (oldest first), without their weights; hidden ones and
    folders that are not runs are left out. `project` keeps only that project's runs."""
    if not runs_dir.is_dir():
        return []
    found = []
    for folder in sorted(runs_dir.iterdir()):
        if not folder.is_dir() or not any((folder / name).is_file() for name in RUN_FILES):
            continue
        try:
            label = read_run_label(folder)
            if label.get("hidden") or (project is not None and label.get("project") != project):
                continue
            found.append(read_run(folder))
        except WorkbenchError:
            continue  # a damaged folder is not a run to list
    return sorted(found, key=lambda run: run.started_at)


def project_key(path: Path | None, preset: str | None = None) -> str:
    """What ties a run to its project: the project file, else the preset it came from, else
    `untitled` (an unsaved project's runs are listed with every other unsaved one)."""
    if path is not None:
        return f"file:{Path(path).resolve()}"
    if preset:
        return f"preset:{preset}"
    return "untitled"
