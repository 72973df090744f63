"""Edits of a graph model as the window makes them: rename a layer, set its inputs, connect a
layer to a merge layer, set the input layer's shape; each checked, with a message naming the fix."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from workbench.engine.errors import WorkbenchError
from workbench.engine.layers import CATALOGUE
from workbench.engine.model_graph import layer_name, name_problem
from workbench.engine.model_planner import RESERVED_NAMES
from workbench.engine.model_spec import INPUT, LayerSpec, ModelSpec


class ModelEditError(WorkbenchError):
    """An edit of the model that cannot be made as asked (a taken name, a non-merge target)."""


def name_refusal(layers: Sequence[LayerSpec], row: int, name: str) -> str | None:
    """Why layer `row` cannot be called `name`, or None (an empty name is always fine)."""
    if not name:
        return None
    label = f"layer {row} ({layers[row].type})"
    problem = name_problem(name)
    if problem is None and name in RESERVED_NAMES:
        problem = f"'{name}' is already an attribute of every model; choose another name"
    if problem is None:
        taken = [index for index, layer in enumerate(layers) if index != row and layer.name == name]
        if taken:
            problem = f"the name '{name}' is already used by layer {taken[0]}; give each layer its own name"
    return None if problem is None else f"{label}: {problem}"


def renamed(spec: ModelSpec, row: int, name: str | None) -> ModelSpec:
    """Layer `row` named `name` (None or "": its position), the layers and outputs that took it
    by its old name following it; ModelEditError when the name cannot be used."""
    layers = spec.layers
    new = name or None
    refusal = name_refusal(layers, row, new or "")
    if refusal:
        raise ModelEditError(refusal)
    old_name, new_name = layer_name(layers[row], row), new if new is not None else str(row)

    def follow(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is None:
            return None
        return tuple(new_name if source == old_name else source for source in names)

    edited = tuple(
        dataclasses.replace(layer, name=new)
        if index == row
        else dataclasses.replace(layer, inputs=follow(layer.inputs))
        for index, layer in enumerate(layers)
    )
    return dataclasses.replace(spec, layers=edited, outputs=follow(spec.outputs))


def parse_inputs(text: str) -> tuple[str, ...] | None:
    """`bn2, relu1` -> ("bn2", "relu1"); empty text -> None (the previous layer)."""
    names = tuple(part for part in re.split(r"[\s,]+", text.strip().strip("[]")) if part)
    return tuple(name.strip("'\"") for name in names) or None


def with_inputs(spec: ModelSpec, row: int, inputs: tuple[str, ...] | None) -> ModelSpec:
    """Layer `row` taking `inputs` (None: the previous layer); the planner checks the names."""
    layers = list(spec.layers)
    layers[row] = dataclasses.replace(layers[row], inputs=inputs)
    return dataclasses.replace(spec, layers=tuple(layers))


def current_inputs(layers: Sequence[LayerSpec], row: int) -> tuple[str, ...]:
    """The names layer `row` takes: its own `inputs`, else the previous layer (or the input)."""
    layer = layers[row]
    if layer.inputs is not None:
        return tuple(layer.inputs)
    return (layer_name(layers[row - 1], row - 1),) if row else (INPUT,)


def connected(spec: ModelSpec, source: str, row: int) -> ModelSpec:
    """Merge layer `row` also taking the output of layer `source` (a name or "input"): the skip
    connection the diagram draws; ModelEditError when it cannot take it."""
    layers = spec.layers
    target = layers[row]
    kind = CATALOGUE.get(target.type)
    label = f"layer {row} ({target.type})"
    if kind is None or not kind.is_merge:
        raise ModelEditError(
            f"{label} takes one input; connect to a merge layer (Add, Mul or Concat), "
            "or add one after it"
        )
    if source == layer_name(target, row):
        raise ModelEditError(f"{label} cannot take its own output")
    inputs = current_inputs(layers, row)
    if source in inputs:
        raise ModelEditError(f"{label} already takes '{source}'")
    return with_inputs(spec, row, (*inputs, source))


def with_input_shape(spec: ModelSpec, text: str) -> ModelSpec:
    """The model with its input layer set from `50` or `3, 32, 32` (empty: from the data);
    ModelEditError naming the field when the text is not a shape."""
    cleaned = text.strip().strip("[]()").strip()
    if not cleaned:
        return dataclasses.replace(spec, input_shape=None)
    parts = [part for part in re.split(r"[\s,x×]+", cleaned) if part]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise ModelEditError(
            f"model.input_shape {text.strip()!r} is not a shape; give the positive size of each "
            "dimension of one sample, e.g. 50 or 3, 32, 32 (empty: the data's shape)"
        )
    return dataclasses.replace(spec, input_shape=tuple(int(part) for part in parts))
