"""Module tree, layer-type guesses, lazy statistics and histograms of a state_dict."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workbench.engine.checkpoints import (
    build_module_tree,
    inspection,
    tensor_histogram,
    tensor_infos,
    tensor_stats,
)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, 2)


def test_tensor_infos_give_shape_dtype_numel_bytes() -> None:
    state = {"a.weight": torch.zeros(3, 4), "a.steps": torch.zeros((), dtype=torch.int64)}
    infos = tensor_infos(state)
    assert [(i.key, i.shape, i.dtype, i.numel, i.nbytes, i.device) for i in infos] == [
        ("a.weight", (3, 4), "float32", 12, 48, "cpu"),
        ("a.steps", (), "int64", 1, 8, "cpu"),
    ]


def test_module_tree_groups_keys_with_totals() -> None:
    tree = build_module_tree(Mixed().state_dict())
    assert [child.name for child in tree.children] == ["features", "head"]
    features = tree.children[0]
    assert [child.path for child in features.children] == ["features.0", "features.1"]
    conv, norm = features.children
    assert conv.parameters == 4 * 9 + 4
    # BatchNorm's running statistics are buffers: counted in numel, not in parameters.
    assert norm.parameters == 8
    assert norm.numel == 8 + 4 + 4 + 1
    assert features.parameters == 40 + 8
    assert tree.parameters == 48 + 10
    assert tree.nbytes == sum(t.numel() * t.element_size() for t in Mixed().state_dict().values())


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (nn.Linear(4, 3), "Linear"),
        (nn.Linear(4, 3, bias=False), "Embedding"),  # indistinguishable by shape; documented
        (nn.Embedding(10, 3), "Embedding"),
        (nn.Conv1d(2, 3, 3), "Conv1d"),
        (nn.Conv2d(2, 3, 3), "Conv2d"),
        (nn.Conv3d(2, 3, 3), "Conv3d"),
        (nn.ConvTranspose2d(2, 3, 3), "ConvTranspose2d"),
        (nn.BatchNorm1d(3), "BatchNorm"),
        (nn.BatchNorm2d(3), "BatchNorm"),
        (nn.LayerNorm(3), "LayerNorm"),
        (nn.RMSNorm(3), "RMSNorm"),
        (nn.LSTM(3, 5), "LSTM"),
        (nn.GRU(3, 5), "GRU"),
        (nn.RNN(3, 5), "RNN"),
        (nn.MultiheadAttention(8, 2), "MultiheadAttention"),
    ],
)
def test_layer_type_guess(module: nn.Module, expected: str) -> None:
    tree = build_module_tree({f"layer.{k}": v for k, v in module.state_dict().items()})
    assert tree.children[0].layer_type == expected


def test_no_guess_for_unknown_shapes() -> None:
    tree = build_module_tree(
        {"odd.scale": torch.ones(3), "odd.weight": torch.ones(2, 2, 2, 2, 2, 2)}
    )
    assert tree.children[0].layer_type is None


def test_stats_over_finite_values_with_nan_and_inf_counted_apart() -> None:
    values = torch.tensor([0.0, 1.0, 2.0, 3.0, math.nan, math.inf])
    stats = tensor_stats(values)
    assert (stats.min, stats.max, stats.mean) == (0.0, 3.0, 1.5)
    assert stats.std == pytest.approx(math.sqrt(1.25))
    assert stats.zero_fraction == pytest.approx(1 / 6)
    assert (stats.nan_count, stats.inf_count, stats.numel) == (1, 1, 6)


def test_stats_are_the_same_when_computed_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    values = torch.randn(1001) * 3 + 100
    whole = tensor_stats(values)
    monkeypatch.setattr(inspection, "_CHUNK", 7)
    chunked = tensor_stats(values)
    assert chunked.mean == pytest.approx(whole.mean, rel=1e-12)
    assert chunked.std == pytest.approx(whole.std, rel=1e-9)
    assert chunked.std == pytest.approx(float(values.double().std(unbiased=False)), rel=1e-9)
    assert (chunked.min, chunked.max) == (whole.min, whole.max)


def test_stats_of_integer_and_bool_tensors() -> None:
    assert tensor_stats(torch.tensor([2, 4], dtype=torch.int64)).mean == 3.0
    assert tensor_stats(torch.tensor([True, False, False, False])).zero_fraction == 0.75


def test_stats_of_all_nan_tensor() -> None:
    stats = tensor_stats(torch.full((3,), math.nan))
    assert math.isnan(stats.mean) and stats.nan_count == 3


def test_histogram_counts_finite_values_per_bin() -> None:
    values = torch.tensor([0.0, 0.1, 0.9, 1.0, math.nan])
    histogram = tensor_histogram(values, bins=2)
    assert histogram.edges == (0.0, 0.5, 1.0)
    assert histogram.counts == (2, 2)


def test_histogram_of_constant_tensor_has_one_filled_bin() -> None:
    histogram = tensor_histogram(torch.ones(5), bins=3)
    assert sum(histogram.counts) == 5 and max(histogram.counts) == 5
