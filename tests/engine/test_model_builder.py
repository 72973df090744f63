"""The model builder: inferred sizes, shapes that match torch, counts, and messages that help."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import LayerSpec, ModelSpec, parse_experiment
from workbench.engine.layers import CATALOGUE
from workbench.engine.model_builder import BuiltModel, build_model, plan_model


def layer(type_: str, **params: Any) -> LayerSpec:
    return LayerSpec(type_, params)


def stack(*layers: LayerSpec, input_shape: tuple[int, ...] | None = None) -> ModelSpec:
    return ModelSpec(tuple(layers), input_shape)


MNIST_CNN = stack(
    layer("Conv2d", out_channels=32, kernel_size=3),
    layer("ReLU"),
    layer("Conv2d", in_channels=32, out_channels=64, kernel_size=3),
    layer("ReLU"),
    layer("MaxPool2d", kernel_size=2),
    layer("Dropout", p=0.25),
    layer("Flatten"),
    layer("Linear", out_features=64),
    layer("ReLU"),
    layer("Dropout", p=0.5),
    layer("Linear", in_features=64, out_features=10),
    layer("LogSoftmax"),
)


def assert_forward_matches_rows(built: BuiltModel) -> None:
    """Run real zeros through each module: every row's predicted shape must be what torch makes."""
    x = torch.zeros((2, *built.input_shape))
    with torch.no_grad():
        for module, row in zip(built.module, built.rows, strict=True):
            assert tuple(x.shape[1:]) == row.input_shape
            x = module(x)
            assert tuple(x.shape) == (2, *row.output_shape), f"layer {row.index} ({row.type})"
    assert tuple(x.shape[1:]) == built.output_shape


# --------------------------------------------------------------------------- acceptance numbers


def test_mlp_has_2213_parameters() -> None:
    mlp = stack(
        layer("Linear", out_features=30),
        layer("ReLU"),
        layer("Linear", out_features=20),
        layer("ReLU"),
        layer("Linear", out_features=3),
    )
    built = build_model(mlp, (50,))
    assert built.total_parameters == built.trainable_parameters == 2_213
    assert [row.parameters for row in built.rows] == [1_530, 0, 620, 0, 63]
    assert built.output_shape == (3,)
    assert built.total_macs == 50 * 30 + 30 * 20 + 20 * 3


def test_mnist_cnn_infers_in_features_9216_and_has_609354_parameters() -> None:
    built = build_model(MNIST_CNN, (1, 28, 28))
    assert built.total_parameters == 609_354
    assert built.rows[7].resolved["in_features"] == 9216
    assert built.rows[0].resolved["in_channels"] == 1
    assert built.rows[4].resolved["stride"] == 2  # pooling stride defaults to the kernel size
    assert [row.output_shape for row in built.rows[:7]] == [
        (32, 26, 26),
        (32, 26, 26),
        (64, 24, 24),
        (64, 24, 24),
        (64, 12, 12),
        (64, 12, 12),
        (9216,),
    ]
    assert built.output_shape == (10,)
    printed = str(built.module)
    assert "Linear(in_features=9216, out_features=64, bias=True)" in printed
    assert "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))" in printed
    assert "LogSoftmax(dim=1)" in printed
    assert_forward_matches_rows(built)


def test_mnist_cnn_macs_follow_the_documented_convention() -> None:
    built = build_model(MNIST_CNN, (1, 28, 28))
    conv1 = 32 * 26 * 26 * 1 * 9
    conv2 = 64 * 24 * 24 * 32 * 9
    assert [row.macs for row in built.rows] == [
        conv1,
        0,
        conv2,
        0,
        0,
        0,
        0,
        9216 * 64,
        0,
        0,
        640,
        0,
    ]
    assert built.total_macs == 11_401_984


