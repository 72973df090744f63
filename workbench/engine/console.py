"""Text reports of a run: the seed-style lines the CLI prints and the window's log shows."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted


def batch_line(report: BatchReport, epochs: int) -> str:
    return (
        f"Epoch: {report.epoch:03d}/{epochs:03d} | Batch {report.batch:03d}/{report.batches:03d}"
        f" | Train/Val Loss: {report.loss:.2f}"
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def epoch_line(report: EpochReport) -> str:
    if report.train_perplexity is not None or report.val_perplexity is not None:
        return next_token_epoch_line(report)
    return (
        f"Epoch: {report.epoch:03d}/{report.epochs:03d} | Train Acc: {_percent(report.train_accuracy)}"
        f" | Val Acc: {_percent(report.val_accuracy)} | Train Loss: {_loss(report.train_loss)}"
        f" | Val Loss: {_loss(report.val_loss)} | LR: {report.lr:.3g}"
        f" | {report.samples_per_second:,.0f} samples/s"
    )


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def next_token_epoch_line(report: EpochReport) -> str:
    """A text run's epoch: perplexity and bits per character instead of accuracy."""
    speed = report.tokens_per_second or 0.0
    return (
        f"Epoch: {report.epoch:03d}/{report.epochs:03d} | Train Loss: {_loss(report.train_loss)}"
        f" | Val Loss: {_loss(report.val_loss)} | Val PPL: {_number(report.val_perplexity, 2)}"
        f" | Val BPC: {_number(report.val_bits_per_char, 3)} | LR: {report.lr:.3g}"
        f" | {speed:,.0f} tokens/s"
    )


def started_line(report: RunStarted) -> str:
    return (
        f"Training {report.parameters:,} parameters on {report.device} ({report.precision}, "
        f"world size {report.world_size}, effective batch {report.effective_batch_size}); "
        f"{report.train_size:,} training and {report.val_size:,} validation samples"
    )


def finished_lines(summary: dict[str, Any]) -> list[str]:
    first = (
        f"Run {summary['status']} after {summary['epochs_completed']} epoch(s) in "
        f"{summary['wall_seconds']:.1f} s"
    )
    if summary.get("task") == "next_token":
        return [
            first,
            f"Train Loss: {_loss(summary['train_loss'])} | Val Loss: {_loss(summary['val_loss'])}"
            f" | Val PPL: {_number(summary.get('val_perplexity'), 2)} | Val BPC: "
            f"{_number(summary.get('val_bits_per_char'), 3)} | unigram baseline Val Loss: "
            f"{_loss(summary.get('unigram_val_loss'))}",
        ]
    return [
        first,
        f"Train Acc: {_percent(summary['train_accuracy'])} | Val Acc: "
        f"{_percent(summary['val_accuracy'])} | Train Loss: {_loss(summary['train_loss'])}"
        f" | Val Loss: {_loss(summary['val_loss'])}",
    ]


class ConsoleObserver(BaseObserver):
    """Prints the seed-style lines; draws a progress bar with ETA when stderr is a terminal."""

    def __init__(self, out: IO[str] | None = None, progress: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.progress = (
            progress if progress is not None else (sys.stderr if sys.stderr.isatty() else None)
        )
        self.epochs = 0
        self._started = time.perf_counter()
        self._total_batches = 0
        self._done_batches = 0

    def _print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.write("\r\033[K")
        print(text, file=self.out, flush=True)

    def on_started(self, report: RunStarted) -> None:
        self.epochs = report.epochs
        self._total_batches = report.batches_per_epoch * (report.epochs - report.start_epoch + 1)
        self._started = time.perf_counter()
        self._print(started_line(report))

    def on_batch_end(self, report: BatchReport) -> None:
        self._print(batch_line(report, self.epochs))
        self._done_batches += 1
        if self.progress is not None and self._total_batches:
            self._draw_progress(report)

    def _draw_progress(self, report: BatchReport) -> None:
        fraction = self._done_batches / self._total_batches
        elapsed = time.perf_counter() - self._started
        eta = elapsed / fraction - elapsed if fraction else 0.0
        filled = int(fraction * 30)
        assert self.progress is not None
        self.progress.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:5.1%} epoch {report.epoch}"
            f" | {report.samples_per_second:,.0f} samples/s | ETA {eta:,.0f} s"
        )
        self.progress.flush()

    def on_epoch_end(self, report: EpochReport) -> None:
        self._print(epoch_line(report))

    def on_log(self, text: str) -> None:
        self._print(text)

    def on_finished(self, summary: dict[str, Any]) -> None:
        for line in finished_lines(summary):
            self._print(line)

    def on_failed(self, message: str) -> None:
        self._print(f"Training failed: {message}")
