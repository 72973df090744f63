"""The total gradient norm before optimizer steps, sampled so that fast runs pay a fixed price."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from torch import nn

NORM_INTERVAL_SECONDS = 0.02  # a gradient norm at most 50 times a second: a fixed, tiny cost


class StepGradientNorms:
    """The total gradient norm right before optimizer steps, sampled at most every `interval`
    seconds (one fused norm each). `step()` says how many steps the run has taken."""

    def __init__(self, step: Callable[[], int], interval: float = NORM_INTERVAL_SECONDS) -> None:
        self.step, self.interval = step, interval
        self.steps: list[int] = []
        self.norms: list[float] = []
        self._last = -math.inf

    def on_after_backward(self, model: nn.Module) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        gradients = [p.grad for p in model.parameters() if p.grad is not None]
        if gradients:
            self.steps.append(self.step() + 1)  # the step these gradients are for
            self.norms.append(float(nn.utils.get_total_norm(gradients)))