def test_table_shows_each_layer_and_the_totals() -> None:
    lines = build_model(MNIST_CNN, (1, 28, 28)).table().splitlines()
    assert lines[0].split() == ["#", "layer", "output", "shape", "params", "MACs"]
    assert lines[2].split() == ["input", "[1,", "28,", "28]"]
    assert lines[3].split() == ["0", "Conv2d", "[32,", "26,", "26]", "320", "194,688"]
    assert lines[10].split() == ["7", "Linear", "[64]", "589,888", "589,824"]
    assert lines[-1].split() == ["total", "609,354", "11,401,984"]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule line up


def test_build_is_seeded_only_by_torch_and_equals_the_hand_written_model() -> None:
    torch.manual_seed(1)
    built = build_model(MNIST_CNN, (1, 28, 28)).module
    torch.manual_seed(1)
    by_hand = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(9216, 64),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(64, 10),
        nn.LogSoftmax(dim=1),
    )
    assert str(built) == str(by_hand)
    for (name, mine), (_, theirs) in zip(
        built.state_dict().items(), by_hand.state_dict().items(), strict=True
    ):
        assert torch.equal(mine, theirs), name


def test_planning_allocates_nothing_and_leaves_the_rng_alone() -> None:
    state = torch.random.get_rng_state()
    plan = plan_model(MNIST_CNN, (1, 28, 28))
    assert torch.equal(state, torch.random.get_rng_state())
    assert plan.ok and plan.output_shape == (10,)
    assert sum(row.parameters for row in plan.rows) == 609_354


def test_experiment_file_layers_build() -> None:
    experiment = parse_experiment(
        """
        [model]
        input_shape = [3, 16, 16]
        layers = [
          { type = "Conv2d", out_channels = 8, kernel_size = [3, 5], padding = [1, 2] },
          { type = "AdaptiveAvgPool2d", output_size = [2, 2] },
          { type = "Flatten" },
          { type = "Linear", out_features = 4 },
        ]
        """
    )
    built = build_model(experiment.model)
    assert [row.output_shape for row in built.rows] == [(8, 16, 16), (8, 2, 2), (32,), (4,)]
    assert built.rows[0].resolved["kernel_size"] == (3, 5)
    assert_forward_matches_rows(built)


# --------------------------------------------------------------------------- every catalogue entry

# type -> (parameters, input shape, expected output shape)
EXAMPLES: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[int, ...]]] = {
    "Linear": ({"out_features": 3}, (5,), (3,)),
    "Conv1d": ({"out_channels": 4, "kernel_size": 3}, (2, 10), (4, 8)),
    "Conv2d": ({"out_channels": 4, "kernel_size": 3, "stride": 2}, (2, 9, 8), (4, 4, 3)),
    "MaxPool1d": ({"kernel_size": 2}, (3, 9), (3, 4)),
    "MaxPool2d": ({"kernel_size": 2}, (3, 9, 8), (3, 4, 4)),
    "AvgPool1d": ({"kernel_size": 3, "stride": 2}, (3, 9), (3, 4)),
    "AvgPool2d": ({"kernel_size": 2}, (3, 8, 8), (3, 4, 4)),
    "AdaptiveAvgPool1d": ({"output_size": 2}, (3, 9), (3, 2)),
    "AdaptiveAvgPool2d": ({"output_size": 1}, (3, 5, 7), (3, 1, 1)),
    "BatchNorm1d": ({}, (6,), (6,)),
    "BatchNorm2d": ({"momentum": 0.2}, (3, 4, 4), (3, 4, 4)),
    "LayerNorm": ({}, (4, 6), (4, 6)),
    "Dropout": ({"p": 0.2}, (5,), (5,)),
    "Dropout1d": ({}, (3, 4), (3, 4)),
    "Dropout2d": ({}, (3, 4, 4), (3, 4, 4)),
    "ReLU": ({}, (5,), (5,)),
    "LeakyReLU": ({"negative_slope": 0.2}, (5,), (5,)),
    "GELU": ({"approximate": "tanh"}, (5,), (5,)),
    "SiLU": ({}, (5,), (5,)),
    "ELU": ({"alpha": 0.5}, (5,), (5,)),
    "Sigmoid": ({}, (5,), (5,)),
    "Tanh": ({}, (5,), (5,)),
    "Softmax": ({}, (5,), (5,)),
    "LogSoftmax": ({"dim": -1}, (2, 5), (2, 5)),
    "Flatten": ({}, (2, 3, 4), (24,)),
    "Identity": ({}, (2, 3), (2, 3)),
    "Backbone": ({"arch": "resnet18", "weights": "none", "freeze": False}, (3, 32, 32), (512,)),
}


