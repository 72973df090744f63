"""Learning-rate finder: an exponential ramp of the rate over a few steps, then a suggestion.

The Leslie Smith range test as fastai and Lightning run it: one optimizer step per batch while the
rate grows from `start` to `end`, the loss smoothed by a bias-corrected moving average, stopped
when it diverges; the model, optimizer and random state are put back exactly as they were.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.control import RunControl
from workbench.engine.devices import DeviceInfo
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import Experiment
from workbench.engine.optimization import LossFn
from workbench.engine.precision import Precision
from workbench.engine.trainer import Trainer
from workbench.engine.training_snapshot import Batch, TrainingSnapshot, train_step

MAX_STEPS = 100
SMOOTHING = 0.98  # fastai's and Lightning's beta
DIVERGENCE = 4.0  # stop once the smoothed loss is this many times its minimum
SKIP_START = 0.1  # the first tenth of the ramp is mostly noise around the initial loss

StepCallback = Callable[[int, float, float, float], None]  # step, rate, loss, smoothed loss


@dataclass(frozen=True)
class LRFinderResult:
    """The ramp (rate, raw and smoothed loss per step), the suggested rate and why."""

    rates: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float | None
    reason: str
    ended: str  # why the ramp ended

    def table(self, rows: int = 20) -> str:
        """A few rows of the ramp, evenly spaced, the suggested rate's marked."""
        if not self.rates:
            return "(no steps taken)"
        count = len(self.rates)
        picks = sorted({round(i * (count - 1) / max(rows - 1, 1)) for i in range(rows)})
        marked = self._nearest(self.suggestion)
        if marked is not None and marked not in picks:
            picks = sorted({*picks, marked})
        lines = [f"{'rate':>10}  {'loss':>10}  {'smoothed':>10}"]
        for i in picks:
            mark = ""
            if i == marked and self.suggestion is not None:
                exact = math.isclose(self.rates[i], self.suggestion, rel_tol=1e-9)
                mark = "  <- suggested" + ("" if exact else f" ({self.suggestion:.3g})")
            lines.append(
                f"{self.rates[i]:>10.3g}  {self.losses[i]:>10.4g}  {self.smoothed[i]:>10.4g}{mark}"
            )
        return "\n".join(lines)

    def _nearest(self, rate: float | None) -> int | None:
        if rate is None or not self.rates:
            return None
        return min(range(len(self.rates)), key=lambda i: abs(math.log(self.rates[i] / rate)))

    def csv(self) -> str:
        buffer = io.StringIO()
        buffer.write("step,lr,loss,smoothed_loss\n")
        for step, row in enumerate(zip(self.rates, self.losses, self.smoothed, strict=True)):
            buffer.write(f"{step},{row[0]!r},{row[1]!r},{row[2]!r}\n")
        return buffer.getvalue()


def check_ramp(start: float, end: float, steps: int) -> None:
    if not 0 < start < end:
        raise ExperimentError(
            f"command line: --start {start:g} --end {end:g}: the rates must be above 0 and "
            "--start below --end"
        )
    if not 2 <= steps <= MAX_STEPS:
        raise ExperimentError(f"command line: --steps {steps}: use between 2 and {MAX_STEPS} steps")


