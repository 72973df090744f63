"""What a run reports: plain dataclasses of Python scalars and the observer protocol that gets them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RunStarted:
    epochs: int
    batches_per_epoch: int
    train_size: int
    val_size: int
    parameters: int
    device: str
    precision: str
    world_size: int
    effective_batch_size: int
    start_epoch: int = 1


@dataclass(frozen=True)
class BatchReport:
    epoch: int
    batch: int  # 0-based index within the epoch
    batches: int
    loss: float
    step: int  # optimizer steps taken so far
    samples_per_second: float


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    samples_per_second: float
    elapsed_seconds: float
    skipped_steps: int = 0
    # Next-token (text) runs only: e^loss, the loss in bits per character, and tokens per second.
    train_perplexity: float | None = None
    val_perplexity: float | None = None
    val_bits_per_char: float | None = None
    tokens_per_second: float | None = None


def as_event(name: str, report: Any) -> dict[str, Any]:
    """The JSON-lines event for a report (DESIGN.md 3.3)."""
    return {"event": name, **dataclasses.asdict(report)}


class TrainingObserver(Protocol):
    """Receives a run's progress. Every number is a Python float or int, never a tensor.

    An observer may also define `on_after_backward(model)`: the Trainer calls it, when present,
    once per optimizer step, after the backward pass(es) and before the step, on the training
    thread (the only moment the step's `.grad` fields can be read). And `on_epoch_model(model,
    report)`: called after each `on_epoch_end` with the model, on the training thread, between
    epochs (where a sample of generated text can be drawn from it).
    """

    def on_started(self, report: RunStarted) -> None: ...
    def on_batch_end(self, report: BatchReport) -> None: ...
    def on_epoch_end(self, report: EpochReport) -> None: ...
    def on_log(self, text: str) -> None: ...
    def on_finished(self, summary: dict[str, Any]) -> None: ...
    def on_failed(self, message: str) -> None: ...


class BaseObserver:
    """An observer that ignores everything; subclass and override what you need."""

    def on_started(self, report: RunStarted) -> None:
        pass

    def on_batch_end(self, report: BatchReport) -> None:
        pass

    def on_epoch_end(self, report: EpochReport) -> None:
        pass

    def on_log(self, text: str) -> None:
        pass

    def on_finished(self, summary: dict[str, Any]) -> None:
        pass

    def on_failed(self, message: str) -> None:
        pass


class FanOutObserver(BaseObserver):
    """Forwards every report to several observers, in order."""

    def __init__(self, *observers: TrainingObserver) -> None:
        self.observers = list(observers)

    def on_started(self, report: RunStarted) -> None:
        for observer in self.observers:
            observer.on_started(report)

    def on_batch_end(self, report: BatchReport) -> None:
        for observer in self.observers:
            observer.on_batch_end(report)

    def on_epoch_end(self, report: EpochReport) -> None:
        for observer in self.observers:
            observer.on_epoch_end(report)

    def on_log(self, text: str) -> None:
        for observer in self.observers:
            observer.on_log(text)

    def on_finished(self, summary: dict[str, Any]) -> None:
        for observer in self.observers:
            observer.on_finished(summary)

    def on_failed(self, message: str) -> None:
        for observer in self.observers:
            observer.on_failed(message)

    def on_after_backward(self, model: Any) -> None:
        """Forwarded only to the observers that define the optional hook."""
        for observer in self.observers:
            hook = getattr(observer, "on_after_backward", None)
            if hook is not None:
                hook(model)

    def on_epoch_model(self, model: Any, report: EpochReport) -> None:
        """Forwarded only to the observers that define the optional hook."""
        for observer in self.observers:
            hook = getattr(observer, "on_epoch_model", None)
            if hook is not None:
                hook(model, report)


class RecordingObserver(BaseObserver):
    """Keeps every report; handy in tests and for the GUI's run history."""

    def __init__(self) -> None:
        self.started: list[RunStarted] = []
        self.batches: list[BatchReport] = []
        self.epochs: list[EpochReport] = []
        self.logs: list[str] = []
        self.summary: dict[str, Any] | None = None
        self.failure: str | None = None

    def on_started(self, report: RunStarted) -> None:
        self.started.append(report)

    def on_batch_end(self, report: BatchReport) -> None:
        self.batches.append(report)

    def on_epoch_end(self, report: EpochReport) -> None:
        self.epochs.append(report)

    def on_log(self, text: str) -> None:
        self.logs.append(text)

    def on_finished(self, summary: dict[str, Any]) -> None:
        self.summary = summary

    def on_failed(self, message: str) -> None:
        self.failure = message