# Merges join two branches: type -> (parameters, the branches' shapes, expected output shape)
MERGE_EXAMPLES: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[int, ...]]] = {
    "Add": ({}, (3, 4), (3, 4)),
    "Mul": ({}, (3, 4), (3, 4)),
    "Concat": ({"dim": 1}, (3, 4), (6, 4)),
}


# Sequence layers: type -> (parameters, input shape, input dtype, expected output shape),
# built for data with a vocabulary of 20 tokens.
SEQUENCE_EXAMPLES: dict[str, tuple[dict[str, Any], tuple[int, ...], str, tuple[int, ...]]] = {
    "Embedding": ({"embedding_dim": 8}, (6,), "long", (6, 8)),
    "PositionalEmbedding": ({}, (6, 8), "float32", (6, 8)),
    "LSTM": ({"hidden_size": 5}, (6, 8), "float32", (6, 5)),
    "GRU": ({"hidden_size": 5, "bidirectional": True}, (6, 8), "float32", (6, 10)),
    "LastStep": ({}, (6, 8), "float32", (8,)),
    "TransformerBlock": ({"heads": 2}, (6, 8), "float32", (6, 8)),
    "TransformerEncoderLayer": ({"nhead": 2, "dim_feedforward": 16}, (6, 8), "float32", (6, 8)),
}


def test_every_catalogue_entry_has_an_example() -> None:
    assert set(EXAMPLES) | set(MERGE_EXAMPLES) | set(SEQUENCE_EXAMPLES) == set(CATALOGUE)


@pytest.mark.parametrize("name", sorted(SEQUENCE_EXAMPLES))
def test_sequence_entry_builds_with_the_predicted_shape(name: str) -> None:
    params, input_shape, dtype, expected = SEQUENCE_EXAMPLES[name]
    built = build_model(stack(layer(name, **params)), input_shape, vocab_size=20, input_dtype=dtype)
    assert built.output_shape == expected
    assert isinstance(built.module.get_submodule("0"), CATALOGUE[name].module_class)
    x = torch.randint(0, 20, (2, *input_shape)) if dtype == "long" else torch.randn(2, *input_shape)
    with torch.no_grad():
        assert tuple(built.module(x).shape) == (2, *expected)


@pytest.mark.parametrize("name", sorted(MERGE_EXAMPLES))
def test_merge_entry_joins_two_branches_with_the_predicted_shape(name: str) -> None:
    params, branch, expected = MERGE_EXAMPLES[name]
    spec = stack(
        LayerSpec("Identity", name="a"),
        LayerSpec("Identity", name="b", inputs=("input",)),
        LayerSpec(name, params, name="merge", inputs=("a", "b")),
    )
    built = build_model(spec, branch)
    assert built.output_shape == expected
    assert isinstance(built.module.merge, CATALOGUE[name].module_class)
    x = torch.randn(2, *branch)
    assert tuple(built.module(x).shape) == (2, *expected)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_catalogue_entry_builds_with_the_predicted_shape(name: str) -> None:
    params, input_shape, expected = EXAMPLES[name]
    built = build_model(stack(layer(name, **params)), input_shape)
    assert built.output_shape == expected
    assert isinstance(built.module[0], CATALOGUE[name].module_class)
    assert_forward_matches_rows(built)


