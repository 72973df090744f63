"""The one model the window's actions use: a fresh initialisation, a run's result, or a loaded file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.run_history import RunResult

FRESH, RUN, FILE = "fresh", "run", "file"


@dataclass(frozen=True, eq=False)
class CurrentModel:
    """Weights and the experiment they were made for, under the name a user reads.

    `state_dict` is None for a fresh initialisation (`weights()` builds it from the seed, as a
    run would start). Save Model Weights, Quantize, Predict, Evaluate and the decision boundary
    all work on this one model.
    """

    kind: str  # FRESH | RUN | FILE
    name: str  # "fresh initialisation", "run 3", "model.pth"
    experiment: Experiment
    state_dict: Mapping[str, torch.Tensor] | None = None
    source: Path | None = None  # the run folder or the file

    @classmethod
    def fresh(cls, experiment: Experiment) -> CurrentModel:
        return cls(FRESH, "fresh initialisation", experiment)

    @classmethod
    def of_run(cls, result: RunResult, name: str) -> CurrentModel:
        return cls(RUN, name, result.experiment, result.state_dict, result.folder)

    @classmethod
    def of_file(
        cls, path: Path, experiment: Experiment, state: Mapping[str, torch.Tensor]
    ) -> CurrentModel:
        return cls(FILE, path.name, experiment, state, path)

    @property
    def trained(self) -> bool:
        """Weights that came from training or a file (what quantizing is worth doing on)."""
        return self.kind != FRESH and self.state_dict is not None

    @property
    def description(self) -> str:
        """What the status bar and the panels say: `run 3`, `model.pth (loaded file)`."""
        if self.kind == FILE:
            return f"{self.name} (loaded file)"
        return self.name

    def fits(self, experiment: Experiment) -> bool:
        """True while `experiment` still builds the model these weights were made for."""
        mine, other = self.experiment, experiment
        return mine.model == other.model and (
            mine.data.name,
            mine.data.path,
            mine.data.options,
        ) == (
            other.data.name,
            other.data.path,
            other.data.options,
        )

    def weights(self) -> dict[str, torch.Tensor]:
        """The state_dict (a fresh one is built from the experiment's seed, as a run starts)."""
        if self.state_dict is not None:
            return dict(self.state_dict)
        torch.manual_seed(self.experiment.train.seed)
        return build_experiment_model(self.experiment).module.state_dict()
