"""The Generate tab's work off the GUI thread: streamed text, attention maps, epoch samples.

Generation runs on a JobRunner job and sends each piece of text as it is made (`piece`);
`stop()` ends it after the current token. While a text model trains in this process, an
EpochSampler rides along the run and sends the sample it draws at each epoch's end
(`sample_ready`). Every failure arrives as one readable line (`failed`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from PySide6.QtCore import QObject, Signal
from torch import nn

from workbench.controllers.current_model import CurrentModelHolder
from workbench.controllers.jobs import JobRunner, one_line
from workbench.controllers.run_session import RunSession
from workbench.engine.current_model import CurrentModel
from workbench.engine.datasets.text import text_vocabulary
from workbench.engine.errors import WorkbenchError
from workbench.engine.generation import EpochSampler, SamplingSettings, TextModel, open_text_model
from workbench.engine.insight.attention import PromptAttention, prompt_attention
from workbench.engine.reports import BaseObserver, EpochReport, RunStarted, TrainingObserver
from workbench.engine.task import NEXT_TOKEN, task_kind
from workbench.engine.trainer import Trainer

GENERATE, ATTENTION = "generate", "attention"


def is_text_model(model: CurrentModel) -> bool:
    """The model predicts the next token of a text: generating from it makes sense."""
    return task_kind(model.experiment.data) == NEXT_TOKEN


def text_model_of(model: CurrentModel) -> TextModel:
    """The current model, built with its weights and its text's vocabulary."""
    return open_text_model(model.experiment, model.weights())


class GuardedSampler(BaseObserver):
    """Samples at each epoch's end of a text run, on the training thread; it never stops the
    run: a failure is reported once, then it rests."""

    def __init__(self, trainer: Trainer, controller: GenerationController) -> None:
        self.data, self.controller = trainer.experiment.data, controller
        self.sampler: EpochSampler | None = None

    def on_started(self, report: RunStarted) -> None:
        del report  # the text is read here, on the training thread, not when the run is asked for
        self._guarded(self._start)

    def _start(self) -> None:
        vocabulary = text_vocabulary(self.data)
        emit = self.controller.sample_ready.emit
        self.sampler = EpochSampler(vocabulary, self.data.block_size, emit)

    def on_epoch_model(self, model: nn.Module, report: EpochReport) -> None:
        sampler = self.sampler
        if sampler is not None:
            self._guarded(sampler.on_epoch_model, model, report)

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - a sample must never stop the training
            self.sampler = None
            why = str(exc) if isinstance(exc, WorkbenchError) else one_line(exc)
            self.controller.failed.emit(f"No more samples during this run: {why}")


class GenerationController(QObject):
    """Generates from the window's current model and follows the session's text runs."""

    piece = Signal(str)  # a piece of generated text, as it comes
    finished = Signal(str)  # all the text of the generation that ended (stopped or not)
    failed = Signal(str)  # generating, or a sample during a run
    attention_failed = Signal(str)
    running_changed = Signal(bool)
    sample_ready = Signal(int, str)  # epoch, the prompt and its sample
    attention_ready = Signal(object)  # PromptAttention

    def __init__(self, current: CurrentModelHolder, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.current = current
        self._stop = threading.Event()
        self.jobs = JobRunner(self, name="Generation", cancel=self.stop)
        self.jobs.succeeded.connect(self._succeeded)
        self.jobs.failed.connect(self._failed)
        self.jobs.ended.connect(self._ended)
        self._session: RunSession | None = None

    @property
    def is_generating(self) -> bool:
        return self.jobs.is_running(GENERATE)

    # ------------------------------------------------------------------ generating

    def generate(self, prompt: str, settings: SamplingSettings) -> bool:
        """Start streaming text after `prompt`; False when a generation is already running."""
        if self.is_generating:
            return False
        model = self.current.model
        self._stop.clear()
        self.jobs.start(GENERATE, lambda: self._generate(model, prompt, settings))
        self.running_changed.emit(True)
        return True

    def _generate(self, model: CurrentModel, prompt: str, settings: SamplingSettings) -> str:
        """On the worker thread: each piece goes out as a signal the moment it is made."""
        pieces = text_model_of(model).stream(prompt, settings)  # checks the prompt first
        made: list[str] = []
        for piece in pieces:
            if self._stop.is_set():
                break
            made.append(piece)
            self.piece.emit(piece)
        return "".join(made)

    def stop(self) -> None:
        """End the generation after the token being made."""
        self._stop.set()

    def show_attention(self, prompt: str) -> bool:
        """Compute the current model's attention maps for `prompt` (off the GUI thread)."""
        if self.jobs.is_running(ATTENTION):
            return False
        model = self.current.model
        self.jobs.start(ATTENTION, lambda: _attention(model, prompt))
        return True

    def _succeeded(self, key: Hashable, result: object) -> None:
        if key == GENERATE:
            self.finished.emit(str(result))
        elif isinstance(result, PromptAttention):
            self.attention_ready.emit(result)

    def _failed(self, key: Hashable, error: object) -> None:
        (self.attention_failed if key == ATTENTION else self.failed).emit(str(error))

    def _ended(self, key: Hashable) -> None:
        if key == GENERATE:
            self.running_changed.emit(False)

    # ------------------------------------------------------------------ samples while training

    def attach(self, session: RunSession) -> None:
        """Have every later in-process text run of `session` send a sample at each epoch's end."""
        self.detach()
        self._session = session
        session.add_observer_factory(self._sampler_for)

    def detach(self) -> None:
        if self._session is not None:
            self._session.remove_observer_factory(self._sampler_for)
            self._session = None

    def _sampler_for(self, trainer: Trainer) -> TrainingObserver | None:
        if task_kind(trainer.experiment.data) != NEXT_TOKEN:
            return None
        return GuardedSampler(trainer, self)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        self.detach()
        return self.jobs.shutdown(timeout_ms)


def _attention(model: CurrentModel, prompt: str) -> PromptAttention:
    if not is_text_model(model):
        raise WorkbenchError('attention maps need a text model (data.name = "text")')
    found = prompt_attention(text_model_of(model), prompt)
    if not found.maps:
        raise WorkbenchError(
            f"{model.description} has no attention layer (TransformerBlock or "
            "TransformerEncoderLayer): there is no attention map to show"
        )
    return found
