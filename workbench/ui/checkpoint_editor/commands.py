"""Undo steps for checkpoint edits: each keeps the whole old and new state_dict (cheap: shared)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PySide6.QtGui import QUndoCommand

StateDict = dict[str, torch.Tensor]


class ReplaceStateDictCommand(QUndoCommand):
    """One edit. The engine's edits return new dicts that share every untouched tensor, so
    keeping both sides costs only the dict and whatever the edit changed (a cast, say)."""

    def __init__(
        self,
        apply: Callable[[StateDict], None],
        old: StateDict,
        new: StateDict,
        text: str,
    ) -> None:
        super().__init__(text)
        self._apply = apply
        self.old = old
        self.new = new

    def redo(self) -> None:
        self._apply(self.new)

    def undo(self) -> None:
        self._apply(self.old)
