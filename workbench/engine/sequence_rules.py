"""What sequence layers do to a shape: embeddings, recurrent layers, Transformer blocks.

Shapes are per sample: token ids are `[length]`, a sequence of vectors `[length, features]`.
The rules follow engine/layer_rules.py: infer what the input gives, refuse with the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.engine.layer_rules import (
    LayerRules,
    PlannedLayer,
    Shape,
    show_value,
    vocabulary_size,
)

if TYPE_CHECKING:
    from workbench.engine.layers import LayerType


# --------------------------------------------------------------------------- shapes


def _embedding(layer: PlannedLayer) -> Shape:
    args = layer.args
    if args["num_embeddings"] is None:
        args["num_embeddings"] = vocabulary_size(layer, "num_embeddings")
    elif layer.vocab_size is not None and args["num_embeddings"] < layer.vocab_size:
        raise layer.bad_param(
            f"num_embeddings = {args['num_embeddings']}, but the vocabulary has "
            f"{layer.vocab_size} tokens; remove num_embeddings to take it from the vocabulary"
        )
    return (*layer.input_shape, args["embedding_dim"])


def _positional(layer: PlannedLayer) -> Shape:
    length, features = layer.input_shape
    given = layer.args["num_positions"]
    if given is None:
        layer.args["num_positions"] = length
    elif given < length:
        raise layer.bad_input(
            f"num_positions = {given}, but the input has {length} positions; remove "
            "num_positions to learn one per position (data.block_size)"
        )
    layer.infer("embedding_dim", features, "feature")
    return layer.input_shape


def _recurrent(layer: PlannedLayer) -> Shape:
    args = layer.args
    layer.infer("input_size", layer.input_shape[-1], "feature")
    if args["dropout"] > 0 and args["num_layers"] == 1:
        raise layer.bad_param(
            f"dropout = {show_value(args['dropout'])} drops between stacked layers, and "
            "num_layers = 1 stacks none; raise num_layers, or put a Dropout layer after it"
        )
    directions = 2 if args["bidirectional"] else 1
    return (layer.input_shape[0], args["hidden_size"] * directions)


def _last_step(layer: PlannedLayer) -> Shape:
    return (layer.input_shape[-1],)


def _heads(layer: PlannedLayer, size: str, heads: str) -> Shape:
    """Transformer layers: the width follows the input and must split evenly into heads."""
    layer.infer(size, layer.input_shape[-1], "feature")
    width, count = layer.args[size], layer.args[heads]
    if width % count:
        divisors = [n for n in range(1, width + 1) if width % n == 0 and n <= 16]
        raise layer.bad_input(
            f"{heads} = {count} does not divide the width {width}; use a divisor of it, "
            f"e.g. {heads} = {max(divisors)}"
        )
    return layer.input_shape


def _block(layer: PlannedLayer) -> Shape:
    return _heads(layer, "embed_dim", "heads")


def _encoder_layer(layer: PlannedLayer) -> Shape:
    return _heads(layer, "d_model", "nhead")


# --------------------------------------------------------------------------- MACs (per sample)


def _recurrent_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    args = layer.args
    gates = 4 if layer.kind.name == "LSTM" else 3
    hidden, directions = args["hidden_size"], 2 if args["bidirectional"] else 1
    total, inputs = 0, args["input_size"]
    for _ in range(args["num_layers"]):
        total += directions * gates * (inputs * hidden + hidden * hidden)
        inputs = hidden * directions
    return int(layer.input_shape[0] * total)


def _attention_macs(length: int, width: int, hidden: int) -> int:
    """Projections (q, k, v, out: 4 w^2) and the MLP (2 w h) per position, plus the
    attention scores and their weighted sum (2 t w) for every position."""
    return length * (4 * width * width + 2 * width * hidden) + 2 * length * length * width


def _block_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    width = layer.args["embed_dim"]
    return _attention_macs(output_shape[0], width, layer.args["mlp_ratio"] * width)


def _encoder_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    args = layer.args
    return _attention_macs(output_shape[0], args["d_model"], args["dim_feedforward"])


def _embedding_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    return 0  # a table lookup


# --------------------------------------------------------------------------- labels


def _size(value: Any) -> str:
    return "?" if value is None else str(value)


def _embedding_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    return f"{_size(values.get('num_embeddings'))} → {_size(values.get('embedding_dim'))}"


def _positional_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    return f"{_size(values.get('num_positions'))} × {_size(values.get('embedding_dim'))}"


def _recurrent_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    text = f"{_size(values.get('input_size'))} → {_size(values.get('hidden_size'))}"
    if values.get("num_layers", 1) != 1:
        text += f", {values['num_layers']} layers"
    return text + (", bidirectional" if values.get("bidirectional") else "")


def _block_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    width = values.get("embed_dim", values.get("d_model"))
    heads = values.get("heads", values.get("nhead"))
    text = f"{_size(width)}, {_size(heads)} heads"
    return text + (", causal" if values.get("causal") else "")


EMBEDDING = LayerRules(_embedding, _embedding_macs, _embedding_label)
POSITIONAL = LayerRules(_positional, label=_positional_label)
RECURRENT = LayerRules(_recurrent, _recurrent_macs, _recurrent_label)
LAST_STEP = LayerRules(_last_step)
TRANSFORMER_BLOCK = LayerRules(_block, _block_macs, _block_label)
ENCODER_LAYER = LayerRules(_encoder_layer, _encoder_macs, _block_label)
