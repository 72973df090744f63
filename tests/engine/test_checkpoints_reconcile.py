"""Reconcile with a model, diff two checkpoints, save .pth/.safetensors bit-identically."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.engine.checkpoints import (
    apply_renames,
    diff_state_dicts,
    load_strict,
    open_checkpoint,
    reconcile,
    save_state_dict,
)
from workbench.engine.errors import CheckpointError


class MnistCnn(nn.Module):
    """The PyTorch MNIST example network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.fc2(self.dropout2(F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))))
        return F.log_softmax(x, dim=1)


class RenamedCnn(nn.Module):
    """The same network whose convolutions are called embed_1 / embed_2."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_1 = nn.Conv2d(1, 32, 3, 1)
        self.embed_2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)


def test_renamed_layers_are_paired_by_order_and_shape_and_strict_load_passes() -> None:
    torch.manual_seed(0)
    trained = MnistCnn().state_dict()
    target = RenamedCnn()
    result = reconcile(trained, target)
    assert not result.fits
    assert result.matched == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert result.missing == ["embed_1.weight", "embed_1.bias", "embed_2.weight", "embed_2.bias"]
    assert result.unexpected == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    assert result.suggested_renames == {
        "conv1.weight": "embed_1.weight",
        "conv1.bias": "embed_1.bias",
        "conv2.weight": "embed_2.weight",
        "conv2.bias": "embed_2.bias",
    }
    assert result.fits_after_renames
    load_strict(target, apply_renames(trained, result))
    assert torch.equal(target.embed_2.weight, trained["conv2.weight"])


def test_wrapper_prefix_is_suggested_away() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    ddp = {f"module.{k}": v for k, v in model.state_dict().items()}
    result = reconcile(ddp, model)
    assert result.suggested_renames == {f"module.{k}": k for k in model.state_dict()}
    assert result.fits_after_renames


def test_wrong_shapes_are_reported_and_not_renamed_away() -> None:
    file_state = nn.Linear(4, 3).state_dict()
    model = nn.Linear(4, 5)
    result = reconcile(file_state, model)
    assert [(m.key, m.file_shape, m.model_shape) for m in result.wrong_shape] == [
        ("weight", (3, 4), (5, 4)),
        ("bias", (3,), (5,)),
    ]
    assert not result.fits and not result.fits_after_renames
    with pytest.raises(CheckpointError, match=r"weight file \[3, 4\] vs model \[5, 4\]"):
        load_strict(model, file_state)


def test_fitting_file_needs_nothing() -> None:
    model = MnistCnn()
    result = reconcile(model.state_dict(), model)
    assert result.fits and result.suggested_renames == {}


# --- diff -----------------------------------------------------------------------------------


def test_diff_reports_keys_shapes_dtypes_and_value_changes() -> None:
    a = {
        "same": torch.ones(3),
        "changed": torch.tensor([3.0, 4.0]),
        "gone": torch.ones(1),
        "reshaped": torch.ones(2, 2),
        "recast": torch.ones(2),
    }
    b = {
        "same": torch.ones(3),
        "changed": torch.tensor([3.0, 4.5]),
        "new": torch.ones(1),
        "reshaped": torch.ones(4),
        "recast": torch.ones(2, dtype=torch.float16),
    }
    diff = diff_state_dicts(a, b)
    assert (diff.only_in_a, diff.only_in_b) == (["gone"], ["new"])
    assert diff.shape_changed == [("reshaped", (2, 2), (4,))]
    assert diff.dtype_changed == [("recast", "float32", "float16")]
    changed = {c.key: c for c in diff.changed}
    assert set(changed) == {"changed", "recast"}
    assert changed["changed"].max_abs_diff == 0.5
    assert changed["changed"].relative_norm == pytest.approx(0.5 / 5.0)
    assert changed["recast"].max_abs_diff == 0.0  # same values, different dtype
    assert not diff.identical


def test_diff_of_identical_files_and_nan_positions() -> None:
    a = {"x": torch.tensor([1.0, math.nan])}
    diff = diff_state_dicts(a, {"x": torch.tensor([1.0, math.nan])})
    assert diff.identical
    other = diff_state_dicts(a, {"x": torch.tensor([1.0, 2.0])})
    assert other.changes[0].max_abs_diff == math.inf


def test_diff_relative_norm_of_zero_base_is_infinite() -> None:
    diff = diff_state_dicts({"z": torch.zeros(2)}, {"z": torch.ones(2)})
    assert diff.changes[0].relative_norm == math.inf


# --- save -----------------------------------------------------------------------------------


class TiedLm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 4)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 11, bias=False)
        self.head.weight = self.embed.weight  # tied


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def varied_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = dict(TiedLm().state_dict())
    state["half"] = torch.randn(3, 5).to(torch.float16)
    state["brain"] = torch.randn(7).to(torch.bfloat16)
    state["transposed"] = torch.randn(3, 4).t()  # not contiguous
    state["slice"] = torch.arange(10)[2:5]  # a view into a bigger storage
    state["flag"] = torch.tensor([True, False])
    return state


def test_safetensors_round_trip_is_bit_identical_with_tied_weights(tmp_path: Path) -> None:
    state = varied_state()
    assert state["embed.weight"].data_ptr() == state["head.weight"].data_ptr()
    path = save_state_dict(state, tmp_path / "out.safetensors")
    reopened = open_checkpoint(path).state_dict
    assert_bit_identical(state, reopened)
    model = TiedLm()
    model.load_state_dict({k: reopened[k] for k in model.state_dict()}, strict=True)
    assert model.head.weight is model.embed.weight  # the model stays tied after loading


def test_pth_round_trip_is_bit_identical(tmp_path: Path) -> None:
    state = varied_state()
    path = save_state_dict(state, tmp_path / "out.pth")
    reopened = open_checkpoint(path)
    assert reopened.layout == "plain state_dict"
    assert list(reopened.state_dict) == list(state)
    assert_bit_identical(state, reopened.state_dict)


def test_saving_over_the_opened_file_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"w": torch.arange(4.0)}, path)
    opened = open_checkpoint(path)  # memory-mapped from `path`
    save_state_dict({"renamed": opened.state_dict["w"]}, path)
    assert list(open_checkpoint(path).state_dict) == ["renamed"]
    assert torch.equal(open_checkpoint(path).state_dict["renamed"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]  # no temp files left


def test_unknown_suffix_and_empty_dict_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"unknown output suffix '\.npz'"):
        save_state_dict({"w": torch.ones(1)}, tmp_path / "x.npz")
    with pytest.raises(CheckpointError, match="nothing to save"):
        save_state_dict({}, tmp_path / "x.pth")