# Shapes where the window arithmetic is easy to get wrong; each is also run for real.
SHAPE_CASES = [
    (layer("Conv2d", out_channels=2, kernel_size=3, padding=1), (1, 7, 7), (2, 7, 7)),
    (layer("Conv2d", out_channels=2, kernel_size=3, dilation=2), (1, 7, 7), (2, 3, 3)),
    (layer("Conv2d", out_channels=2, kernel_size=[1, 3], stride=[1, 2]), (1, 5, 9), (2, 5, 4)),
    (
        layer("Conv2d", out_channels=2, kernel_size=3, padding="same", dilation=2),
        (1, 5, 6),
        (2, 5, 6),
    ),
    (layer("Conv1d", out_channels=2, kernel_size=3, padding="valid"), (1, 9), (2, 7)),
    (layer("Conv1d", out_channels=6, kernel_size=3, groups=3), (3, 9), (6, 7)),
    (
        layer("Conv2d", out_channels=2, kernel_size=3, padding=1, padding_mode="reflect"),
        (1, 4, 4),
        (2, 4, 4),
    ),
    (layer("MaxPool2d", kernel_size=2, ceil_mode=True), (1, 5, 5), (1, 3, 3)),
    (layer("MaxPool2d", kernel_size=2, stride=2, padding=1, ceil_mode=True), (1, 5, 5), (1, 3, 3)),
    (layer("AvgPool2d", kernel_size=2, stride=2, padding=1, ceil_mode=True), (1, 4, 4), (1, 3, 3)),
    (layer("MaxPool1d", kernel_size=3, stride=1, dilation=2), (1, 9), (1, 5)),
    (layer("MaxPool2d", kernel_size=3, padding=1), (4, 1, 1), (4, 1, 1)),
    (layer("AvgPool1d", kernel_size=2), (1, 7), (1, 3)),
    (layer("BatchNorm1d"), (4, 7), (4, 7)),
    (layer("LayerNorm", normalized_shape=[3, 4]), (2, 3, 4), (2, 3, 4)),
    (layer("Flatten", start_dim=2), (2, 3, 4), (2, 12)),
    (layer("Flatten", start_dim=1, end_dim=2), (2, 3, 4), (6, 4)),
    (layer("Flatten", start_dim=-2), (2, 3, 4), (2, 12)),
    (layer("Flatten"), (5,), (5,)),
    (layer("Linear", in_features=4, out_features=3), (7, 4), (7, 3)),
    (layer("Softmax", dim=2), (3, 4), (3, 4)),
]


