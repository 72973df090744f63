"""Sweeps: run planned trials in this process, one normal run folder each, with a resumable table.

A sweep folder holds `trial-001/`, `trial-002/`, ... (each what `workbench train --out` writes),
`sweep.csv` (one row per trial, rewritten atomically after each) and `sweep.json` (the plan and
each trial's state, which lets the same command continue an interrupted sweep).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from workbench.engine.atomic import atomic_write_text
from workbench.engine.control import RunControl
from workbench.engine.devices import (
    DeviceInfo,
    available_devices,
    check_precision,
    resolve_device,
)
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import dump_experiment
from workbench.engine.experiment_model import experiment_input_shape
from workbench.engine.model_builder import plan_model
from workbench.engine.reports import BaseObserver, EpochReport, FanOutObserver, TrainingObserver
from workbench.engine.run_files import write_json
from workbench.engine.sweep_plan import SweepError, SweepSpec, Trial, plan_trials
from workbench.engine.trainer import Trainer

SWEEP_FORMAT = "workbench-sweep/1"
FINISHED = ("completed", "early_stopped", "pruned", "failed")
PRUNE_STARTUP_TRIALS = 2  # the median of fewer earlier trials says too little
METRIC_COLUMNS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrialResult:
    """Where a trial stands: its status, final and best metrics, and the swept metric per epoch."""

    trial: Trial
    status: str = "pending"
    final: dict[str, float | None] = field(default_factory=dict)
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    epochs_completed: int = 0
    wall_seconds: float = 0.0
    message: str = ""
    curve: tuple[float | None, ...] = ()  # the sweep's metric after each epoch

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def state(self) -> dict[str, Any]:
        return {
            "trial": self.trial.number,
            "values": dict(self.trial.values),
            "status": self.status,
            "final": self.final,
            "best_val_loss": self.best_val_loss,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "epochs_completed": self.epochs_completed,
            "wall_seconds": self.wall_seconds,
            "message": self.message,
            "curve": list(self.curve),
        }


def result_from_state(trial: Trial, state: dict[str, Any]) -> TrialResult:
    """A trial's result as sweep.json keeps it."""
    return TrialResult(
        trial,
        status=str(state["status"]),
        final=dict(state.get("final") or {}),
        best_val_loss=state.get("best_val_loss"),
        best_val_accuracy=state.get("best_val_accuracy"),
        best_epoch=state.get("best_epoch"),
        epochs_completed=int(state.get("epochs_completed", 0)),
        wall_seconds=float(state.get("wall_seconds", 0.0)),
        message=str(state.get("message", "")),
        curve=tuple(state.get("curve") or ()),
    )


class SweepObserver(Protocol):
    """Receives a sweep's progress (a window's trial table, the CLI's lines)."""

    def on_sweep_started(self, results: list[TrialResult]) -> None: ...
    def on_trial_started(self, trial: Trial, resume_epoch: int | None) -> None: ...
    def on_trial_skipped(self, result: TrialResult) -> None: ...
    def on_trial_finished(self, result: TrialResult) -> None: ...
    def on_sweep_finished(self, results: list[TrialResult], stopped: bool) -> None: ...
    def training_observer(self, trial: Trial) -> TrainingObserver: ...


class BaseSweepObserver:
    """A sweep observer that ignores everything; subclass and override what you need."""

    def on_sweep_started(self, results: list[TrialResult]) -> None:
        pass

    def on_trial_started(self, trial: Trial, resume_epoch: int | None) -> None:
        pass

    def on_trial_skipped(self, result: TrialResult) -> None:
        pass

    def on_trial_finished(self, result: TrialResult) -> None:
        pass

    def on_sweep_finished(self, results: list[TrialResult], stopped: bool) -> None:
        pass

    def training_observer(self, trial: Trial) -> TrainingObserver:
        return BaseObserver()


class _TrialControl(RunControl):
    """A trial's own stop switch (pruning), which also obeys the sweep's (Ctrl+C, Stop, Pause)."""

    def __init__(self, sweep: RunControl) -> None:
        super().__init__()
        self.sweep = sweep
        self.pruned = False

    @property
    def stop_requested(self) -> bool:
        return super().stop_requested or self.sweep.stop_requested

    def wait_for_next_step(self) -> bool:
        return self.sweep.wait_for_next_step() and super().wait_for_next_step()

    def prune(self) -> None:
        self.pruned = True
        self.request_stop()


def metric_value(report: dict[str, Any], metric: str) -> float | None:
    value = report.get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def best_so_far(curve: tuple[float | None, ...], epoch: int, maximize: bool) -> float | None:
    """The best value of the first `epoch` epochs (None when none was reported)."""
    values = [v for v in curve[:epoch] if v is not None]
    if not values:
        return None
    return max(values) if maximize else min(values)


