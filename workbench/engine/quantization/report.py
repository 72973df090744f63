"""The float-vs-quantized report card: accuracy (overall and per class), size, latency, options."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.engine.quantization.latency import MEASURED, InferenceOption, Latency
from workbench.engine.quantization.recipe import METHOD_LABELS
from workbench.engine.quantization.sequence_report import sequence_lines

PATH_LABELS = {
    "eager": "eager mode (torch.ao.quantization)",
    "torchao": "torchao quantize_",
    "pt2e": "torchao PT2E export flow",
}


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a model on the validation batches, overall and per class, and its predictions."""

    accuracy: float | None
    per_class: tuple[float | None, ...]
    predictions: torch.Tensor | None
    samples: int


def predicted_classes(output: torch.Tensor, loss: str) -> torch.Tensor | None:
    """Class predictions from a batch of outputs; None for outputs that are not classes."""
    if output.dim() == 2 and output.shape[1] > 1:
        return output.argmax(dim=1)
    if loss == "bce_with_logits":
        return (output.view(-1) > 0).long()
    return None


def evaluate(
    model: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss: str,
    num_classes: int,
) -> Evaluation:
    """Accuracy and per-class accuracy (recall) of `model` over `batches`."""
    predictions: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    with torch.inference_mode():
        for x, y in batches:
            predicted = predicted_classes(model(x), loss)
            if predicted is None:
                return Evaluation(None, (), None, sum(len(t) for t in targets) + len(y))
            predictions.append(predicted.view(-1))
            targets.append(y.view(-1).long())
    if not targets:
        return Evaluation(None, (), None, 0)
    predicted_all, target_all = torch.cat(predictions), torch.cat(targets)
    correct = predicted_all == target_all
    per_class = []
    for label in range(num_classes):
        members = target_all == label
        count = int(members.sum())
        per_class.append(float(correct[members].float().mean()) if count else None)
    return Evaluation(
        float(correct.float().mean()), tuple(per_class), predicted_all, len(target_all)
    )


@dataclass(frozen=True)
class ModelFigures:
    """One column of the card."""

    accuracy: float | None
    per_class: tuple[float | None, ...]
    size_bytes: int
    latency: Latency

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "per_class_accuracy": list(self.per_class),
            "size_bytes": self.size_bytes,
            "latency": self.latency.to_dict(),
        }


@dataclass(frozen=True)
class ReportCard:
    """Float against quantized on the experiment's validation data, plus inference options."""

    method: str
    path: str
    path_reason: str
    backend: str
    dataset: str
    val_samples: int
    class_names: tuple[str, ...]
    threads: int
    float_model: ModelFigures
    quantized: ModelFigures
    options: tuple[InferenceOption, ...] = ()
    notes: tuple[str, ...] = ()
    calibration_samples: int = 0
    qat_epochs: int = 0
    observer: str = ""
    model_file: str = ""
    reload_identical: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ derived figures
    @property
    def accuracy_change_points(self) -> float | None:
        if self.float_model.accuracy is None or self.quantized.accuracy is None:
            return None
        return 100.0 * (self.quantized.accuracy - self.float_model.accuracy)

    @property
    def per_class_change_points(self) -> tuple[float | None, ...]:
        pairs = zip(self.float_model.per_class, self.quantized.per_class, strict=False)
        return tuple(None if a is None or b is None else 100.0 * (b - a) for a, b in pairs)

    @property
    def size_ratio(self) -> float:
        """How many times smaller the quantized file is."""
        return self.float_model.size_bytes / max(self.quantized.size_bytes, 1)

    @property
    def speedup_batch1(self) -> float:
        return self.float_model.latency.batch1_ms / max(self.quantized.latency.batch1_ms, 1e-9)

    @property
    def speedup_batch64(self) -> float:
        return self.float_model.latency.batch64_ms / max(self.quantized.latency.batch64_ms, 1e-9)

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "path_reason": self.path_reason,
            "backend": self.backend,
            "observer": self.observer,
            "calibration_samples": self.calibration_samples,
            "qat_epochs": self.qat_epochs,
            "dataset": self.dataset,
            "val_samples": self.val_samples,
            "class_names": list(self.class_names),
            "threads": self.threads,
            "float": self.float_model.to_dict(),
            "quantized": self.quantized.to_dict(),
            "accuracy_change_points": self.accuracy_change_points,
            "per_class_change_points": list(self.per_class_change_points),
            "size_ratio": self.size_ratio,
            "speedup_batch1": self.speedup_batch1,
            "speedup_batch64": self.speedup_batch64,
            "inference_options": [option.to_dict() for option in self.options],
            "notes": list(self.notes),
            "model_file": self.model_file,
            "reload_identical": self.reload_identical,
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def text(self) -> str:
        return "\n".join(report_lines(self))


# --------------------------------------------------------------------------- text


