"""Text reports of a sweep: the lines `workbench sweep` prints for each trial and at the end."""

from __future__ import annotations

import sys
from typing import IO

from workbench.engine.console import epoch_line
from workbench.engine.reports import BaseObserver, EpochReport, TrainingObserver
from workbench.engine.sweep import BaseSweepObserver, TrialResult, best_result, best_so_far
from workbench.engine.sweep_plan import Trial


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}%" if metric.endswith("accuracy") else f"{value:.4f}"


def result_line(result: TrialResult, total: int, metric: str) -> str:
    maximize = metric.endswith("accuracy")
    best = best_so_far(result.curve, len(result.curve), maximize)
    final = result.curve[-1] if result.curve else None
    text = (
        f"Trial {result.trial.number}/{total} {result.status} in {result.wall_seconds:.1f} s: "
        f"{metric} {_value(metric, final)}"
    )
    if result.best_epoch is not None:
        text += f" (best {_value(metric, best)} at epoch {result.best_epoch})"
    return text + (f"; {result.message}" if result.message else "")


class _EpochLines(BaseObserver):
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def on_epoch_end(self, report: EpochReport) -> None:
        print(f"  {epoch_line(report)}", file=self.out, flush=True)

    def on_log(self, text: str) -> None:
        print(f"  {text}", file=self.out, flush=True)


class SweepConsole(BaseSweepObserver):
    """Prints a line per trial, each epoch's line indented, and the best trial at the end."""

    def __init__(self, keys: tuple[str, ...], metric: str, out: IO[str] | None = None) -> None:
        self.keys = keys
        self.metric = metric
        self.out = out or sys.stdout
        self.total = 0

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def on_sweep_started(self, results: list[TrialResult]) -> None:
        self.total = len(results)
        done = sum(r.finished for r in results)
        earlier = f"; {done} finished earlier" if done else ""
        self._print(
            f"Sweep of {self.total} trials over {', '.join(self.keys)} "
            f"(metric {self.metric}){earlier}"
        )

    def on_trial_started(self, trial: Trial, resume_epoch: int | None) -> None:
        resuming = f" (resuming at epoch {resume_epoch})" if resume_epoch else ""
        self._print(f"Trial {trial.number}/{self.total}: {trial.label()}{resuming}")

    def on_trial_skipped(self, result: TrialResult) -> None:
        self._print(
            f"Trial {result.trial.number}/{self.total}: {result.trial.label()} "
            f"finished earlier ({result.status}), skipped"
        )

    def on_trial_finished(self, result: TrialResult) -> None:
        self._print(result_line(result, self.total, self.metric))

    def on_sweep_finished(self, results: list[TrialResult], stopped: bool) -> None:
        done = sum(r.finished for r in results)
        if stopped:
            self._print(
                f"Sweep stopped: {done} of {self.total} trials finished; run the same command "
                "again to continue"
            )
        else:
            self._print(f"Sweep finished: {done} of {self.total} trials")
        best = best_result(results, self.metric)
        if best is not None:
            value = best_so_far(best.curve, len(best.curve), self.metric.endswith("accuracy"))
            self._print(
                f"Best: trial {best.trial.number} ({best.trial.label()}): "
                f"{self.metric} {_value(self.metric, value)} at epoch {best.best_epoch}"
            )

    def training_observer(self, trial: Trial) -> TrainingObserver:
        return _EpochLines(self.out)
