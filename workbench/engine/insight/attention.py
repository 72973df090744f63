"""Where a Transformer looks: the attention probabilities of each layer and head for a prompt.

Both attention layers of the catalogue are read: TransformerBlock's SelfAttention (recomputed
from its input, since scaled_dot_product_attention never forms them) and the
nn.MultiheadAttention inside TransformerEncoderLayer (asked for its per-head weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.engine.datasets.text import token_label
from workbench.engine.generation import TextModel
from workbench.engine.insight.outputs import mode, model_device
from workbench.engine.sequence_layers import SelfAttention


@dataclass(frozen=True, eq=False)
class AttentionMap:
    """One layer's attention: row i of head h says how position i spreads its attention over
    the positions (columns), summing to 1; a causal layer leaves the upper triangle at 0."""

    layer: str  # the module path, e.g. "blocks.0.attn"
    weights: np.ndarray[Any, np.dtype[np.float32]]  # [heads, length, length]

    @property
    def heads(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True, eq=False)
class PromptAttention:
    """The prompt's tokens (as labels for the axes) and every layer's map, in running order."""

    tokens: tuple[str, ...]
    maps: tuple[AttentionMap, ...]


def attention_maps(model: nn.Module, token_ids: Sequence[int]) -> list[AttentionMap]:
    """Run the model once on `token_ids` and return each attention layer's probabilities."""
    captured: list[tuple[str, nn.Module, tuple[Any, ...], dict[str, Any]]] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SelfAttention | nn.MultiheadAttention):
            handles.append(
                module.register_forward_pre_hook(_capture(name, captured), with_kwargs=True)
            )
    x = torch.tensor([list(token_ids)], dtype=torch.long, device=model_device(model))
    with torch.inference_mode(), mode(model, training=False):
        try:
            model(x)
        finally:
            for handle in handles:
                handle.remove()
        return [_weights(name, module, args, kwargs) for name, module, args, kwargs in captured]


def _capture(name: str, found: list[tuple[str, nn.Module, tuple[Any, ...], dict[str, Any]]]) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        found.append((name, module, args, dict(kwargs)))

    return hook


def _weights(
    name: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AttentionMap:
    if isinstance(module, SelfAttention):
        weights = module.weights(args[0])[0]
    else:
        query, key, value = args[:3]
        _, weights = module(
            query,
            key,
            value,
            attn_mask=kwargs.get("attn_mask"),
            need_weights=True,
            average_attn_weights=False,
        )
        weights = weights[0]
    return AttentionMap(name, weights.float().cpu().numpy())


def prompt_attention(text_model: TextModel, prompt: str) -> PromptAttention:
    """The attention maps of a trained text model reading `prompt` (at most block_size tokens,
    the last ones); what the window's attention view draws."""
    ids = text_model.prompt_ids(prompt)[-text_model.block_size :]
    decoder = text_model.vocabulary.decoder()
    tokens = tuple(token_label(decoder.piece(token)) or "·" for token in ids)
    return PromptAttention(tokens, tuple(attention_maps(text_model.model, ids)))
