"""The JSON-lines event stream (DESIGN.md 3.3): written by `--events`, read back by the window."""

from __future__ import annotations

import json
import math
from typing import IO, Any

from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted, as_event


def _clean(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null so every reader can parse the line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def encode_event(event: dict[str, Any]) -> str:
    return json.dumps(_clean(event), separators=(",", ":"))


class EventWriter(BaseObserver):
    """Writes one JSON object per line and flushes it, so a reader sees events as they happen."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def emit(self, event: dict[str, Any]) -> None:
        self.stream.write(encode_event(event) + "\n")
        self.stream.flush()

    def on_started(self, report: RunStarted) -> None:
        self.emit(as_event("started", report))

    def on_batch_end(self, report: BatchReport) -> None:
        self.emit(as_event("batch_end", report))

    def on_epoch_end(self, report: EpochReport) -> None:
        self.emit(as_event("epoch_end", report))

    def on_log(self, text: str) -> None:
        self.emit({"event": "log", "text": text})

    def on_finished(self, summary: dict[str, Any]) -> None:
        self.emit({"event": "finished", "summary": summary})

    def on_failed(self, message: str) -> None:
        self.emit({"event": "failed", "message": message})


def dispatch_event(event: dict[str, Any], observer: BaseObserver) -> None:
    """Replay one decoded event onto an observer (how the window draws a torchrun child's run)."""
    fields = {key: value for key, value in event.items() if key != "event"}
    kind = event.get("event")
    if kind == "started":
        observer.on_started(RunStarted(**fields))
    elif kind == "batch_end":
        observer.on_batch_end(BatchReport(**fields))
    elif kind == "epoch_end":
        observer.on_epoch_end(EpochReport(**fields))
    elif kind == "log":
        observer.on_log(str(event.get("text", "")))
    elif kind == "finished":
        observer.on_finished(dict(event.get("summary", {})))
    elif kind == "failed":
        observer.on_failed(str(event.get("message", "")))
