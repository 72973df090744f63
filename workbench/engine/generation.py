"""Text from a trained next-token model, token by token: a generator that the CLI prints from
and the window's Generate tab streams, and a sample at each epoch's end while training.

    text_model = open_text_model(experiment, state_dict)
    for piece in text_model.stream("Shall I", SamplingSettings(tokens=200, seed=1)):
        print(piece, end="", flush=True)

Sampling draws from its own seeded generator, never torch's global one, so a sample taken
between epochs leaves the training run's random numbers as they were.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from workbench.engine.checkpoints.reconcile import load_strict
from workbench.engine.datasets.text import OutOfVocabulary, Vocabulary, text_vocabulary
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.outputs import mode, model_device
from workbench.engine.reports import BaseObserver, EpochReport
from workbench.engine.task import NEXT_TOKEN, task_kind

MAX_TOKENS = 100_000


class GenerationError(WorkbenchError):
    """Generation cannot start as asked (not a text model, a bad setting, a bad prompt)."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick each next token: `temperature` 0 takes the most likely one, higher values
    flatten the distribution; `top_k` keeps only the k most likely tokens (None: all)."""

    tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 40
    seed: int | None = None  # None: a fresh random seed

    def __post_init__(self) -> None:
        if not 1 <= self.tokens <= MAX_TOKENS:
            raise GenerationError(f"tokens: {self.tokens} is out of range; use 1 to {MAX_TOKENS}")
        if not self.temperature >= 0:  # also refuses NaN
            raise GenerationError(
                f"temperature: {self.temperature} is out of range; use 0 (always the most "
                "likely token) or more, e.g. 0.8"
            )
        if self.top_k is not None and self.top_k < 1:
            raise GenerationError(f"top_k: {self.top_k} is out of range; use 1 or more, or none")


def next_token(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator) -> int:
    """One token id from a [vocab] row of scores, as nanoGPT samples it."""
    if settings.temperature == 0:
        return int(logits.argmax())
    scores = logits.float() / settings.temperature
    if settings.top_k is not None and settings.top_k < scores.numel():
        kth = torch.topk(scores, settings.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probabilities = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))


def generate_ids(
    model: nn.Module, prompt: Sequence[int], settings: SamplingSettings, context: int
) -> Iterator[int]:
    """Token ids after `prompt`, one at a time; each step sees the last `context` tokens."""
    seed = settings.seed if settings.seed is not None else secrets.randbits(63)
    generator = torch.Generator().manual_seed(seed)
    device = model_device(model)
    ids = list(prompt)
    with mode(model, training=False):
        for _ in range(settings.tokens):
            with torch.inference_mode():
                window = torch.tensor([ids[-context:]], dtype=torch.long, device=device)
                logits = model(window)[0, -1].float().cpu()
            token = next_token(logits, settings, generator)
            ids.append(token)
            yield token


@dataclass(frozen=True, eq=False)
class TextModel:
    """A next-token model with its vocabulary: what the Generate tab and `generate` use."""

    model: nn.Module
    vocabulary: Vocabulary
    block_size: int

    def prompt_ids(self, prompt: str) -> list[int]:
        """The prompt's ids; an empty prompt starts from a new line (or the first token)."""
        if not prompt:
            newline = self.vocabulary.encode("\n") if not self.vocabulary.unknown("\n") else []
            return newline or [1 if self.vocabulary.padded else 0]
        try:
            return self.vocabulary.encode(prompt)
        except OutOfVocabulary as exc:
            raise GenerationError(f"the prompt: {exc}") from None

    def stream(self, prompt: str, settings: SamplingSettings) -> Iterator[str]:
        """The generated text piece by piece (the prompt is checked before anything is made)."""
        ids = self.prompt_ids(prompt)
        return self._pieces(ids, settings)

    def _pieces(self, ids: list[int], settings: SamplingSettings) -> Iterator[str]:
        decoder = self.vocabulary.decoder()
        for token in generate_ids(self.model, ids, settings, self.block_size):
            piece = decoder.piece(token)
            if piece:
                yield piece
        tail = decoder.flush()
        if tail:
            yield tail

    def complete(self, prompt: str, settings: SamplingSettings) -> str:
        return "".join(self.stream(prompt, settings))


def require_text_model(experiment: Experiment) -> None:
    """Refuse, before anything is loaded, an experiment that does not model text."""
    if task_kind(experiment.data) != NEXT_TOKEN:
        raise GenerationError(
            f'generating needs a next-token model trained on text (data.name = "text"); '
            f"this experiment trains on {experiment.data.name!r}"
        )


def open_text_model(
    experiment: Experiment, state_dict: Mapping[str, torch.Tensor], device: str = "cpu"
) -> TextModel:
    """The experiment's model with trained weights, and the vocabulary of its text."""
    require_text_model(experiment)
    vocabulary = text_vocabulary(experiment.data)
    model = build_experiment_model(experiment).module
    load_strict(model, state_dict)
    return TextModel(model.to(device).eval(), vocabulary, experiment.data.block_size)


SampleCallback = Callable[[int, str], None]  # (epoch, text)


class EpochSampler(BaseObserver):
    """Draws a sample from the model at each epoch's end (the `on_epoch_model` hook), on the
    training thread between epochs, so a class can watch gibberish turn into words."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        block_size: int,
        on_sample: SampleCallback,
        prompt: str = "",
        settings: SamplingSettings | None = None,
    ) -> None:
        self.vocabulary, self.block_size = vocabulary, block_size
        self.on_sample = on_sample
        self.prompt = prompt
        self.settings = settings or SamplingSettings(tokens=120, seed=0)

    def on_epoch_model(self, model: nn.Module, report: EpochReport) -> None:
        text_model = TextModel(model, self.vocabulary, self.block_size)
        self.on_sample(report.epoch, self.prompt + text_model.complete(self.prompt, self.settings))