class MedianPruner(BaseObserver):
    """Median stopping: after each epoch, stop the trial when its best value so far is worse than
    the median of the earlier trials' best values at the same epoch (once at least
    PRUNE_STARTUP_TRIALS earlier trials got that far; never at the last epoch)."""

    def __init__(
        self, control: _TrialControl, earlier: list[TrialResult], metric: str, maximize: bool
    ) -> None:
        self.control = control
        self.earlier = [r for r in earlier if r.status != "failed" and r.curve]
        self.metric = metric
        self.maximize = maximize
        self.curve: list[float | None] = []
        self.reason = ""

    def on_epoch_end(self, report: EpochReport) -> None:
        del self.curve[report.epoch - 1 :]  # a resumed trial repeats what followed its checkpoint
        while len(self.curve) < report.epoch - 1:
            self.curve.append(None)
        self.curve.append(metric_value(report.__dict__, self.metric))
        if report.epoch >= report.epochs:
            return
        mine = best_so_far(tuple(self.curve), report.epoch, self.maximize)
        others = [best_so_far(r.curve, report.epoch, self.maximize) for r in self.earlier]
        reached = [
            v
            for r, v in zip(self.earlier, others, strict=True)
            if len(r.curve) >= report.epoch and v is not None
        ]
        if mine is None or len(reached) < PRUNE_STARTUP_TRIALS:
            return
        median = statistics.median(reached)
        if (mine < median) if self.maximize else (mine > median):
            self.reason = (
                f"pruned at epoch {report.epoch}: best {self.metric} {mine:.4g} is worse than "
                f"the median {median:.4g} of {len(reached)} earlier trials"
            )
            self.control.prune()


