"""The training doctor: spots common training troubles and says, in plain words, what to change.

It reads the epoch history (losses, accuracies, learning rate) and, when there is one, the
latest ModelProbe snapshot (gradient norms, dead ReLUs, saturated Tanh/Sigmoid units).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.engine.insight.model_probe import ProbeSnapshot, parameters_of
from workbench.engine.reports import BaseObserver, EpochReport

WARNING, PROBLEM = "warning", "problem"

DEAD_RELU_FRACTION = 0.5  # this share of a layer's units silent on a whole batch
SATURATED_FRACTION = 0.5
EXPLODING_NORM = 1e3  # total gradient norm
VANISHING_RATIO = 1e-3  # first weight's gradient norm / last weight's
VANISHING_NORM = 1e-7
OVERFIT_EPOCHS = 3  # epochs since the best validation loss
OVERFIT_RISE = 0.10  # validation loss this much above its best
DIVERGING_RISE = 1.5  # training loss this many times its best
# A classification loss (cross-entropy, or mse/bce on class targets) starts near ln(classes):
# one past a million means the outputs have blown up, whatever the loss did before.
EXPLODED_LOSS = 1e6
LOSS_FAILURE = "the loss became"  # how the trainer's loss guard words a failed run
_GUARD_WORDS = re.compile(r"the (?:validation )?loss became")
_GUARD_LR = re.compile(r"\(now ([^)]+)\)")


@dataclass(frozen=True)
class Diagnosis:
    """One finding: a short title, what was seen (with the numbers) and what to change."""

    code: str  # divergence | overfitting | not_learning | dead_relu | exploding_gradients |
    # vanishing_gradients | saturation
    severity: str  # WARNING or PROBLEM
    title: str
    message: str
    suggestion: str

    @property
    def text(self) -> str:
        return f"{self.title}: {self.message} {self.suggestion}"


Epoch = EpochReport | Mapping[str, Any]


def _rows(history: Sequence[Epoch]) -> list[dict[str, Any]]:
    return [
        dataclasses.asdict(row) if isinstance(row, EpochReport) else dict(row) for row in history
    ]


def diagnose(
    history: Sequence[Epoch],
    snapshot: ProbeSnapshot | None = None,
    num_classes: int | None = None,
    failure: str | None = None,
) -> list[Diagnosis]:
    """Every finding for this run so far, the most serious first.

    `failure` is the message a failed run ended with: the loss guard's counts as divergence.
    """
    rows = _rows(history)
    diverging = _divergence(rows) or _guard_stopped(failure, rows)
    found = [diverging, None if diverging else _not_learning(rows, num_classes), _overfitting(rows)]
    if snapshot is not None:
        found += [
            _exploding(snapshot),
            _vanishing(snapshot, rows),
            *_dead_relus(snapshot),
            *_saturation(snapshot),
        ]
    findings = [item for item in found if item is not None]
    return sorted(findings, key=lambda item: item.severity != PROBLEM)


def _lr_text(rows: list[dict[str, Any]]) -> str:
    return f"{rows[-1]['lr']:g}" if rows and rows[-1].get("lr") is not None else "?"


def _divergence(rows: list[dict[str, Any]]) -> Diagnosis | None:
    if not rows:
        return None
    losses = [row["train_loss"] for row in rows]
    lr = _lr_text(rows)
    suggestion = (
        f"Lower the learning rate (now {lr}) about tenfold, or set gradient_clip_val = 1.0."
    )
    if not all(math.isfinite(loss) for loss in losses):
        return Diagnosis(
            "divergence",
            PROBLEM,
            "Training diverged",
            "the loss became infinite or NaN: the weights grew until the numbers overflowed.",
            suggestion,
        )
    peak = max(losses)
    if peak > EXPLODED_LOSS:
        return Diagnosis(
            "divergence",
            PROBLEM,
            "Training exploded",
            f"the training loss reached {peak:.3g} at epoch {rows[losses.index(peak)]['epoch']} "
            "(a healthy classification loss stays below about 10): the weights grew until the "
            "outputs were meaningless.",
            suggestion,
        )
    if len(losses) < 3:
        return None
    best = min(losses)
    rising = losses[-1] > losses[-2] > losses[-3]
    if rising and losses[-1] > DIVERGING_RISE * best:
        return Diagnosis(
            "divergence",
            PROBLEM,
            "Training is diverging",
            f"the training loss rose two epochs in a row, to {losses[-1]:.3g} from a best of "
            f"{best:.3g}: the steps are overshooting the minimum.",
            suggestion,
        )
    return None


def stopped_by_loss_guard(failure: str | None) -> bool:
    """Whether a run's failure message is the trainer's loss guard (NaN, inf, or an explosion,
    in training or validation)."""
    return failure is not None and _GUARD_WORDS.search(failure) is not None


def _guard_stopped(failure: str | None, rows: list[dict[str, Any]]) -> Diagnosis | None:
    found = _GUARD_WORDS.search(failure) if failure is not None else None
    if failure is None or found is None:
        return None
    seen = failure[found.start() :].split(";")[0]
    lr = _GUARD_LR.search(failure)
    now = f" (now {_lr_text(rows)})" if rows else f" (now {lr.group(1)})" if lr else ""
    return Diagnosis(
        "divergence",
        PROBLEM,
        "Training diverged",
        f"{seen}: the steps threw the weights far past the minimum, and the run was stopped.",
        f"Lower the learning rate{now} about tenfold, or set gradient_clip_val = 1.0.",
    )


def _not_learning(rows: list[dict[str, Any]], num_classes: int | None) -> Diagnosis | None:
    if len(rows) < 3:
        return None
    first, last = rows[0]["train_loss"], rows[-1]["train_loss"]
    if not (math.isfinite(first) and math.isfinite(last)) or last < 0.99 * first:
        return None
    accuracy = rows[-1].get("train_accuracy")
    chance = f" (chance is {1 / num_classes:.0%})" if num_classes else ""
    seen = f"; training accuracy is {accuracy:.0%}{chance}" if accuracy is not None else ""
    return Diagnosis(
        "not_learning",
        WARNING,
        "The model is not learning",
        f"the training loss is flat after {len(rows)} epochs ({first:.3g} -> {last:.3g}){seen}.",
        f"Try a larger learning rate (now {_lr_text(rows)}) or the adam optimizer, check that "
        "the loss fits the last layer (nll after LogSoftmax, cross_entropy after a Linear), "
        "and look for dead ReLUs below.",
    )


def _overfitting(rows: list[dict[str, Any]]) -> Diagnosis | None:
    found = [row.get("val_loss") for row in rows]
    if len(rows) < OVERFIT_EPOCHS + 1 or any(v is None or not math.isfinite(v) for v in found):
        return None
    val = [float(v) for v in found if v is not None]
    best_index = min(range(len(val)), key=lambda i: val[i])
    since = len(val) - 1 - best_index
    train_now, train_then = rows[-1]["train_loss"], rows[best_index]["train_loss"]
    if since < OVERFIT_EPOCHS or val[-1] <= (1 + OVERFIT_RISE) * val[best_index]:
        return None
    if train_now >= train_then:
        return None
    gap = ""
    train_acc, val_acc = rows[-1].get("train_accuracy"), rows[-1].get("val_accuracy")
    if train_acc is not None and val_acc is not None:
        gap = f" Training accuracy is {train_acc:.0%}, validation {val_acc:.0%}."
    return Diagnosis(
        "overfitting",
        WARNING,
        "The model is overfitting",
        f"the validation loss was best at epoch {rows[best_index]['epoch']} ({val[best_index]:.3g})"
        f" and has risen since (now {val[-1]:.3g}) while the training loss keeps falling: the "
        f"model is memorising the training samples.{gap}",
        "Add Dropout (p = 0.2 to 0.5) after hidden layers, set weight_decay (e.g. 1e-4), turn on "
        "early_stopping, use a smaller model, or train on more data.",
    )


def _exploding(snapshot: ProbeSnapshot) -> Diagnosis | None:
    total = snapshot.total_grad_norm
    if total is None or (math.isfinite(total) and total < EXPLODING_NORM):
        return None
    shown = "infinite or NaN" if not math.isfinite(total) else f"{total:.3g}"
    return Diagnosis(
        "exploding_gradients",
        PROBLEM,
        "Exploding gradients",
        f"the gradient norm is {shown} (healthy is around 0.01 to 10): one step can throw the "
        "weights far off.",
        "Set gradient_clip_val = 1.0, lower the learning rate, or add BatchNorm/LayerNorm "
        "between layers.",
    )


def _vanishing(snapshot: ProbeSnapshot, rows: list[dict[str, Any]]) -> Diagnosis | None:
    weights = [s for s in parameters_of(snapshot, "weight") if s.grad_norm is not None]
    if len(weights) < 2 or (rows and rows[-1]["train_loss"] < 1e-3):
        return None
    first, last = weights[0], weights[-1]
    assert first.grad_norm is not None and last.grad_norm is not None
    tiny = max(s.grad_norm or 0.0 for s in weights) < VANISHING_NORM
    ratio = first.grad_norm / last.grad_norm if last.grad_norm > 0 else 1.0
    if not tiny and ratio >= VANISHING_RATIO:
        return None
    return Diagnosis(
        "vanishing_gradients",
        WARNING,
        "Vanishing gradients",
        f"the first layer ({first.layer}) gets a gradient of {first.grad_norm:.2g}, the last "
        f"({last.layer}) {last.grad_norm:.2g}: the early layers barely learn.",
        "Use ReLU or GELU instead of Sigmoid/Tanh, add BatchNorm, use fewer layers, or raise "
        "the learning rate.",
    )


def _dead_relus(snapshot: ProbeSnapshot) -> list[Diagnosis]:
    found = []
    for stats in snapshot.activations:
        if stats.type == "ReLU" and stats.dead_fraction >= DEAD_RELU_FRACTION:
            found.append(
                Diagnosis(
                    "dead_relu",
                    WARNING,
                    f"Dead ReLUs in layer {stats.layer}",
                    f"{stats.dead_fraction:.0%} of its units output zero for all "
                    f"{snapshot.batch_size} samples of a batch; a dead unit passes no gradient "
                    "back, so it never recovers.",
                    "Lower the learning rate, use LeakyReLU or GELU instead of ReLU, or add "
                    "BatchNorm before it.",
                )
            )
    return found


def _saturation(snapshot: ProbeSnapshot) -> list[Diagnosis]:
    found = []
    for stats in snapshot.activations:
        if stats.saturated_fraction >= SATURATED_FRACTION:
            found.append(
                Diagnosis(
                    "saturation",
                    WARNING,
                    f"Saturated {stats.type} in layer {stats.layer}",
                    f"{stats.saturated_fraction:.0%} of its outputs sit at the flat ends of the "
                    "curve, where the gradient is almost zero.",
                    "Standardise the inputs, lower the learning rate, or use ReLU/GELU.",
                )
            )
    return found


class TrainingDoctor(BaseObserver):
    """Collects epoch reports (as an observer or by `add_epoch`) and the latest probe snapshot;
    `diagnoses` is what the banner shows."""

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes
        self.history: list[Epoch] = []
        self.snapshot: ProbeSnapshot | None = None
        self.failure: str | None = None

    def add_epoch(self, report: Epoch) -> list[Diagnosis]:
        self.history.append(report)
        return self.diagnoses

    def on_epoch_end(self, report: EpochReport) -> None:
        self.add_epoch(report)

    def on_failed(self, message: str) -> None:
        self.failure = message

    def set_snapshot(self, snapshot: ProbeSnapshot | None) -> list[Diagnosis]:
        self.snapshot = snapshot
        return self.diagnoses

    def reset(self) -> None:
        self.history, self.snapshot, self.failure = [], None, None

    @property
    def diagnoses(self) -> list[Diagnosis]:
        return diagnose(self.history, self.snapshot, self.num_classes, self.failure)
