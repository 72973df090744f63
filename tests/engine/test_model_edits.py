"""The graph edits the window makes, headless: rename, inputs, connect, the input layer's shape."""

from __future__ import annotations

import pytest

from workbench.engine.model_edits import (
    ModelEditError,
    connected,
    current_inputs,
    name_refusal,
    parse_inputs,
    renamed,
    with_input_shape,
    with_inputs,
)
from workbench.engine.model_planner import plan_model
from workbench.engine.model_spec import LayerSpec, ModelSpec


def residual() -> ModelSpec:
    return ModelSpec(
        layers=(
            LayerSpec("Linear", {"out_features": 8}, name="fc1"),
            LayerSpec("ReLU", name="relu1"),
            LayerSpec("Linear", {"out_features": 8}, name="fc2"),
            LayerSpec("Add", name="add", inputs=("fc2", "relu1")),
            LayerSpec("Linear", {"out_features": 3}),
        ),
        input_shape=(4,),
        outputs=("4",),
    )


def test_a_rename_carries_the_layers_that_take_it_along() -> None:
    spec = renamed(residual(), 1, "act")
    assert spec.layers[1].name == "act"
    assert spec.layers[3].inputs == ("fc2", "act")
    assert plan_model(spec).ok


def test_naming_an_unnamed_layer_follows_its_position_in_outputs() -> None:
    spec = renamed(residual(), 4, "head")
    assert spec.outputs == ("head",)
    cleared = renamed(spec, 4, "")
    assert cleared.layers[4].name is None
    assert cleared.outputs == ("4",)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fc2", "layer 0 (Linear): the name 'fc2' is already used by layer 2; give each layer"),
        ("2fc", "layer 0 (Linear): the name '2fc' cannot be a module attribute; use letters"),
        ("input", "layer 0 (Linear): the name 'input' stands for the input in `inputs`"),
        ("forward", "layer 0 (Linear): 'forward' is already an attribute of every model"),
    ],
)
def test_a_name_that_cannot_be_used_is_refused_with_the_reason(name: str, message: str) -> None:
    assert (name_refusal(residual().layers, 0, name) or "").startswith(message)
    with pytest.raises(ModelEditError, match="layer 0 \\(Linear\\)"):
        renamed(residual(), 0, name)


def test_an_empty_name_or_its_own_name_is_fine() -> None:
    layers = residual().layers
    assert name_refusal(layers, 0, "") is None
    assert name_refusal(layers, 0, "fc1") is None


def test_inputs_parse_from_what_a_user_types() -> None:
    assert parse_inputs("bn2, relu1") == ("bn2", "relu1")
    assert parse_inputs('["bn2", "input"]') == ("bn2", "input")
    assert parse_inputs("  ") is None
    spec = with_inputs(residual(), 3, ("fc2", "fc1"))
    assert spec.layers[3].inputs == ("fc2", "fc1")


def test_connecting_appends_to_a_merge_layers_inputs() -> None:
    spec = residual()
    spec = with_inputs(spec, 3, None)  # takes the previous layer, fc2
    assert current_inputs(spec.layers, 3) == ("fc2",)
    joined = connected(spec, "relu1", 3)
    assert joined.layers[3].inputs == ("fc2", "relu1")
    assert plan_model(joined).ok
    assert current_inputs(spec.layers, 0) == ("input",)


@pytest.mark.parametrize(
    ("source", "row", "message"),
    [
        ("fc1", 1, "layer 1 (ReLU) takes one input; connect to a merge layer (Add, Mul or Concat)"),
        ("relu1", 3, "layer 3 (Add) already takes 'relu1'"),
        ("add", 3, "layer 3 (Add) cannot take its own output"),
    ],
)
def test_a_connection_that_cannot_be_made_says_why(source: str, row: int, message: str) -> None:
    with pytest.raises(ModelEditError) as refused:
        connected(residual(), source, row)
    assert str(refused.value).startswith(message)


def test_the_input_layers_shape_is_typed_or_cleared() -> None:
    assert with_input_shape(residual(), "3, 32, 32").input_shape == (3, 32, 32)
    assert with_input_shape(residual(), "[50]").input_shape == (50,)
    assert with_input_shape(residual(), "").input_shape is None
    with pytest.raises(ModelEditError, match=r"model\.input_shape 'abc' is not a shape; give"):
        with_input_shape(residual(), "abc")
    with pytest.raises(ModelEditError, match=r"model\.input_shape '0' is not a shape"):
        with_input_shape(residual(), "0")
