"""The model as a graph: layer names and inputs resolved, checked, and put in running order.

Torch-free on purpose: the experiment file is checked with it when it is read.
"""

from __future__ import annotations

import difflib
import heapq
import keyword
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbench.engine.model_spec import INPUT, LayerSpec, ModelSpec


@dataclass(frozen=True)
class StructureProblem:
    """Something wrong with how layers connect, found without knowing any shapes."""

    where: str  # the key path: "model.layers[5]", "model.outputs", "model.blocks.Basic"
    message: str
    index: int | None = None  # the layer's position in its list
    name: str | None = None  # the layer's own name, when it has one
    block: str | None = None  # the block the layer is in; None: the model

    def located(self) -> str:
        """`model.layers[5] ('skip'): message`, as a message about a file reads."""
        named = f" ('{self.name}')" if self.name is not None else ""
        return f"{self.where}{named}: {self.message}"


@dataclass(frozen=True)
class GraphNode:
    index: int  # position in the layer list
    name: str  # the given name, else the position ("0", "1", ...)
    layer: LayerSpec
    inputs: tuple[str, ...]  # names of the nodes it takes, or INPUT


@dataclass(frozen=True)
class Graph:
    """One layer list (the model's or a block's) with its connections resolved.

    `order` runs the nodes so that each comes after its inputs, keeping the file's order where
    the connections allow; nodes caught in a cycle are left out of it.
    """

    where: str  # "model" or "model.blocks.NAME"
    nodes: tuple[GraphNode, ...]
    order: tuple[int, ...]
    output: str | None
    problems: tuple[StructureProblem, ...]
    block: str | None = None

    @property
    def is_chain(self) -> bool:
        """Each layer takes the one before it and the last is the output: an nn.Sequential."""
        if self.problems or not self.nodes:
            return False
        previous = INPUT
        for node in self.nodes:
            if node.inputs != (previous,):
                return False
            previous = node.name
        return self.output == previous

    def node(self, name: str) -> GraphNode:
        return next(node for node in self.nodes if node.name == name)

    def key_path(self, index: int) -> str:
        return f"{self.where}.layers[{index}]"


