"""Out-of-memory rescue: halve the micro-batch, double accumulation, keep the effective batch."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from workbench.engine.errors import OutOfMemoryTrainingError
from workbench.engine.experiment import Experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.trainer import Trainer

# Builds the Trainer that goes on: the smaller-batch experiment and the checkpoint to resume.
MakeTrainer = Callable[[Experiment, "str | Path | None"], Trainer]


def halved(experiment: Experiment, phase: str = "train") -> Experiment | None:
    """The experiment with smaller batches; None when they are already 1.

    In training: half the batch size and twice the accumulation (the same effective batch).
    In evaluation: half the validation batch size, which changes no result.
    """
    data, train = experiment.data, experiment.train
    if phase == "evaluate":
        if data.val_batch_size <= 1:
            return None
        changes: dict[str, Any] = {"data.val_batch_size": data.val_batch_size // 2}
    else:
        if data.batch_size <= 1:
            return None
        changes = {
            "data.batch_size": data.batch_size // 2,
            "train.accumulate_grad_batches": train.accumulate_grad_batches * 2,
        }
    return with_overrides(experiment, changes, source="out-of-memory rescue")


def fit_with_oom_rescue(trainer: Trainer, make_trainer: MakeTrainer) -> dict[str, Any]:
    """`trainer.fit()`, going on with smaller micro-batches after each out-of-memory error.

    The run continues from its last epoch checkpoint when this run wrote one (an `out_dir`),
    else from where it started; the effective batch (batch x accumulation) stays the same.
    """
    rescues: list[dict[str, Any]] = []
    while True:
        trainer.rescue_out_of_memory = True
        trainer.run_flags = {**trainer.run_flags, "oom_rescues": rescues}
        try:
            return trainer.fit()
        except OutOfMemoryTrainingError as exc:
            message = str(exc)
        phase = trainer.phase
        smaller = halved(trainer.experiment, phase)
        if smaller is None:
            trainer.failed_reported = True
            trainer.observer.on_failed(message)
            raise OutOfMemoryTrainingError(message)
        resume = _resume_point(trainer)
        epoch = len(trainer.history) + 1
        rescues.append(
            {
                "epoch": epoch,
                "phase": phase,
                "batch_size": smaller.data.batch_size,
                "accumulate_grad_batches": smaller.train.accumulate_grad_batches,
                "val_batch_size": smaller.data.val_batch_size,
            }
        )
        trainer.observer.on_log(_rescue_line(trainer.experiment, smaller, phase, epoch, resume))
        flags = trainer.run_flags
        _release(trainer)
        trainer = make_trainer(smaller, resume)
        trainer.run_flags = flags


def _resume_point(trainer: Trainer) -> str | Path | None:
    """This run's latest checkpoint, else the one it was resumed from, else None (the start)."""
    if trainer.history and trainer.out_dir is not None:
        checkpoint = trainer.out_dir / "checkpoint.pt"
        if checkpoint.is_file():
            return checkpoint
    return trainer.resume_from


def _rescue_line(
    before: Experiment, after: Experiment, phase: str, epoch: int, resume: object
) -> str:
    where = f"from the checkpoint before epoch {epoch}" if resume else "from the start"
    if phase == "evaluate":
        return (
            f"Out of memory in validation at batch size {before.data.val_batch_size}: going on "
            f"{where} with validation batch size {after.data.val_batch_size}"
        )
    b, k = before.data.batch_size, before.train.accumulate_grad_batches
    b2, k2 = after.data.batch_size, after.train.accumulate_grad_batches
    kept = "unchanged" if b * k == b2 * k2 else f"now {b2 * k2} instead of {b * k}"
    return (
        f"Out of memory at batch size {b} x {k} accumulated: going on {where} with batch size "
        f"{b2} x {k2} accumulated (effective batch {kept})"
    )


def _release(trainer: Trainer) -> None:
    """Give back the failed run's device memory before the next one allocates its own."""
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.optimizer.state.clear()
    trainer.model.to("meta")  # callers may still hold the Trainer; its tensors need not stay
    gc.collect()
    if trainer.device.type == "cuda":
        torch.cuda.empty_cache()
