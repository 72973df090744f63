"""Report builders for tests: a run's start, batches, epochs, summary and result, with defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from workbench.engine.experiment import Experiment
from workbench.engine.reports import BatchReport, EpochReport, RunStarted
from workbench.engine.run_history import RunResult, frozen_summary

STARTED_FIELDS: dict[str, Any] = {
    "epochs": 3,
    "batches_per_epoch": 2,
    "train_size": 100,
    "val_size": 20,
    "parameters": 1234,
    "device": "cpu",
    "precision": "32-true",
    "world_size": 1,
    "effective_batch_size": 50,
}


def started(**changes: Any) -> RunStarted:
    """A RunStarted: 3 epochs of 2 batches, 1,234 parameters on the CPU, unless changed."""
    return RunStarted(**(STARTED_FIELDS | changes))


def batch(
    epoch: int = 1,
    index: int = 0,
    batches: int = 2,
    loss: float = 0.75,
    step: int = 1,
    samples_per_second: float = 10.0,
) -> BatchReport:
    return BatchReport(epoch, index, batches, loss, step, samples_per_second)


def epoch_report(epoch: int = 1, **changes: Any) -> EpochReport:
    """An EpochReport of epoch 1 of 3 (loss 0.5/0.6, accuracy 90 %/85 %) unless changed."""
    values: dict[str, Any] = {
        "epoch": epoch,
        "epochs": 3,
        "train_loss": 0.5,
        "train_accuracy": 0.9,
        "val_loss": 0.6,
        "val_accuracy": 0.85,
        "lr": 0.01,
        "samples_per_second": 1500.0,
        "elapsed_seconds": 1.0,
    }
    return EpochReport(**(values | changes))


def history(epochs: int = 2) -> list[EpochReport]:
    """Epochs whose losses fall and accuracies rise, as a real run's would."""
    return [
        epoch_report(e, epochs=epochs, train_loss=1.0 / e, train_accuracy=0.5 + e / 10,
                     val_loss=1.2 / e, val_accuracy=0.4 + e / 10, samples_per_second=1000.0,
                     elapsed_seconds=0.1)
        for e in range(1, epochs + 1)
    ]  # fmt: skip


def summary(**changes: Any) -> dict[str, Any]:
    """A finished run's summary.json (the fields the window shows)."""
    values: dict[str, Any] = {
        "status": "completed",
        "epochs_completed": 2,
        "train_loss": 0.5,
        "train_accuracy": 0.9,
        "val_loss": 0.6,
        "val_accuracy": 0.85,
        "wall_seconds": 3.0,
        "parameters": 1234,
        "world_size": 1,
    }
    return values | changes


def run_result(
    experiment: Experiment,
    epochs: int = 2,
    folder: Path | None = None,
    state_dict: dict[str, Any] | None = None,
    **summary_changes: Any,
) -> RunResult:
    """A RunResult as the session would end a run with (no files, unless `folder`)."""
    values = summary(epochs_completed=epochs, **summary_changes)
    return RunResult(
        experiment=experiment,
        summary=frozen_summary(values),
        history=tuple(history(epochs)),
        state_dict=state_dict,
        folder=folder,
        ended=str(values["status"]),
    )


def as_rows(reports: list[EpochReport]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(report) for report in reports]
