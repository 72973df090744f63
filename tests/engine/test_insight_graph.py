"""The autograd graph: grad_fn nodes of one forward pass, parameter leaves named, in layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.autograd_graph import (
    PARAMETER,
    ROOT,
    autograd_graph,
    graph_of,
    layered_layout,
)


def toy_mlp() -> nn.Module:
    return build_experiment_model(load_experiment(PRESETS / "toy-mlp.toml")).module


def test_mlp_graph_holds_the_grad_fn_nodes_and_named_parameter_leaves() -> None:
    model = toy_mlp()
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    graph = autograd_graph(model, x, y, nn.CrossEntropyLoss())
    assert {"AddmmBackward0", "ReluBackward0", "AccumulateGrad", "TBackward0"} <= graph.names
    assert {"NllLossBackward0", "LogSoftmaxBackward0"} <= graph.names  # inside cross-entropy
    assert graph.parameters == {f"{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
    root = graph.nodes[0]
    assert root.kind == ROOT and root.name == "NllLossBackward0" and root.depth == 0
    leaves = [node for node in graph.nodes if node.kind == PARAMETER]
    assert len(leaves) == 6 and all(node.name == "AccumulateGrad" for node in leaves)
    first_weight = next(node for node in leaves if node.parameter == "0.weight")
    assert first_weight.shape == (30, 2) and first_weight.label == "0.weight"
    assert first_weight.depth == graph.depth  # the first layer is the farthest from the loss
    assert sum(node.name == "ReluBackward0" for node in graph.nodes) == 2
    # Every edge points from an input of an operation towards the loss: depth goes down by >= 1.
    depth = {node.id: node.depth for node in graph.nodes}
    assert all(depth[source] > depth[target] for source, target in graph.edges)
    assert all(p.grad is None for p in model.parameters())  # nothing was backpropagated


def test_graph_without_a_loss_is_rooted_at_the_output() -> None:
    graph = autograd_graph(toy_mlp(), torch.randn(2, 2))
    assert graph.nodes[0].name == "AddmmBackward0"


def test_a_tensor_without_grad_fn_is_refused() -> None:
    with pytest.raises(ValueError, match="no grad_fn"):
        graph_of(torch.ones(3))


def test_dropout_stays_out_so_the_runs_random_sequence_is_untouched() -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    x = torch.randn(3, 2)
    state = torch.random.get_rng_state()
    graph = autograd_graph(model, x)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not any("Dropout" in name for name in graph.names)
    assert model.training  # the caller's mode is restored


def test_layered_layout_puts_parameters_on_top_and_the_loss_at_the_bottom() -> None:
    graph = autograd_graph(
        toy_mlp(), torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), nn.CrossEntropyLoss()
    )
    layout = layered_layout(graph)
    assert set(layout) == {node.id for node in graph.nodes}
    assert layout[0][0] == graph.depth  # the root's row is the last one
    rows: dict[int, list[float]] = {}
    for row, position in layout.values():
        rows.setdefault(row, []).append(position)
    for positions in rows.values():  # distinct, centred positions in each row
        assert len(set(positions)) == len(positions)
        assert sum(positions) == pytest.approx(0.0)
