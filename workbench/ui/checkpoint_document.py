"""The open checkpoint: its weights as edited, its file, its undo stack and every edit verb."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from torch import nn

from workbench.controllers.checkpoint_loader import (
    COMPARE,
    OPEN,
    SAVE,
    STATS,
    CheckpointLoader,
    Task,
    describe_error,
)
from workbench.engine.checkpoints import (
    Checkpoint,
    CheckpointDiff,
    Reconciliation,
    UnsafeCheckpointError,
    add_prefix,
    apply_renames,
    cast_floating,
    delete_keys,
    detect_wrapper_prefixes,
    diff_state_dicts,
    load_strict,
    open_checkpoint,
    preview_regex_rename,
    preview_substring_rename,
    reconcile,
    rename_keys,
    strip_prefix,
    strip_wrapper_prefixes,
    tensor_infos,
)
from workbench.engine.errors import WorkbenchError

StateDict = dict[str, torch.Tensor]
ModelProvider = Callable[[], nn.Module | None]
NO_CHECKPOINT = "Open a checkpoint first."
NO_PROVIDER_REASON = "No model to compare with: open the editor from the window's layer stack."
NO_MODEL_REASON = (
    "The current layer stack does not build a model; fix the layer stack, then compare again."
)


def first_line(error: object) -> str:
    """One readable line for any failure: the message of a named error, else its type too."""
    if isinstance(error, str | WorkbenchError):
        text = str(error)
    elif isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = describe_error(error)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


class ReplaceStateDictCommand(QUndoCommand):
    """One edit. The engine's edits return new dicts that share every untouched tensor, so
    keeping both sides costs only the dict and whatever the edit changed (a cast, say)."""

    def __init__(self, document: CheckpointDocument, new: StateDict, text: str) -> None:
        super().__init__(text)
        self.document = document
        self.old = document.state_dict
        self.new = new

    def redo(self) -> None:
        self.document._set_state(self.new)

    def undo(self) -> None:
        self.document._set_state(self.old)


class CheckpointDocument(QObject):
    """Holds one checkpoint; every edit is one step on `undo_stack` and emits `state_changed`.

    File work (open, save, compare) runs on `loader`'s worker threads; its outcome arrives as
    the signals below, so the editor's widgets only show what the document says.
    """

    opened = Signal(object)  # the Checkpoint that replaced the previous one
    state_changed = Signal()  # an edit, an undo or a redo changed the weights
    dirty_changed = Signal(bool)
    title_changed = Signal(str)
    saved = Signal(object)  # the Path written
    status_message = Signal(str)  # one line for the status bar
    error_changed = Signal(str)  # the problem to show; "" when there is none
    refusal_changed = Signal(object)  # the UnsafeCheckpointError of a refused open, or None
    activity_changed = Signal(str)  # what file work is running; "" when none
    reconciled = Signal(object, object)  # Reconciliation, strict-load error (str or None)
    model_unavailable = Signal(str)  # why there is nothing to reconcile with
    compare_started = Signal(str)
    compared = Signal(str, object)  # the other file's name, its CheckpointDiff
    compare_failed = Signal(str, bool)  # message, whether the file was refused as unsafe
    diff_outdated = Signal()  # an edit made the shown comparison stale

    def __init__(
        self,
        model_provider: ModelProvider | None = None,
        loader: CheckpointLoader | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.model_provider = model_provider
        self.loader = loader or CheckpointLoader(self)
        self.checkpoint: Checkpoint | None = None
        self.path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.reconciliation: Reconciliation | None = None
        self.diff: CheckpointDiff | None = None
        self.refusal: UnsafeCheckpointError | None = None
        self.compare_refusal: UnsafeCheckpointError | None = None
        self._state: StateDict = {}
        self._saved_device_by_tensor: dict[int, str] = {}
        self._save_index: int | None = None
        self._working: dict[str, str] = {}  # task name -> what the user reads while it runs
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.loader.progress.connect(self._on_progress)
        self.loader.finished.connect(self._on_task_finished)
        self.loader.failed.connect(self._on_task_failed)
        self.loader.cancelled.connect(self._on_task_cancelled)

    # state -------------------------------------------------------------------
    @property
    def state_dict(self) -> StateDict:
        """The weights as edited so far (a dict the document never changes in place)."""
        return self._state

    @property
    def is_open(self) -> bool:
        return self.checkpoint is not None

    @property
    def is_dirty(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def title(self) -> str:
        if self.path is None:
            return "Checkpoint editor"
        return self.path.name + ("*" if self.is_dirty else "")

    @property
    def can_edit(self) -> bool:
        """A file is open and is neither being replaced nor written."""
        return self.is_open and not (self._working.keys() & {OPEN, SAVE})

    @property
    def can_open(self) -> bool:
        return OPEN not in self._working

    def saved_devices(self) -> dict[str, str]:
        """Where each current tensor lived when the file was written (renames keep it)."""
        return {
            key: self._saved_device_by_tensor.get(id(tensor), "cpu")
            for key, tensor in self._state.items()
        }

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)
        self.title_changed.emit(self.title)

    def _set_state(self, state: StateDict) -> None:
        """Install `state` (the undo commands call this) and refresh what depends on it."""
        self._state = state
        self.state_changed.emit()
        if self.reconciliation is not None:
            self.reconcile()
        if self.diff is not None:
            self.diff = None
            self.diff_outdated.emit()

    def load(self, checkpoint: Checkpoint) -> bool:
        """Start over with an opened checkpoint: no undo history, no comparison, not dirty.

        A file whose tensors cannot even be listed (no plain shape) is refused in one line,
        and the file already open stays open.
        """
        try:
            infos = tensor_infos(checkpoint.state_dict)
        except Exception as exc:  # noqa: BLE001 - whatever torch raises: one line, no traceback
            self._set_error(
                f"{checkpoint.path}: cannot list the tensors in this file ({first_line(exc)})."
            )
            return False
        self.checkpoint = checkpoint
        self.path = checkpoint.path
        self._saved_device_by_tensor = {
            id(tensor): checkpoint.saved_devices.get(key, "cpu")
            for key, tensor in checkpoint.state_dict.items()
        }
        self.reconciliation = None
        self.diff = None
        self.undo_stack.clear()
        self._state = dict(checkpoint.state_dict)
        self.opened.emit(checkpoint)
        self.title_changed.emit(self.title)
        parameters = sum(info.numel for info in infos if not info.is_buffer)
        self.status_message.emit(
            f"Opened {checkpoint.path.name}: {len(self._state):,} keys, {parameters:,} parameters"
        )
        return True

    # opening -----------------------------------------------------------------
    def open(self, path: str | Path, trust: bool = False) -> None:
        """Open `path` on a worker thread; `opened` (or an error signal) follows.

        `trust=True` is the explicit per-file choice to unpickle a file that needs code, in a
        separate process; only the trust dialog passes it.
        """
        path = Path(path)
        self._set_error("")
        self._set_refusal(None)
        self._working[OPEN] = f"Opening {path.name}…"  # until the loader says more
        self.loader.open(path, trust_file=path if trust else None)

    def _set_error(self, message: str) -> None:
        self.error_changed.emit(message)
        if message:
            self.status_message.emit(first_line(message))

    def _set_refusal(self, refusal: UnsafeCheckpointError | None) -> None:
        self.refusal = refusal
        self.refusal_changed.emit(refusal)

    # edits -------------------------------------------------------------------
    def edit(self, text: str, make: Callable[[StateDict], StateDict]) -> bool:
        """Push one undoable edit made by `make`; a refusal becomes `error_changed` instead."""
        if not self.is_open:
            self._set_error(NO_CHECKPOINT)
            return False
        try:
            new = make(self._state)
        except WorkbenchError as exc:
            self._set_error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - whatever the engine raises, never a traceback
            self._set_error(f"{text} failed: {first_line(exc)}")
            return False
        self._set_error("")
        self.undo_stack.push(ReplaceStateDictCommand(self, new, text))
        self.status_message.emit(f"{text}. Ctrl+Z undoes it.")
        return True

    def rename_substring(self, old: str, new: str) -> bool:
        def make(state: StateDict) -> StateDict:
            return rename_keys(state, dict(preview_substring_rename(state, old, new)))

        return self.edit(f"Rename '{old}' → '{new}'", make)

    def rename_regex(self, pattern: str, replacement: str) -> bool:
        def make(state: StateDict) -> StateDict:
            return rename_keys(state, dict(preview_regex_rename(state, pattern, replacement)))

        return self.edit(f"Regex rename '{pattern}' → '{replacement}'", make)

    def strip_prefix(self, prefix: str) -> bool:
        return self.edit(f"Strip '{prefix}'", lambda state: strip_prefix(state, prefix))

    def add_prefix(self, prefix: str) -> bool:
        return self.edit(f"Add prefix '{prefix}'", lambda state: add_prefix(state, prefix))

    def strip_wrappers(self) -> bool:
        """Strip every wrapper prefix all keys carry (module., _orig_mod., model.), as one edit."""
        found = detect_wrapper_prefixes(self._state)
        if not found:
            self.status_message.emit("No wrapper prefix to strip.")
            return False
        return self.edit(f"Strip '{''.join(found)}'", strip_wrapper_prefixes)

    def delete_keys(self, selectors: list[str]) -> bool:
        """Delete keys, or whole modules by their dotted path."""
        if not selectors:
            return False
        shown = ", ".join(selectors[:3]) + (" …" if len(selectors) > 3 else "")
        return self.edit(f"Delete {shown}", lambda state: delete_keys(state, selectors))

    def cast(self, dtype: str) -> bool:
        return self.edit(f"Cast to {dtype}", lambda state: cast_floating(state, dtype))

    # fitting the model -------------------------------------------------------
    def build_model(self) -> tuple[nn.Module | None, str]:
        """The model to compare with, or None and the reason there is none."""
        if self.model_provider is None:
            return None, NO_PROVIDER_REASON
        try:
            model = self.model_provider()
        except Exception as exc:  # noqa: BLE001 - a stack that does not build is a reason, not a crash
            return None, f"The current layer stack does not build a model: {first_line(exc)}"
        return (model, "") if model is not None else (None, NO_MODEL_REASON)

    def model_problem(self) -> str:
        """Why the weights cannot be compared with a model now; "" when they can."""
        if not self.is_open:
            return NO_CHECKPOINT
        return self.build_model()[1]

    def reconcile(self) -> Reconciliation | None:
        """Compare the current weights with the model; strict-load them when the keys fit."""
        model, reason = self.build_model()
        if model is None or not self.is_open:
            self.model_unavailable.emit(reason or NO_CHECKPOINT)
            return None
        try:
            result = reconcile(self._state, model)
        except Exception as exc:  # noqa: BLE001 - odd tensors must not end in a traceback
            self.model_unavailable.emit(f"The comparison failed: {first_line(exc)}")
            return None
        strict_error = None
        if result.fits:
            try:
                load_strict(model, self._state)
            except Exception as exc:  # noqa: BLE001 - any refusal is the verdict's reason
                strict_error = first_line(exc)
        self.reconciliation = result
        self.reconciled.emit(result, strict_error)
        return result

    def apply_suggested_renames(self) -> bool:
        result = self.reconcile()
        if result is None or not result.suggested_renames:
            self.status_message.emit("No suggested renames to apply.")
            return False
        count = len(result.suggested_renames)
        return self.edit(
            f"Apply {count} suggested rename(s)", lambda state: apply_renames(state, result)
        )

    # comparing and saving ----------------------------------------------------
    def compare_with(self, path: str | Path, trust: bool = False) -> None:
        """Diff the current weights against another file, on a worker thread."""
        path = Path(path)
        self.compare_refusal = None
        snapshot = dict(self._state)
        trust_file = path if trust else None
        stop = threading.Event()

        def work() -> CheckpointDiff:
            other = open_checkpoint(path, trust_file=trust_file)
            return diff_state_dicts(snapshot, other.state_dict, stop)

        self.compare_started.emit(f"Comparing with {path.name}…")
        task = Task(COMPARE, f"Comparing with {path.name}", work, token=path, stop=stop)
        self.loader.submit(task)

    def save_as(self, path: str | Path) -> None:
        """Write the current weights atomically (.pth or .safetensors) on a worker thread."""
        if not self.is_open:
            return
        path = Path(path)
        self._save_index = self.undo_stack.index()
        self._working[SAVE] = f"Saving {path.name}…"  # until the loader says more
        self.loader.save(self._state, path)

    def _on_saved(self, path: Path) -> None:
        self.path = path
        if self.undo_stack.index() == self._save_index:
            self.undo_stack.setClean()
        self.title_changed.emit(self.title)
        note = ""
        if self.checkpoint is not None and self.checkpoint.metadata:
            note = " Only the weights were saved; the rest of the original file was not."
        self.saved.emit(path)
        self.status_message.emit(f"Saved {len(self._state):,} keys to {path}.{note}")

    # loader results ----------------------------------------------------------
    def _on_progress(self, name: str, text: str) -> None:
        if name == STATS:
            return
        self._working[name] = text
        self.activity_changed.emit(text)
        self.status_message.emit(text)

    def _task_done(self, name: str) -> None:
        self._working.pop(name, None)
        self.activity_changed.emit(next(reversed(self._working.values()), ""))

    def _on_task_finished(self, name: str, token: object, result: object) -> None:
        if name == STATS:
            return
        self._task_done(name)
        if name == OPEN and isinstance(result, Checkpoint):
            self.load(result)
        elif name == SAVE and isinstance(token, Path):
            self._on_saved(token)
        elif name == COMPARE and isinstance(result, CheckpointDiff) and isinstance(token, Path):
            self.diff = result
            self.compared.emit(token.name, result)
            self.status_message.emit(f"Compared with {token.name}")

    def _on_task_cancelled(self, name: str, _token: object) -> None:
        if name != STATS:
            self._task_done(name)

    def _on_task_failed(self, name: str, token: object, error: object) -> None:
        if name == STATS:
            return
        self._task_done(name)
        message = describe_error(error)
        unsafe = error if isinstance(error, UnsafeCheckpointError) else None
        if name == COMPARE:
            self.compare_refusal = unsafe
            self.compare_failed.emit(message, unsafe is not None)
            self.status_message.emit(first_line(message))
        elif name == OPEN and unsafe is not None:
            self._set_refusal(unsafe)
            self.status_message.emit(first_line(message))
        else:
            self._set_error(message)

    # lifetime ----------------------------------------------------------------
    def cancel_analysis(self) -> None:
        """Stop statistics and comparisons in flight (a save or an open runs to its end)."""
        self.loader.cancel_all()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop analyses and wait for file work in flight (call before the window closes)."""
        return self.loader.shutdown(timeout_ms)