class SweepRunner:
    """Plans a sweep, checks every trial, then runs them one after another through the Trainer."""

    def __init__(
        self,
        spec: SweepSpec,
        out_dir: str | Path,
        observer: SweepObserver | None = None,
        control: RunControl | None = None,
        devices: list[DeviceInfo] | None = None,
    ) -> None:
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.observer: SweepObserver = observer or BaseSweepObserver()
        self.control = control or RunControl()
        self.devices = devices
        self.trials: list[Trial] = []
        self.results: list[TrialResult] = []

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Plan and check every trial and the folder; raise a WorkbenchError before any runs."""
        self.trials = plan_trials(self.spec)
        self._check_trials()
        previous = self._read_state()
        self.results = [
            result_from_state(trial, previous[trial.number])
            if trial.number in previous
            else TrialResult(trial)
            for trial in self.trials
        ]

    def _check_trials(self) -> None:
        """Model sizes, device and precision of every trial: what would fail at its start."""
        devices = self.devices if self.devices is not None else available_devices()
        shapes: dict[Any, tuple[int, ...]] = {}
        for trial in self.trials:
            experiment = trial.experiment
            where = f"trial {trial.number} ({trial.label()})"
            try:
                if experiment.data not in shapes:
                    shapes[experiment.data] = experiment_input_shape(experiment)
                shape = experiment.model.input_shape or shapes[experiment.data]
                problem = plan_model(experiment.model, shape).problem
                if problem is not None:
                    raise problem
                device = resolve_device(experiment.train.device, devices)
                check_precision(device, experiment.train.precision)
            except WorkbenchError as exc:
                raise SweepError(f"{where}: {exc}") from None

    def _state_path(self) -> Path:
        return self.out_dir / "sweep.json"

    def _plan_state(self) -> dict[str, Any]:
        return {
            "format": SWEEP_FORMAT,
            "keys": list(self.spec.keys),
            "metric": self.spec.metric,
            "prune": self.spec.prune,
            "seed": self.spec.seed,
            "random_trials": self.spec.random_trials,
            "experiment": dump_experiment(self.spec.experiment),
            "planned": [dict(trial.values) for trial in self.trials],
        }

    def _read_state(self) -> dict[int, dict[str, Any]]:
        """Trials of an earlier run of the same sweep, by number; refuse a different sweep."""
        path = self._state_path()
        if not path.is_file():
            if self.out_dir.is_dir() and any(self.out_dir.iterdir()):
                raise SweepError(
                    f"{self.out_dir}: the folder is not empty and holds no sweep.json; "
                    "give a new or empty folder to --out"
                )
            return {}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SweepError(f"{path}: cannot be read ({exc}); give another --out folder") from None
        if not isinstance(state, dict) or state.get("format") != SWEEP_FORMAT:
            raise SweepError(f"{path}: not a Torch Workbench sweep file; give another --out folder")
        planned = self._plan_state()
        for key in ("keys", "metric", "prune", "experiment", "planned"):
            if state.get(key) != json.loads(json.dumps(planned[key])):
                raise SweepError(
                    f"{self.out_dir}: holds a different sweep (its {key} differ); run the same "
                    "command to continue it, or give another --out folder"
                )
        return {int(item["trial"]): item for item in state.get("trials", [])}

    # ------------------------------------------------------------------ running

    def run(self) -> list[TrialResult]:
        """Run every unfinished trial in order; stop early when the control says so."""
        if not self.trials:
            self.prepare()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._save()
        self.observer.on_sweep_started(list(self.results))
        stopped = False
        for index, result in enumerate(self.results):
            if result.finished:
                self.observer.on_trial_skipped(result)
                continue
            if self.control.stop_requested:
                stopped = True
                break
            self.results[index] = self._run_trial(result)
            self._save()
            self.observer.on_trial_finished(self.results[index])
            if self.results[index].status == "stopped":
                stopped = True
                break
        self.observer.on_sweep_finished(list(self.results), stopped)
        return list(self.results)

    def _run_trial(self, previous: TrialResult) -> TrialResult:
        trial = previous.trial
        folder = self.out_dir / trial.name
        checkpoint = folder / "checkpoint.pt"
        resume = (
            checkpoint
            if previous.status in ("running", "stopped") and checkpoint.is_file()
            else None
        )
        control = _TrialControl(self.control)
        pruner = None
        if self.spec.prune == "median":
            pruner = MedianPruner(
                control, self.results[: trial.number - 1], self.spec.metric, self.spec.maximize
            )
            if resume is not None:
                pruner.curve = list(previous.curve)
        observers = [self.observer.training_observer(trial), *([pruner] if pruner else [])]
        trainer = Trainer(
            trial.experiment,
            observer=FanOutObserver(*observers),
            control=control,
            out_dir=folder,
            resume_from=resume,
            devices=self.devices,
        )
        trainer.run_flags = {"command": "sweep", "sweep": str(self.out_dir), "trial": trial.number}
        self._mark(previous, "running")
        started = time.perf_counter()
        message = ""
        try:
            trainer.prepare()
            self.observer.on_trial_started(trial, trainer.start_epoch if resume else None)
            summary = trainer.fit()
            status = str(summary["status"])
        except WorkbenchError as exc:
            status, message = "failed", str(exc)
        wall = previous.wall_seconds + time.perf_counter() - started
        if status == "stopped" and control.pruned:
            status, message = "pruned", pruner.reason if pruner else "pruned"
            _mark_summary(folder / "summary.json", "pruned")
        return self._result(trial, folder, trainer.history, status, wall, message)

    def _mark(self, result: TrialResult, status: str) -> None:
        self.results[result.trial.number - 1] = replace(result, status=status)
        self._save()

    def _result(
        self,
        trial: Trial,
        folder: Path,
        history: list[dict[str, Any]],
        status: str,
        wall: float,
        message: str,
    ) -> TrialResult:
        summary = _read_json(folder / "summary.json")
        curve = tuple(metric_value(row, self.spec.metric) for row in history)
        best = best_so_far(curve, len(curve), self.spec.maximize)
        val_losses = [v for v in (metric_value(r, "val_loss") for r in history) if v is not None]
        val_accuracies = [
            v for v in (metric_value(r, "val_accuracy") for r in history) if v is not None
        ]
        return TrialResult(
            trial,
            status=status,
            final={key: metric_value(summary, key) for key in METRIC_COLUMNS},
            best_val_loss=min(val_losses) if val_losses else None,
            best_val_accuracy=max(val_accuracies) if val_accuracies else None,
            best_epoch=curve.index(best) + 1 if best is not None else None,
            epochs_completed=len(history),
            wall_seconds=wall,
            message=message,
            curve=curve,
        )

    # ------------------------------------------------------------------ files

    def _save(self) -> None:
        write_json(
            self._state_path(), {**self._plan_state(), "trials": [r.state() for r in self.results]}
        )
        atomic_write_text(
            self.out_dir / "sweep.csv", sweep_csv(self.spec.keys, self.results, self.spec.metric)
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _mark_summary(path: Path, status: str) -> None:
    summary = _read_json(path)
    if summary:
        write_json(path, {**summary, "status": status})


def sweep_csv(keys: tuple[str, ...], results: list[TrialResult], metric: str) -> str:
    """The table: trial, status, swept values, final and best metrics, best epoch, wall time."""
    columns = [
        "trial",
        "status",
        *keys,
        *METRIC_COLUMNS,
        "best_val_loss",
        "best_val_accuracy",
        f"best_epoch ({metric})",
        "epochs_completed",
        "wall_seconds",
        "folder",
        "message",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for r in results:
        metrics = [r.final.get(key) for key in METRIC_COLUMNS]
        row = [
            r.trial.number,
            r.status,
            *(r.trial.values[key] for key in keys),
            *metrics,
            r.best_val_loss,
            r.best_val_accuracy,
            r.best_epoch,
            r.epochs_completed,
            round(r.wall_seconds, 3),
            r.trial.name,
            r.message,
        ]
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


def best_result(results: list[TrialResult], metric: str) -> TrialResult | None:
    """The finished trial with the best value of `metric` (over its epochs)."""
    maximize = metric.endswith("accuracy")
    scored = [
        (value, r)
        for r in results
        if r.status != "failed"
        and (value := best_so_far(r.curve, len(r.curve), maximize)) is not None
    ]
    if not scored:
        return None
    return (max if maximize else min)(scored, key=lambda item: item[0])[1]