def layer_name(layer: LayerSpec, index: int) -> str:
    """The module name a layer gets: its own name, else its position."""
    return layer.name if layer.name is not None else str(index)


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a layer (it becomes a Python attribute), or None."""
    if name == INPUT:
        return f"the name '{INPUT}' stands for the input in `inputs`; give the layer another name"
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        return (
            f"the name {name!r} cannot be a module attribute; use letters, digits and "
            "underscores, starting with a letter, e.g. 'conv1'"
        )
    return None


def model_graph(spec: ModelSpec) -> Graph:
    return resolve_graph(spec.layers, spec.outputs, "model")


def block_graph(spec: ModelSpec, block: str) -> Graph:
    definition = spec.blocks[block]
    return resolve_graph(definition.layers, definition.outputs, f"model.blocks.{block}", block)


def structure_problems(spec: ModelSpec) -> list[StructureProblem]:
    """Every connection problem of the model and its blocks, model first; none for no layers."""
    problems = list(model_graph(spec).problems) if spec.layers else []
    for block in spec.blocks:
        own = block_problems(spec, block)
        problems += own or list(block_graph(spec, block).problems)
    return problems


def block_problems(spec: ModelSpec, block: str) -> list[StructureProblem]:
    """What is wrong with a block as a whole (its name, no layers, using itself)."""
    where = f"model.blocks.{block}"
    if not block.isidentifier() or keyword.iskeyword(block) or not block.isascii():
        message = (
            f"the block name {block!r} is used as a layer type and a class name; use letters, "
            "digits and underscores, starting with a letter, e.g. 'BasicBlock'"
        )
        return [StructureProblem(f"model.blocks.{block!r}", message, block=block)]
    if not spec.blocks[block].layers:
        message = 'the block has no layers; give it layers = [ { type = "..." }, ... ]'
        return [StructureProblem(where, message, block=block)]
    cycle = _block_cycle(spec, block)
    if cycle is not None:
        message = (
            f"the block uses itself ({' -> '.join(cycle)}); a block can use other blocks, "
            "but not one that leads back to it"
        )
        return [StructureProblem(where, message, block=block)]
    return []


def _block_cycle(spec: ModelSpec, start: str) -> list[str] | None:
    """The chain of block uses that leads from `start` back to it, or None."""
    path = [start]

    def visit(block: str) -> bool:
        for layer in spec.blocks[block].layers:
            if layer.type == start:
                path.append(start)
                return True
            if layer.type in spec.blocks and layer.type not in path:
                path.append(layer.type)
                if visit(layer.type):
                    return True
                path.pop()
        return False

    return path if visit(start) else None


# --------------------------------------------------------------------------- one layer list


def resolve_graph(
    layers: Sequence[LayerSpec],
    outputs: Sequence[str] | None,
    where: str,
    block: str | None = None,
) -> Graph:
    """Names, inputs and the output of one layer list, checked; problems in layer order."""
    found: list[StructureProblem] = []

    def problem(message: str, index: int | None = None, on: str | None = None) -> None:
        path = f"{where}.layers[{index}]" if index is not None else on or where
        name = layers[index].name if index is not None else None
        found.append(StructureProblem(path, message, index, name, block))

    names = [layer_name(layer, index) for index, layer in enumerate(layers)]
    owners: dict[str, int] = {}  # name -> the layer it names (valid names only)
    for index, layer in enumerate(layers):
        bad = None if layer.name is None else name_problem(layer.name)
        if bad is not None:
            problem(bad, index)
            continue
        if names[index] in owners:
            problem(
                f"the name '{names[index]}' is already used by layer {owners[names[index]]}; "
                "give each layer its own name",
                index,
            )
        owners.setdefault(names[index], index)
    nodes = tuple(
        GraphNode(index, names[index], layer, _inputs(layer, names, index))
        for index, layer in enumerate(layers)
    )
    input_word = "the block's input" if block else "the model's input"
    for node in nodes:
        if not node.inputs:
            problem(f'inputs is empty; name the layers it takes, or "{INPUT}"', node.index)
        for source in node.inputs:
            if source == node.name:
                problem("inputs: a layer cannot take its own output", node.index)
            elif source != INPUT and source not in owners:
                hint = _suggestion(source, [*owners, INPUT])
                problem(
                    f"inputs: '{source}' is not a layer here{hint}; use a layer's name, or "
                    f'"{INPUT}" for {input_word}',
                    node.index,
                )
    output = _output(outputs, names, problem, where)
    order, cyclic = _running_order(nodes, owners)
    if cyclic:
        cycle = _find_cycle(nodes, owners, cyclic)
        shown = " <- ".join(nodes[i].name for i in [*cycle, cycle[0]])
        problem(
            f"its inputs go round in a cycle ({shown}); a layer can only take outputs of "
            "layers that do not depend on it",
            min(cycle),
        )
    if not found and output is not None:
        for index in _unused(nodes, owners, output):
            problem(
                "nothing takes its output and it is not the output; name it in another "
                "layer's inputs, or remove it",
                index,
            )
    found.sort(key=lambda p: (p.index is None, p.index or 0))
    return Graph(where, nodes, tuple(order), output, tuple(found), block)


def _inputs(layer: LayerSpec, names: Sequence[str], index: int) -> tuple[str, ...]:
    if layer.inputs is not None:
        return tuple(layer.inputs)
    return (names[index - 1],) if index else (INPUT,)


def _suggestion(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _output(
    outputs: Sequence[str] | None, names: Sequence[str], problem: Callable[..., None], where: str
) -> str | None:
    if outputs is None:
        return names[-1] if names else None
    on = f"{where}.outputs"
    if len(outputs) != 1:
        problem(
            f"{len(outputs)} outputs; the loss takes one output, so name one layer, "
            f'e.g. outputs = ["{names[-1] if names else "fc"}"]',
            on=on,
        )
        return None
    output = outputs[0]
    if output not in names:
        problem(
            f"'{output}' is not a layer here{_suggestion(output, names)}; name the layer whose "
            "output the model gives",
            on=on,
        )
        return None
    return output


def _running_order(
    nodes: Sequence[GraphNode], owners: dict[str, int]
) -> tuple[list[int], list[int]]:
    """Kahn's algorithm taking the earliest ready layer first: a chain keeps its file order.

    Returns the order and the layers left out because they sit in (or after) a cycle.
    """
    waiting = [0] * len(nodes)
    takers: list[list[int]] = [[] for _ in nodes]
    for node in nodes:
        for source in set(node.inputs):
            if source in owners and owners[source] != node.index:
                waiting[node.index] += 1
                takers[owners[source]].append(node.index)
    ready = [node.index for node in nodes if waiting[node.index] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for taker in takers[index]:
            waiting[taker] -= 1
            if waiting[taker] == 0:
                heapq.heappush(ready, taker)
    left = sorted(set(range(len(nodes))) - set(order))
    return order, left


def _find_cycle(nodes: Sequence[GraphNode], owners: dict[str, int], left: list[int]) -> list[int]:
    """One cycle among the layers left over: follow inputs until a layer repeats."""
    remaining = set(left)
    path = [left[0]]
    while True:
        node = nodes[path[-1]]
        step = next(owners[s] for s in node.inputs if s in owners and owners[s] in remaining)
        if step in path:
            return path[path.index(step) :]
        path.append(step)


def _unused(nodes: Sequence[GraphNode], owners: dict[str, int], output: str) -> list[int]:
    """Layers whose output never reaches the model's output."""
    reached = {owners[output]}
    stack = [owners[output]]
    while stack:
        for source in nodes[stack.pop()].inputs:
            index = owners.get(source)
            if index is not None and index not in reached:
                reached.add(index)
                stack.append(index)
    return [node.index for node in nodes if node.index not in reached]
