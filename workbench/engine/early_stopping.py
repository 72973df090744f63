"""Early stopping: watch one metric, stop after `patience` epochs without improvement, keep the best."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from workbench.engine.experiment import EarlyStoppingSpec
from workbench.engine.reports import EpochReport


def resolved_mode(monitor: str, mode: str) -> str:
    """ "min" or "max": `mode`, where "auto" maximises accuracies and minimises losses."""
    if mode != "auto":
        return mode
    return "max" if "accuracy" in monitor else "min"


class EarlyStopping:
    def __init__(
        self, monitor: str, patience: int, min_delta: float, mode: str, keep_best: bool
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = resolved_mode(monitor, mode)
        self.keep_best = keep_best
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0

    @classmethod
    def from_spec(cls, spec: EarlyStoppingSpec | None) -> EarlyStopping | None:
        if spec is None:
            return None
        return cls(
            spec.monitor, spec.patience, spec.min_delta, spec.mode, spec.restore_best_weights
        )

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, report: EpochReport, model: nn.Module) -> bool:
        """Record this epoch; True when training should stop."""
        value = getattr(report, self.monitor)
        if value is None:
            return False
        if self._improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, report.epoch, 0
            if self.keep_best:
                self.best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.best_state = state.get("best_state")
