"""The autograd graph of one forward pass: the grad_fn nodes that `loss.backward()` walks.

Nodes are autograd Function objects (`AddmmBackward0`, `ReluBackward0`, ...), found by
walking `loss.grad_fn.next_functions`; the `AccumulateGrad` leaves hold the parameters and
are named after them through `id(variable)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.insight.outputs import mode, model_device

ROOT, OPERATION, PARAMETER = "root", "operation", "parameter"


@dataclass(frozen=True)
class GraphNode:
    """One autograd node. `depth` is its longest distance from the root (0), so drawing the
    nodes in rows by depth puts every edge pointing the same way."""

    id: int
    name: str  # the grad_fn's class name, e.g. "AddmmBackward0" or "AccumulateGrad"
    kind: str  # ROOT, OPERATION or PARAMETER
    depth: int
    parameter: str | None = None  # "0.weight" for a parameter leaf
    shape: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return self.parameter if self.parameter is not None else self.name


@dataclass(frozen=True)
class AutogradGraph:
    """Nodes and edges (`source`, `target`) pointing the way the forward pass went; backward
    walks them in reverse, from the root to every parameter."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def names(self) -> set[str]:
        return {node.name for node in self.nodes}

    @property
    def parameters(self) -> set[str]:
        return {node.parameter for node in self.nodes if node.parameter is not None}

    @property
    def depth(self) -> int:
        return max((node.depth for node in self.nodes), default=0)


def graph_of(
    tensor: torch.Tensor, model: nn.Module | None = None, max_nodes: int = 2000
) -> AutogradGraph:
    """Walk `tensor.grad_fn` and its `next_functions`; name parameter leaves from `model`."""
    if tensor.grad_fn is None:
        raise ValueError(
            "the tensor has no grad_fn: it was not computed from parameters that require grad"
        )
    names = {id(p): name for name, p in model.named_parameters()} if model is not None else {}
    ids: dict[int, int] = {}
    functions: list[Any] = []
    edges: list[tuple[int, int]] = []
    stack = [tensor.grad_fn]
    ids[id(tensor.grad_fn)] = 0
    functions.append(tensor.grad_fn)
    while stack:
        function = stack.pop()
        for child, _ in function.next_functions:
            if child is None:
                continue
            if id(child) not in ids:
                if len(functions) >= max_nodes:
                    continue
                ids[id(child)] = len(functions)
                functions.append(child)
                stack.append(child)
            edges.append((ids[id(child)], ids[id(function)]))
    depths = _longest_depths(len(functions), edges)
    nodes = tuple(
        _node(index, function, depths[index], names) for index, function in enumerate(functions)
    )
    return AutogradGraph(nodes, tuple(dict.fromkeys(edges)))


def _node(index: int, function: Any, depth: int, names: dict[int, str]) -> GraphNode:
    name = type(function).__name__
    variable = getattr(function, "variable", None)
    if variable is not None:
        label = names.get(id(variable), f"tensor {tuple(variable.shape)}")
        return GraphNode(index, name, PARAMETER, depth, label, tuple(variable.shape))
    return GraphNode(index, name, ROOT if index == 0 else OPERATION, depth)


def _longest_depths(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Longest path from the root (node 0) to each node, against the edges' direction."""
    children: list[list[int]] = [[] for _ in range(count)]
    indegree = [0] * count
    for source, target in set(edges):
        children[target].append(source)
        indegree[source] += 1
    depths = [0] * count
    ready = [index for index in range(count) if indegree[index] == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            depths[child] = max(depths[child], depths[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return depths


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autograd_graph(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
) -> AutogradGraph:
    """The graph of one training-mode forward pass of `inputs` (a batch), rooted at the loss
    when `targets` and `loss_fn` are given, else at the output. Nothing is backpropagated.

    Run it on a `snapshot_model` copy while the original trains: batch-norm layers update
    their running statistics in train mode.
    """
    device = model_device(model)
    with torch.enable_grad(), mode(model, training=True):
        output = model(inputs.to(device))
        root = output
        if targets is not None and loss_fn is not None:
            root = loss_fn(output, targets.to(device))
        return graph_of(root, model)


def layered_layout(graph: AutogradGraph, sweeps: int = 4) -> dict[int, tuple[int, float]]:
    """(row, position in row) per node: rows by depth, deepest (the inputs' side) first, and
    order within a row by the mean position of neighbours, which untangles most crossings."""
    rows: dict[int, list[int]] = {}
    for node in graph.nodes:
        rows.setdefault(graph.depth - node.depth, []).append(node.id)
    neighbours: dict[int, list[int]] = {node.id: [] for node in graph.nodes}
    for source, target in graph.edges:
        neighbours[source].append(target)
        neighbours[target].append(source)
    position = {node: float(index) for row in rows.values() for index, node in enumerate(row)}
    order = sorted(rows)
    for sweep in range(sweeps):
        for row in order if sweep % 2 == 0 else reversed(order):
            members = rows[row]
            members.sort(
                key=lambda member: _mean(
                    [position[n] for n in neighbours[member]], position[member]
                )
            )
            for index, member in enumerate(members):
                position[member] = float(index) - (len(members) - 1) / 2
    return {member: (row, position[member]) for row, members in rows.items() for member in members}


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default
