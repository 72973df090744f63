"""What a run learns, and so how it is scored: a prediction per sample (scored by accuracy),
or the next token at every position of a text (scored by perplexity and bits per character).

The one place that decides: the trainer, the script exporter, quantization and the window ask
`task_kind` and use the loss and metrics made here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from workbench.engine.errors import ExperimentError, ModelBuildError
from workbench.engine.experiment import DataSpec, Experiment
from workbench.engine.optimization import LossFn, make_loss

PREDICTION, NEXT_TOKEN = "prediction", "next_token"
NEXT_TOKEN_LOSSES = ("cross_entropy", "nll")
LN2 = math.log(2.0)


def task_kind(data: DataSpec) -> str:
    """NEXT_TOKEN for text data (a language model), PREDICTION for everything else."""
    return NEXT_TOKEN if data.name == "text" else PREDICTION


def reports_perplexity(data: DataSpec) -> bool:
    return task_kind(data) == NEXT_TOKEN


def task_loss(loss: str, kind: str) -> LossFn:
    """The experiment's loss; for next tokens over every position: [batch, length, vocab]
    scores against [batch, length] ids, as one [batch * length] classification."""
    inner = make_loss(loss)
    if kind != NEXT_TOKEN:
        return inner

    def next_token_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return inner(output.flatten(0, -2), target.flatten())

    return next_token_loss


def check_task(experiment: Experiment, output_shape: Sequence[int], vocab_size: int | None) -> None:
    """Refuse, before training, a next-token run whose loss or model output cannot work."""
    if task_kind(experiment.data) != NEXT_TOKEN:
        return
    loss = experiment.train.loss
    if loss not in NEXT_TOKEN_LOSSES:
        raise ExperimentError(
            f"train.loss: {loss!r} cannot score next tokens; use cross_entropy (or nll after "
            "a LogSoftmax with dim = -1)"
        )
    wanted = (experiment.data.block_size, vocab_size)
    if tuple(output_shape) != wanted:
        raise ModelBuildError(
            f"the model gives {list(output_shape)} per sample, but next-token training needs "
            f"a score for each of the {vocab_size} tokens at each of the {wanted[0]} positions: "
            f'{list(wanted)}; end the model with a Linear with out_features = "vocab" '
            "(and no LastStep or Flatten before it)"
        )


def perplexity(loss: float | None) -> float | None:
    """e^loss: the number of tokens the model hesitates between, on average."""
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 700.0))


def bits_per_token(loss: float | None) -> float | None:
    """The loss in bits (per character with the char tokenizer, per byte with byte)."""
    if loss is None or not math.isfinite(loss):
        return None
    return loss / LN2