def report_lines(card: ReportCard) -> list[str]:
    how = f"{PATH_LABELS.get(card.path, card.path)}, {card.backend} backend"
    lines = [
        f"Quantization report: {card.method} ({METHOD_LABELS.get(card.method, '')})",
        f"  path: {how}; {card.path_reason}" if card.path_reason else f"  path: {how}",
        f"  measured on {card.val_samples} validation samples of {card.dataset}, "
        f"CPU, {card.threads} thread{'s' * (card.threads != 1)}",
        "",
        *_main_table(card),
    ]
    sequence = sequence_lines(card.extra)
    if sequence:
        lines += ["", *sequence]
    if card.float_model.per_class:
        lines += ["", *_per_class_table(card)]
    if card.options:
        lines += ["", *_options_table(card.options)]
    if card.notes:
        lines += ["", "Notes:", *(f"  - {note}" for note in card.notes)]
    if card.model_file:
        reloaded = {True: "reloaded, same predictions", False: "reloaded, predictions DIFFER"}
        suffix = (
            f" ({reloaded[card.reload_identical]})" if card.reload_identical is not None else ""
        )
        lines += ["", f"Quantized model: {card.model_file}{suffix}"]
    return lines


def summary_rows(card: ReportCard) -> list[tuple[str, str, str, str]]:
    """(figure, float, int8, change) rows: the card's main table, for text and the window."""
    f, q = card.float_model, card.quantized
    return [
        (
            "accuracy",
            _percent(f.accuracy),
            _percent(q.accuracy),
            _points(card.accuracy_change_points),
        ),
        (
            "size on disk",
            _bytes(f.size_bytes),
            _bytes(q.size_bytes),
            _times(card.size_ratio, "smaller", "larger"),
        ),
        (
            "latency, batch 1",
            _ms(f.latency.batch1_ms),
            _ms(q.latency.batch1_ms),
            _times(card.speedup_batch1, "faster", "slower"),
        ),
        (
            "latency, batch 64",
            _ms(f.latency.batch64_ms),
            _ms(q.latency.batch64_ms),
            _times(card.speedup_batch64, "faster", "slower"),
        ),
        (
            "throughput, batch 64",
            f"{f.latency.throughput:,.0f}/s",
            f"{q.latency.throughput:,.0f}/s",
            _times(card.speedup_batch64, "higher", "lower"),
        ),
    ]


def _main_table(card: ReportCard) -> list[str]:
    rows: list[tuple[str, ...]] = [("", "float", "int8", "change"), *summary_rows(card)]
    return aligned(rows, right=(False, True, True, True))


def _per_class_table(card: ReportCard) -> list[str]:
    rows: list[tuple[str, ...]] = [("class", "float", "int8", "change")]
    names = card.class_names or tuple(str(i) for i in range(len(card.float_model.per_class)))
    changes = card.per_class_change_points
    for index, name in enumerate(names):
        before = (
            card.float_model.per_class[index] if index < len(card.float_model.per_class) else None
        )
        after = card.quantized.per_class[index] if index < len(card.quantized.per_class) else None
        change = changes[index] if index < len(changes) else None
        rows.append((name, _percent(before), _percent(after), _points(change)))
    return aligned(rows, right=(False, True, True, True))


def _options_table(options: Sequence[InferenceOption]) -> list[str]:
    baseline = next((o.latency for o in options if o.latency is not None), None)
    rows: list[tuple[str, ...]] = [
        ("float model, inference option", "batch 1", "batch 64", "b64 vs baseline", "how")
    ]
    for option in options:
        if option.status == MEASURED and option.latency is not None:
            ratio = (
                f"{baseline.batch64_ms / max(option.latency.batch64_ms, 1e-9):.2f}x"
                if baseline is not None
                else ""
            )
            rows.append(
                (
                    option.name,
                    _ms(option.latency.batch1_ms),
                    _ms(option.latency.batch64_ms),
                    ratio,
                    option.detail,
                )
            )
        else:
            detail = (
                option.detail
                if option.detail.startswith(option.status)
                else f"{option.status}: {option.detail}"
            )
            rows.append((option.name, "-", "-", "-", detail))
    return aligned(rows, right=(False, True, True, True, False))


def aligned(rows: Sequence[tuple[str, ...]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]

    def render(row: tuple[str, ...]) -> str:
        cells = (
            cell.rjust(width) if is_right else cell.ljust(width)
            for cell, width, is_right in zip(row, widths, right, strict=True)
        )
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [render(rows[0]), rule, *(render(row) for row in rows[1:])]


def _times(ratio: float, better: str, worse: str) -> str:
    """2.00x faster, or 2.00x slower for a ratio of 0.5: never "0.50x faster"."""
    if ratio >= 1.0 or ratio <= 0.0:
        return f"{ratio:.2f}x {better}"
    return f"{1.0 / ratio:.2f}x {worse}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}%"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} pts"


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _bytes(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.2f} MB"
    return f"{size / 1000:.1f} kB"
