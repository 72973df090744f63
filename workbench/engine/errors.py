"""User-facing error types: each carries one readable message, never a traceback for the user."""

from __future__ import annotations


class WorkbenchError(Exception):
    """An error whose message is meant for the user as it stands."""


class ExperimentError(WorkbenchError):
    """An experiment file or value is wrong: the message names the file, key, value and fix."""


class ModelBuildError(WorkbenchError):
    """A model cannot be built: the message names the layer and the fix.

    `layer_index` is the position of the (top-level) layer the problem belongs to, for views
    that mark it; `key_path` is where the layer sits in the file (`model.blocks.Basic.layers[2]`).
    """

    def __init__(
        self, message: str, layer_index: int | None = None, key_path: str | None = None
    ) -> None:
        super().__init__(message)
        self.layer_index = layer_index
        self.key_path = key_path


class ModelCodeError(ModelBuildError):
    """The user's own model code fails (a syntax error, an exception in `__init__` or
    `forward`) or cannot be used as a model: the message names the user's file and line.

    `path` and `line` locate the problem in the user's file, for a window that opens it there;
    both are None when it has no place in the file (a class that is not found, say).
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class DatasetError(WorkbenchError):
    """A dataset cannot be loaded: the message names the file or folder and what to do."""


class DeviceError(WorkbenchError):
    """A device or precision is not available on this machine."""


class CheckpointError(WorkbenchError):
    """A checkpoint file cannot be opened, edited or saved safely."""


class TrainingError(WorkbenchError):
    """A run failed (NaN loss, out of memory, ...): the message says what to change."""


class OutputError(WorkbenchError):
    """An output folder or file cannot be written (read-only, under a file, disk full, ...)."""


class OutOfMemoryTrainingError(TrainingError):
    """A run ran out of device memory; `--oom-rescue` goes on with smaller micro-batches."""
