"""How to read a model's outputs as class probabilities, whatever its last layer is."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

OUTPUT_KINDS = ("logits", "log-probabilities", "probabilities")
_TOLERANCE = 1e-3


def output_kind(output: torch.Tensor) -> str:
    """What a [batch, classes] output holds: raw logits, log-probabilities (after LogSoftmax)
    or probabilities (after Softmax). A single column is a binary logit."""
    if output.dim() != 2 or output.shape[1] < 2 or output.numel() == 0:
        return "logits"
    values = output.detach().float()
    if bool((values >= 0).all()) and bool(((values.sum(1) - 1).abs() < _TOLERANCE).all()):
        return "probabilities"
    if bool((values <= 0).all()) and bool(((values.exp().sum(1) - 1).abs() < _TOLERANCE).all()):
        return "log-probabilities"
    return "logits"


def class_probabilities(output: torch.Tensor) -> torch.Tensor:
    """[batch, classes] probabilities: softmax of logits (softmax of log-probabilities is the
    same thing), probabilities as they are, and sigmoid for a single binary logit."""
    output = output.detach().float().reshape(len(output), -1)
    if output.shape[1] == 1:
        positive = torch.sigmoid(output)
        return torch.cat([1 - positive, positive], dim=1)
    if output_kind(output) == "probabilities":
        return output
    return torch.softmax(output, dim=1)


def class_log_probabilities(output: torch.Tensor) -> torch.Tensor:
    """[batch, classes] log-probabilities, computed stably where the output allows it."""
    output = output.detach().float().reshape(len(output), -1)
    if output.shape[1] == 1:
        return torch.cat([nn.functional.logsigmoid(-output), nn.functional.logsigmoid(output)], 1)
    if output_kind(output) == "probabilities":
        return output.clamp_min(1e-12).log()
    return torch.log_softmax(output, dim=1)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def mode(model: nn.Module, training: bool, dropout: bool = False) -> Iterator[nn.Module]:
    """Put the model in train or eval mode for a moment and restore each module's own mode.

    Dropout stays off (unless `dropout`) even in train mode: it draws from torch's global
    random generator, and an inspection must not shift the random sequence of a run training
    in another thread. Only call this from the thread that trains the model, or on a
    `snapshot_model` copy: flipping the mode of a model another thread is training would
    change its batch-norm behaviour under it.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.train(training)
    if not dropout:
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.train(False)
    try:
        yield model
    finally:
        for module, was_training in modes:
            module.training = was_training


def snapshot_model(model: nn.Module) -> nn.Module:
    """A detached copy to inspect while the original keeps training in another thread.

    The copy shares nothing with the original, so the insight functions may switch it to eval
    mode, run it and hook it freely. A copy taken mid-step may mix weights of two consecutive
    steps, which is harmless for pictures.
    """
    with torch.no_grad():
        return copy.deepcopy(model)