@pytest.mark.parametrize(("spec", "input_shape", "expected"), SHAPE_CASES)
def test_window_and_dimension_arithmetic_matches_torch(
    spec: LayerSpec, input_shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    built = build_model(stack(spec), input_shape)
    assert built.output_shape == expected
    assert_forward_matches_rows(built)


def test_same_padding_with_an_even_kernel_plans_despite_torch_speed_warning() -> None:
    plan = plan_model(
        stack(layer("Conv2d", out_channels=2, kernel_size=4, padding="same")), (1, 5, 6)
    )
    assert plan.ok and plan.output_shape == (2, 5, 6)


def test_grouped_conv_and_sequence_linear_macs() -> None:
    grouped = build_model(stack(layer("Conv1d", out_channels=6, kernel_size=3, groups=3)), (3, 9))
    assert grouped.total_macs == 6 * 7 * (3 // 3) * 3
    assert grouped.total_parameters == 6 * 1 * 3 + 6
    sequence = build_model(stack(layer("Linear", in_features=4, out_features=3)), (7, 4))
    assert sequence.total_macs == 7 * 4 * 3


def test_layer_norm_infers_the_last_dimension() -> None:
    built = build_model(stack(layer("LayerNorm")), (4, 6))
    assert built.rows[0].resolved["normalized_shape"] == 6
    assert built.total_parameters == 12
    assert "LayerNorm((6,)" in str(built.module)


def test_input_shape_comes_from_the_spec_when_not_given() -> None:
    built = build_model(stack(layer("Linear", out_features=2), input_shape=(3,)))
    assert built.input_shape == (3,) and built.total_parameters == 8
    assert build_model(stack(layer("ReLU"), input_shape=(3,)), [4, 5]).output_shape == (4, 5)


# --------------------------------------------------------------------------- messages


def problem_of(spec: ModelSpec, input_shape: tuple[int, ...] | None) -> str:
    with pytest.raises(ModelBuildError) as caught:
        build_model(spec, input_shape)
    plan = plan_model(spec, input_shape)
    assert plan.problem is not None and str(plan.problem) == str(caught.value)
    assert plan.problem.layer_index == caught.value.layer_index
    return str(caught.value)


def test_linear_after_convolutions_asks_for_a_flatten() -> None:
    layers = list(MNIST_CNN.layers)
    layers[6] = layer("Identity")
    message = problem_of(stack(*layers), (1, 28, 28))
    assert message.startswith("layer 7 (Linear) receives [64, 12, 12]; add a Flatten before it")
    assert "or set in_features = 12 to apply it to the last dimension only" in message


def test_pooling_below_one_pixel_says_what_to_change() -> None:
    spec = stack(
        layer("Conv2d", out_channels=64, kernel_size=3),
        layer("MaxPool2d", kernel_size=2),
        layer("MaxPool2d", kernel_size=2),
        layer("MaxPool2d", kernel_size=2),
    )
    assert problem_of(spec, (1, 9, 9)) == (
        "layer 3 (MaxPool2d) receives [64, 1, 1]: kernel_size 2 is larger than the 1x1 input; "
        "use a smaller kernel or fewer pooling layers"
    )


def test_convolution_larger_than_its_input() -> None:
    spec = stack(layer("Conv1d", out_channels=2, kernel_size=3, dilation=2, padding=1))
    assert problem_of(spec, (1, 2)) == (
        "layer 0 (Conv1d) receives [1, 2]: kernel_size 3 with dilation 2 is larger than the "
        "length-2 input padded by 1; use a smaller kernel, add padding, or use fewer pooling "
        "layers before it"
    )


def test_value_out_of_range_names_layer_param_and_range() -> None:
    spec = stack(layer("Linear", out_features=4), layer("ReLU"), layer("Dropout", p=1.5))
    assert problem_of(spec, (3,)) == (
        "layer 2 (Dropout): p = 1.5 is out of range; use a value between 0 and 1"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            layer("Dropout", pp=0.5),
            "layer 0 (Dropout): unknown parameter 'pp' (did you mean 'p'?); Dropout takes: p",
        ),
        (
            layer("Linear", out_features=3, bais=False),
            "layer 0 (Linear): unknown parameter 'bais' (did you mean 'bias'?); "
            "Linear takes: in_features, out_features, bias",
        ),
        (layer("ReLU", inplace=True), "layer 0 (ReLU): ReLU takes no parameters; remove 'inplace'"),
        (layer("Relu"), "layer 0: unknown layer type 'Relu'; did you mean 'ReLU'?"),
        (layer("Linear"), "layer 0 (Linear): out_features is required; e.g. out_features = 10"),
        (
            layer("Linear", out_features="ten"),
            "layer 0 (Linear): out_features = 'ten' is not a whole number or 'vocab'",
        ),
        (
            layer("Linear", out_features=0),
            "layer 0 (Linear): out_features = 0 is out of range; use a value of at least 1",
        ),
        (
            layer("Linear", out_features=2, bias=1),
            "layer 0 (Linear): bias = 1 is not true or false",
        ),
        (layer("Dropout", p="half"), "layer 0 (Dropout): p = 'half' is not a number"),
        (
            layer("GELU", approximate="tan"),
            "layer 0 (GELU): approximate = 'tan' is not allowed (did you mean 'tanh'?); "
            "choose one of none, tanh",
        ),
        (
            layer("MaxPool2d", kernel_size=[2, 2, 2]),
            "layer 0 (MaxPool2d): kernel_size = [2, 2, 2] is not a whole number or a list of "
            "2 whole numbers",
        ),
        (
            layer("Conv2d", out_channels=2, kernel_size=3, stride=[1, 0]),
            "layer 0 (Conv2d): stride = [1, 0] is out of range; use a value of at least 1",
        ),
        (
            layer("Conv2d", out_channels=2, kernel_size=3, padding="sam"),
            "layer 0 (Conv2d): padding = 'sam' is not allowed (did you mean 'same'?); "
            "choose one of valid, same",
        ),
        (
            layer("Conv2d", out_channels=2, kernel_size=3, padding="same", stride=2),
            "layer 0 (Conv2d): padding = 'same' needs stride = 1; give padding as a number",
        ),
        (
            layer("Conv2d", out_channels=4, kernel_size=3, groups=3),
            "layer 0 (Conv2d): groups = 3 does not divide in_channels = 4; "
            "use a divisor of both, e.g. groups = 1",
        ),
        (
            layer("MaxPool2d", kernel_size=3, padding=2),
            "layer 0 (MaxPool2d): padding = 2 is more than half of kernel_size 3; "
            "use a padding of at most 1",
        ),
        (
            layer("Flatten", start_dim=0),
            "layer 0 (Flatten): start_dim = 0 is the batch dimension; "
            "use 1 (the first dimension of a sample) or -1 (the last)",
        ),
        (
            layer("Flatten", start_dim=4),
            "layer 0 (Flatten) receives [4, 5, 5]: start_dim = 4 is out of range; "
            "counting the batch as 0, use 1 to 3 or -1 for the last dimension",
        ),
        (
            layer("Flatten", start_dim=3, end_dim=2),
            "layer 0 (Flatten): end_dim = 2 comes before start_dim = 3; "
            "use end_dim = -1 to flatten to the last dimension",
        ),
        (
            layer("Softmax", dim=0),
            "layer 0 (Softmax): dim = 0 is the batch dimension; "
            "use 1 (the first dimension of a sample) or -1 (the last)",
        ),
        (
            layer("Conv1d", out_channels=2, kernel_size=3),
            "layer 0 (Conv1d) receives [4, 5, 5], but Conv1d needs a [channels, length] input; "
            "use Conv2d instead",
        ),
        (
            layer("BatchNorm1d"),
            "layer 0 (BatchNorm1d) receives [4, 5, 5], but BatchNorm1d needs a [features] or "
            "[channels, length] input; use BatchNorm2d instead",
        ),
        (
            layer("LayerNorm", normalized_shape=[4, 5]),
            "layer 0 (LayerNorm) receives [4, 5, 5]: normalized_shape = [4, 5] does not match its "
            "trailing dimensions; remove normalized_shape to normalise over the last dimension (5)",
        ),
    ],
)
def test_parameter_and_rank_problems(spec: LayerSpec, message: str) -> None:
    assert problem_of(stack(spec), (4, 5, 5)) == message


