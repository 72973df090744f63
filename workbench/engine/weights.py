"""Load a weights file into an experiment's model, explaining exactly which keys or shapes do not fit."""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.engine.checkpoints import open_checkpoint, reconcile
from workbench.engine.errors import CheckpointError
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model

MAX_LISTED = 6


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def load_weights_for(experiment: Experiment, path: str | Path) -> dict[str, torch.Tensor]:
    """The file's state_dict if it fits the experiment's model strictly, else a CheckpointError."""
    checkpoint = open_checkpoint(Path(path))
    model = build_experiment_model(experiment).module
    result = reconcile(checkpoint.state_dict, model)
    if result.fits:
        return {key: value.clone() for key, value in checkpoint.state_dict.items()}
    problems = []
    if result.missing:
        problems.append(f"missing {_listed(result.missing)}")
    if result.unexpected:
        problems.append(f"unexpected {_listed(result.unexpected)}")
    for mismatch in result.wrong_shape[:MAX_LISTED]:
        problems.append(
            f"{mismatch.key}: file {list(mismatch.file_shape)} vs model {list(mismatch.model_shape)}"
        )
    hint = (
        "; the checkpoint editor can rename the keys to fit (File > Open Checkpoint, Reconcile)"
        if result.fits_after_renames
        else "; build the stack the file was saved from, or fix the file in the checkpoint editor"
    )
    raise CheckpointError(
        f"{path}: does not fit the current layer stack: {'; '.join(problems)}{hint}"
    )