def ramp(start: float, end: float, steps: int) -> list[float]:
    """`steps` rates growing exponentially from `start` to `end` (both included)."""
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def suggest(rates: list[float], smoothed: list[float]) -> tuple[float | None, str]:
    """The lower of two classic picks: the rate where the smoothed loss falls fastest (per decade
    of rate, before its minimum) and a tenth of the rate at the minimum.

    The lower one is the safer: the steepest point lags on a short ramp, and the minimum sits
    just before divergence.
    """
    if len(rates) < 3:
        return None, "too few steps to suggest a rate; lower --start or raise --steps"
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    tenth = rates[lowest] / 10
    minimum = f"a tenth of {rates[lowest]:.3g}, the rate at the lowest smoothed loss ({smoothed[lowest]:.4g})"
    first = max(1, int(len(rates) * SKIP_START))
    if lowest - first < 3:
        return tenth, f"{minimum}; the descent was too short to find its steepest point"
    logs = [math.log10(rate) for rate in rates]
    slopes = {
        i: (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        for i in range(first, lowest)
    }
    steep = min(slopes, key=slopes.__getitem__)
    steepest = (
        f"the steepest descent of the smoothed loss ({slopes[steep]:.3g} per tenfold rate) "
        f"at {rates[steep]:.3g}"
    )
    if tenth <= rates[steep]:
        return tenth, f"{minimum}; lower than {steepest}"
    return rates[steep], f"{steepest}; lower than {minimum}, {tenth:.3g}"


def _cycle(batches: Iterable[Batch]) -> Iterator[Batch]:
    epoch = 1
    while True:
        set_epoch = getattr(batches, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            return
        epoch += 1


def find_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batches: Iterable[Batch],
    precision: Precision,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = MAX_STEPS,
    accumulate: int = 1,
    control: RunControl | None = None,
    on_step: StepCallback | None = None,
) -> LRFinderResult:
    """Run the ramp on `model` and `optimizer`, then restore both bit for bit."""
    check_ramp(start, end, steps)
    control = control or RunControl()
    base = [float(group["lr"]) for group in optimizer.param_groups]
    snapshot = TrainingSnapshot(model, optimizer, precision)
    rates: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    ended = f"reached the end rate {end:g}"
    average = 0.0
    source = _cycle(batches)
    try:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        for step, rate in enumerate(ramp(start, end, steps)):
            if not control.wait_for_next_step():
                ended = "stopped"
                break
            for group, group_base in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = rate * group_base / base[0] if base[0] else rate
            loss = train_step(model, optimizer, loss_fn, source, precision, accumulate)
            if loss is None:
                ended = "ran out of batches"
                break
            if not math.isfinite(loss):
                ended = f"the loss became {loss} at rate {rate:.3g}"
                break
            average = SMOOTHING * average + (1 - SMOOTHING) * loss
            rates.append(rate)
            losses.append(loss)
            smoothed.append(average / (1 - SMOOTHING ** (step + 1)))
            if on_step is not None:
                on_step(step, rate, loss, smoothed[-1])
            if step > 0 and smoothed[-1] > DIVERGENCE * min(smoothed):
                ended = (
                    f"the smoothed loss rose above {DIVERGENCE:g}x its minimum at rate {rate:.3g}"
                )
                break
    finally:
        snapshot.restore()
    suggestion, reason = suggest(rates, smoothed)
    return LRFinderResult(tuple(rates), tuple(losses), tuple(smoothed), suggestion, reason, ended)


def find_lr_for_trainer(trainer: Trainer, **ramp: Any) -> LRFinderResult:
    """The ramp on a prepared Trainer's model, optimizer, training batches and precision."""
    return find_lr(
        trainer.model,
        trainer.optimizer,
        trainer.loss_fn,
        trainer.loaders.train,
        trainer.precision,
        accumulate=trainer.experiment.train.accumulate_grad_batches,
        **ramp,
    )


def find_lr_for_experiment(
    experiment: Experiment,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = MAX_STEPS,
    devices: list[DeviceInfo] | None = None,
    control: RunControl | None = None,
    on_step: StepCallback | None = None,
) -> tuple[LRFinderResult, Trainer]:
    """Prepare the experiment as training would (data, model, optimizer) and run the ramp.

    Returns the result and the prepared Trainer (its model and optimizer as they were before).
    """
    check_ramp(start, end, steps)
    trainer = Trainer(experiment, devices=devices)
    trainer.prepare()
    result = find_lr_for_trainer(
        trainer, start=start, end=end, steps=steps, control=control, on_step=on_step
    )
    return result, trainer