@pytest.mark.parametrize(
    ("spec", "input_shape", "message"),
    [
        (
            layer("Conv2d", out_channels=2, kernel_size=3),
            (16,),
            "layer 0 (Conv2d) receives [16], but Conv2d needs a [channels, height, width] input; "
            "place it before any Flatten, or give the model a [channels, height, width] "
            "input_shape",
        ),
        (
            layer("Dropout2d"),
            (3, 16),
            "layer 0 (Dropout2d) receives [3, 16], but Dropout2d needs a "
            "[channels, height, width] input; use Dropout1d instead",
        ),
        (
            layer("Dropout1d"),
            (3, 4, 4),
            "layer 0 (Dropout1d) receives [3, 4, 4], but Dropout1d needs a [channels, length] "
            "input; use Dropout2d instead",
        ),
    ],
)
def test_rank_problems_for_other_inputs(
    spec: LayerSpec, input_shape: tuple[int, ...], message: str
) -> None:
    assert problem_of(stack(spec), input_shape) == message


@pytest.mark.parametrize(
    ("spec", "input_shape", "message"),
    [
        (
            layer("Linear", in_features=100, out_features=3),
            (9216,),
            "layer 0 (Linear) receives [9216]: in_features = 100, but the input has 9216 "
            "features; remove in_features to infer it from the input",
        ),
        (
            layer("Linear", in_features=5, out_features=3),
            (7, 4),
            "layer 0 (Linear) receives [7, 4]: in_features = 5, but the input has 4 features in "
            "its last dimension; remove in_features to infer it from the input",
        ),
        (
            layer("Conv2d", in_channels=3, out_channels=8, kernel_size=3),
            (1, 28, 28),
            "layer 0 (Conv2d) receives [1, 28, 28]: in_channels = 3, but the input has 1 "
            "channel; remove in_channels to infer it from the input",
        ),
        (
            layer("BatchNorm2d", num_features=16),
            (8, 4, 4),
            "layer 0 (BatchNorm2d) receives [8, 4, 4]: num_features = 16, but the input has 8 "
            "channels; remove num_features to infer it from the input",
        ),
    ],
)
def test_contradictory_explicit_size_is_refused(
    spec: LayerSpec, input_shape: tuple[int, ...], message: str
) -> None:
    assert problem_of(stack(spec), input_shape) == message


