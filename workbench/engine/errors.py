"""User-facing error types: each carries one readable message, never a traceback for the user."""

from __future__ import annotations


class WorkbenchError(Exception):
    """An error whose message is meant for the user as it stands."""


class ExperimentError(WorkbenchError):
    """An experiment file or value is wrong: the message names the file, key, value and fix."""


class ModelBuildError(WorkbenchError):
    """A layer stack cannot be built: the message names the layer index and type and the fix."""

    def __init__(self, message: str, layer_index: int | None = None) -> None:
        super().__init__(message)
        self.layer_index = layer_index


class DatasetError(WorkbenchError):
    """A dataset cannot be loaded: the message names the file or folder and what to do."""


class DeviceError(WorkbenchError):
    """A device or precision is not available on this machine."""


class CheckpointError(WorkbenchError):
    """A checkpoint file cannot be opened, edited or saved safely."""


class TrainingError(WorkbenchError):
    """A run failed (NaN loss, out of memory, ...): the message says what to change."""


class OutOfMemoryTrainingError(TrainingError):
    """A run ran out of device memory; `--oom-rescue` goes on with smaller micro-batches."""
