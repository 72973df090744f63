"""Model probe: histograms, gradient norms, dead ReLUs, conv filters and feature maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.engine.insight.model_probe import (
    GradientNormRecorder,
    Histogram,
    ModelProbe,
    feature_maps,
    filter_images,
    first_conv_filters,
    tile,
)
from workbench.engine.insight.outputs import snapshot_model


def batch(n: int = 32, features: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, features, generator=generator), torch.randint(
        0, 3, (n,), generator=generator
    )


def test_probe_measures_every_parameter_without_touching_grad_or_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = ModelProbe(bins=10)
    snapshot = probe.record(1, model, batch(), nn.CrossEntropyLoss())
    assert [s.name for s in snapshot.parameters] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
    ]  # fmt: skip
    weight = snapshot.parameter("0.weight")
    assert weight.layer == "0 (Linear)" and weight.shape == (8, 4)
    assert weight.weights.counts.sum() == 32 and len(weight.weights.edges) == 11
    assert weight.weight_norm == pytest.approx(float(model[0].weight.detach().norm()))
    assert weight.gradients is not None and weight.grad_norm is not None and weight.grad_norm > 0
    assert snapshot.total_grad_norm == pytest.approx(
        float(np.sqrt(sum(s.grad_norm**2 for s in snapshot.parameters if s.grad_norm)))
    )
    assert snapshot.loss is not None and snapshot.batch_size == 32
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_probe_keeps_one_snapshot_per_epoch_and_draws_gradient_norm_curves() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    probe = ModelProbe()
    for epoch in (1, 2, 2, 3):
        probe.record(epoch, model, batch(), nn.CrossEntropyLoss())
    assert [s.epoch for s in probe.snapshots] == [1, 2, 3]
    epochs, norms = probe.grad_norm_curves()["0.weight"]
    assert epochs == [1, 2, 3] and len(norms) == 3
    only_weights = probe.record(4, model)  # no batch: weights only
    assert only_weights.total_grad_norm is None and only_weights.parameters[0].gradients is None


def test_dead_relus_are_counted_per_unit() -> None:
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 3))
    with torch.no_grad():
        model[0].bias[:6] = -100.0  # six of ten units can never fire
    snapshot = ModelProbe().record(1, model, batch(), nn.CrossEntropyLoss())
    relu = snapshot.activations[0]
    assert relu.layer == "1" and relu.type == "ReLU"
    assert relu.dead_fraction == pytest.approx(0.6)
    assert relu.zero_fraction >= 0.6


def test_saturated_tanh_is_measured() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    with torch.no_grad():
        model[0].weight.mul_(1000)
    snapshot = ModelProbe().record(1, model, batch(), nn.CrossEntropyLoss())
    assert snapshot.activations[0].saturated_fraction > 0.8


def test_first_layer_filters_and_feature_maps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.Flatten())
    filters = first_conv_filters(model)
    assert filters is not None and filters.shape == (6, 1, 3, 3)
    assert filter_images(filters).shape == (6, 3, 3)
    maps = feature_maps(model, torch.randn(1, 12, 12))
    assert maps is not None and maps.shape == (6, 10, 10)
    second = feature_maps(model, torch.randn(1, 12, 12), layer="2")
    assert second is not None and second.shape == (4, 8, 8)
    assert first_conv_filters(nn.Linear(2, 2)) is None
    rgb = filter_images(np.zeros((5, 3, 3, 3)))
    assert rgb.shape == (5, 3, 3, 3)


def test_tile_lays_images_out_in_a_grid_with_gaps() -> None:
    mosaic = tile(np.arange(6 * 4, dtype=np.float32).reshape(6, 2, 2), columns=3)
    assert mosaic.shape == (2 * 2 + 1, 3 * 2 + 2)
    assert np.isnan(mosaic[2, 0]) and np.isnan(mosaic[0, 2])
    assert float(np.nanmin(mosaic)) == 0.0 and float(np.nanmax(mosaic)) == 1.0
    signed = tile(np.array([[[-2.0, 2.0]]]), symmetric=True)
    assert signed.tolist() == [[0.0, 1.0]]


def test_histogram_of_constant_values_and_of_nothing() -> None:
    constant = Histogram.of(torch.full((5,), 3.0), bins=4)
    assert constant.counts.sum() == 5 and constant.edges[0] < 3.0 < constant.edges[-1]
    empty = Histogram.of(torch.tensor([float("nan")]), bins=4)
    assert empty.counts.sum() == 0 and len(empty.centres) == 4


def test_gradient_norm_recorder_reads_grads_between_backward_and_step() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    recorder = GradientNormRecorder(every_n_steps=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        x, y = batch()
        nn.functional.cross_entropy(model(x), y).backward()
        recorder.on_after_backward(model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert recorder.steps == [1, 3]
    assert set(recorder.parameter_norms) == {"0.weight", "0.bias"}
    assert all(norm > 0 for norm in recorder.total_norms)


def test_snapshot_is_an_independent_copy() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    copy = snapshot_model(model)
    copy.eval()
    with torch.no_grad():
        copy[0].weight.zero_()
    assert model.training and float(model[0].weight.detach().abs().sum()) > 0