def test_torch_refusals_the_rules_do_not_cover_still_read_as_layer_problems() -> None:
    spec = stack(layer("Conv2d", out_channels=2, kernel_size=3, padding=2, padding_mode="reflect"))
    message = problem_of(spec, (1, 2, 2))
    assert message.startswith("layer 0 (Conv2d) receives [1, 2, 2]: torch refuses it: ")


@pytest.mark.parametrize(
    ("input_shape", "message"),
    [
        (None, "the model's input shape is unknown; set model.input_shape, e.g. [1, 28, 28]"),
        ((0, 3), "input shape [0, 3] is not valid; give the positive size of each dimension"),
        ((), "input shape [] is not valid"),
    ],
)
def test_bad_input_shape(input_shape: tuple[int, ...] | None, message: str) -> None:
    assert problem_of(stack(layer("ReLU")), input_shape).startswith(message)


def test_empty_stack_is_a_problem() -> None:
    assert problem_of(stack(), (3,)) == "the model has no layers; add at least one layer"


# --------------------------------------------------------------------------- planning for the GUI


def test_plan_keeps_rows_before_a_problem_and_reports_later_parameter_mistakes() -> None:
    spec = stack(
        layer("Conv2d", out_channels=8, kernel_size=3),
        layer("ReLU"),
        layer("Linear", out_features=10),  # needs a Flatten
        layer("Dropout", p=2.0),  # a parameter mistake: found even after the shape problem
        layer("Linear", out_features=3),  # fine as far as its parameters go
        layer("Sigmoid", beta=1),
    )
    plan = plan_model(spec, (1, 8, 8))
    assert not plan.ok and plan.output_shape is None
    assert [row.output_shape for row in plan.rows] == [(8, 6, 6), (8, 6, 6)]
    assert [problem.layer_index for problem in plan.problems] == [2, 3, 5]
    assert plan.problem is plan.problems[0]
    assert str(plan.problem).startswith("layer 2 (Linear) receives [8, 6, 6]; add a Flatten")
    problem_at_3 = plan.problem_at(3)
    assert problem_at_3 is not None and "p = 2.0 is out of range" in str(problem_at_3)
    assert plan.problem_at(4) is None


def test_plan_rows_carry_resolved_arguments_and_counts() -> None:
    plan = plan_model(stack(layer("Conv2d", out_channels=4, kernel_size=3, bias=False)), (2, 5, 5))
    row = plan.rows[0]
    assert dict(row.resolved) == {
        "in_channels": 2,
        "out_channels": 4,
        "kernel_size": 3,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "bias": False,
        "padding_mode": "zeros",
    }
    assert (row.input_shape, row.output_shape) == ((2, 5, 5), (4, 3, 3))
    assert row.parameters == row.trainable == 4 * 2 * 9
    assert row.macs == 4 * 3 * 3 * 2 * 9


def test_none_means_not_set() -> None:
    built = build_model(stack(layer("Linear", in_features=None, out_features=2)), (3,))
    assert built.rows[0].resolved["in_features"] == 3
