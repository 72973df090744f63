"""CheckpointTreeModel: a well-behaved Qt tree (qtmodeltester), file order, totals, filtering."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QModelIndex, Qt

from workbench.ui.checkpoint_editor.tree_model import (
    DTYPE,
    IS_TENSOR_ROLE,
    KEY_ROLE,
    LAYER_TYPE,
    NAME,
    PARAMETERS,
    SHAPE,
    SIZE,
    SORT_ROLE,
    CheckpointFilterModel,
    CheckpointTreeModel,
)

Role = Qt.ItemDataRole


def resnet_like() -> dict[str, torch.Tensor]:
    """A few ResNet keys: a root conv, BatchNorm buffers, nested blocks, an integer buffer."""
    state: dict[str, torch.Tensor] = {"conv1.weight": torch.zeros(4, 3, 3, 3)}
    for prefix in ("bn1", "layer1.0.bn1"):
        state[f"{prefix}.weight"] = torch.ones(4)
        state[f"{prefix}.bias"] = torch.zeros(4)
        state[f"{prefix}.running_mean"] = torch.zeros(4)
        state[f"{prefix}.running_var"] = torch.ones(4)
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    state["layer1.0.conv1.weight"] = torch.zeros(4, 4, 3, 3, dtype=torch.float16)
    state["fc.weight"] = torch.zeros(10, 4)
    state["fc.bias"] = torch.zeros(10)
    return state


def children(model, parent: QModelIndex = QModelIndex()) -> list[str]:  # type: ignore[no-untyped-def]  # noqa: B008
    return [model.index(row, NAME, parent).data() for row in range(model.rowCount(parent))]


def test_passes_qtmodeltester_through_resets(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    model = CheckpointTreeModel()
    qtmodeltester.check(model)  # empty
    model.set_state_dict(resnet_like())
    qtmodeltester.check(model)  # stays attached: the reset below is checked too
    model.set_state_dict({"w": torch.ones(3)})
    qtmodeltester.check(model)


def test_passes_the_python_modeltester(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    model = CheckpointTreeModel()
    model.set_state_dict(resnet_like())
    qtmodeltester.check(model, force_py=True)


def test_proxy_passes_qtmodeltester_while_filtering(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    model = CheckpointTreeModel()
    model.set_state_dict(resnet_like())
    proxy = CheckpointFilterModel()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    proxy.setFilterFixedString("running")
    qtmodeltester.check(proxy)


def test_modules_and_tensors_in_file_order_with_guessed_types() -> None:
    model = CheckpointTreeModel()
    model.set_state_dict(resnet_like())
    assert children(model) == ["conv1", "bn1", "layer1", "fc"]
    bn1 = model.index(1, NAME)
    assert bn1.siblingAtColumn(LAYER_TYPE).data() == "BatchNorm"
    assert children(model, bn1) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    block = model.index_for_path("layer1.0")
    assert children(model, block) == ["bn1", "conv1"]
    assert model.data(block, KEY_ROLE) == "layer1.0"
    assert model.data(block, IS_TENSOR_ROLE) is False
    assert block.siblingAtColumn(DTYPE).data() == "mixed"  # float32 BatchNorm, float16 conv


def test_numbers_leave_batchnorm_buffers_out_of_parameters() -> None:
    model = CheckpointTreeModel()
    model.set_state_dict(resnet_like())
    bn1 = model.index(1, NAME)
    assert bn1.siblingAtColumn(PARAMETERS).data() == "8"  # weight + bias, not the statistics
    assert bn1.siblingAtColumn(SIZE).data() == "72 B"  # 4 tensors of 4 floats + one int64
    mean = model.index_for_path("bn1.running_mean")
    assert mean.siblingAtColumn(LAYER_TYPE).data() == "buffer"
    assert mean.siblingAtColumn(PARAMETERS).data() == "4"  # its own elements are still shown
    assert model.data(mean, Role.ForegroundRole) is not None  # muted
    fc = model.index_for_path("fc.weight")
    assert fc.siblingAtColumn(SHAPE).data() == "[10, 4]"
    assert model.data(fc.siblingAtColumn(PARAMETERS), SORT_ROLE) == 40
    assert model.total_parameters == 108 + 8 + 8 + 144 + 50
    assert "fc.weight" in model.data(fc, Role.ToolTipRole)


def test_filter_keeps_ancestors_of_matches_and_children_of_matching_modules() -> None:
    model = CheckpointTreeModel()
    model.set_state_dict(resnet_like())
    proxy = CheckpointFilterModel()
    proxy.setSourceModel(model)
    proxy.setFilterFixedString("LAYER1.0.CONV")
    assert children(proxy) == ["layer1"]
    layer1 = proxy.index(0, NAME)
    block = proxy.index(0, NAME, layer1)
    assert children(proxy, block) == ["conv1"]
    proxy.setFilterFixedString("bn1")
    bn1 = proxy.index(0, NAME)
    assert len(children(proxy, bn1)) == 5  # a matching module shows all its tensors


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (PARAMETERS, ["layer1", "conv1", "fc", "bn1"]),  # 152, 108, 50, 8
        (SIZE, ["conv1", "layer1", "fc", "bn1"]),  # 432 B, 360 B (float16), 200 B, 72 B
    ],
)
def test_sorting_by_a_number_column_sorts_by_value(column: int, expected: list[str]) -> None:
    model = CheckpointTreeModel()
    model.set_state_dict(resnet_like())
    proxy = CheckpointFilterModel()
    proxy.setSourceModel(model)
    proxy.sort(column, Qt.SortOrder.DescendingOrder)
    assert children(proxy) == expected
