"""Graph models: named layers, inputs, merges and blocks build like hand-written code, and every
bad graph gets one message naming the layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.specs import without_names
from workbench.cli import main
from workbench.engine.errors import ExperimentError, ModelBuildError
from workbench.engine.experiment import (
    LayerSpec,
    ModelSpec,
    dump_experiment,
    load_experiment,
    parse_experiment,
    save_experiment,
)
from workbench.engine.graph_module import GraphModel
from workbench.engine.model_builder import build_model, plan_model

# The residual design of the issue, as an experiment file writes it.
RESIDUAL_LAYERS = """
  {{ name = "conv1", type = "Conv2d", out_channels = 16, kernel_size = 3, padding = 1 }},
  {{ name = "bn1", type = "BatchNorm2d" }},
  {{ name = "relu1", type = "ReLU" }},
  {{ name = "conv2", type = "Conv2d", out_channels = {channels}, kernel_size = 3, padding = 1 }},
  {{ name = "bn2", type = "BatchNorm2d" }},
  {{ name = "skip", type = "Add", inputs = {inputs} }},
  {{ name = "relu2", type = "ReLU" }},
  {{ name = "pool", type = "AdaptiveAvgPool2d", output_size = 1 }},
  {{ name = "flat", type = "Flatten" }},
  {{ name = "fc", type = "Linear", out_features = 10 }},
"""


def residual(
    channels: int = 16, inputs: str = '["bn2", "relu1"]', extra: str = "", keys: str = ""
) -> str:
    layers = RESIDUAL_LAYERS.format(channels=channels, inputs=inputs)
    return f"[model]\ninput_shape = [3, 32, 32]\n{keys}layers = [{layers}{extra}]\n"


class HandWrittenResidual(nn.Module):
    """The same design written by hand, as a tutorial would: same attribute names."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        identity = out
        out = self.bn2(self.conv2(out))
        out = self.relu2(out + identity)
        return self.fc(self.flat(self.pool(out)))


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- like hand-written code


def test_the_residual_design_matches_a_hand_written_module() -> None:
    built = build_model(parse_experiment(residual()).model)
    by_hand = HandWrittenResidual()
    model = built.module

    assert isinstance(model, GraphModel)
    model.load_state_dict(by_hand.state_dict(), strict=True)
    by_hand.load_state_dict(model.state_dict(), strict=True)
    assert list(model.state_dict()) == list(by_hand.state_dict())
    assert built.total_parameters == parameters(model) == parameters(by_hand) == 3_002
    x = torch.randn(4, 3, 32, 32)
    for training in (True, False):
        model.train(training)
        by_hand.train(training)
        torch.testing.assert_close(model(x), by_hand(x), rtol=0, atol=0)


def test_a_seeded_build_draws_the_weights_hand_written_code_draws() -> None:
    torch.manual_seed(3)
    model = build_model(parse_experiment(residual()).model).module
    torch.manual_seed(3)
    by_hand = HandWrittenResidual()
    for (key, mine), theirs in zip(
        model.state_dict().items(), by_hand.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, theirs), key


def test_a_graph_prints_like_a_class_with_named_attributes() -> None:
    printed = str(build_model(parse_experiment(residual()).model).module).splitlines()
    assert printed[0] == "Net("
    assert (
        printed[1] == "  (conv1): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    )
    assert "  (skip): Add()" in printed
    assert printed[-2] == "  (fc): Linear(in_features=16, out_features=10, bias=True)"


def test_summary_table_of_a_graph_has_names_and_inputs(tmp_path: Path) -> None:
    lines = build_model(parse_experiment(residual()).model).table().splitlines()
    assert lines[0].split() == [
        *("#", "name", "layer", "inputs", "output", "shape", "params", "MACs"),
    ]
    assert lines[2].split() == ["input", "[3,", "32,", "32]"]
    assert lines[8].split() == ["5", "skip", "Add", "bn2,", "relu1", "[16,", "32,", "32]", "0", "0"]
    assert lines[-1].split()[:2] == ["total", "3,002"]


def test_a_named_chain_stays_an_nn_sequential_keyed_by_name(presets: Path) -> None:
    experiment = load_experiment(presets / "mnist-cnn.toml")
    model = build_model(experiment.model).module
    assert isinstance(model, nn.Sequential)
    assert list(model.state_dict())[:4] == [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
    ]
    assert [key for key in model.state_dict() if key.endswith("weight")] == [
        *("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"),
    ]
    assert parameters(model) == 609_354
    unnamed = build_model(without_names(experiment).model).module
    assert list(unnamed.state_dict())[:2] == ["0.weight", "0.bias"]
    assert str(model).replace("(conv1)", "(0)").splitlines()[1] == str(unnamed).splitlines()[1]


def test_a_block_repeats_with_its_own_weights_nested_like_torchvision() -> None:
    text = """
[model]
input_shape = [8, 6, 6]
layers = [
  { name = "layer1", type = "BasicBlock", repeat = 2 },
  { name = "flat", type = "Flatten" },
]

[model.blocks.BasicBlock]
layers = [
  { name = "conv1", type = "Conv2d", out_channels = 8, kernel_size = 3, padding = 1 },
  { name = "relu1", type = "ReLU" },
  { name = "add", type = "Add", inputs = ["relu1", "input"] },
]
"""
    built = build_model(parse_experiment(text).model)
    model = built.module
    assert list(model.state_dict()) == [
        *("layer1.0.conv1.weight", "layer1.0.conv1.bias"),
        *("layer1.1.conv1.weight", "layer1.1.conv1.bias"),
    ]
    first, second = model.get_submodule("layer1.0.conv1"), model.get_submodule("layer1.1.conv1")
    assert first is not second and not torch.equal(first.weight, second.weight)
    assert type(model.get_submodule("layer1.0")).__name__ == "GraphModel"
    assert str(model).splitlines()[2:4] == [
        "    (0): BasicBlock(",
        "      (conv1): Conv2d(8, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
    ]
    use = built.rows[0]
    assert (use.type, dict(use.resolved), use.parameters) == ("BasicBlock", {"repeat": 2}, 2 * 584)
    assert [row.path for row in use.blocks[1]] == [
        "layer1.1.conv1",
        "layer1.1.relu1",
        "layer1.1.add",
    ]
    assert use.blocks[0][2].inputs == ("relu1", "input")
    assert built.output_shape == (8 * 36,)


def test_merges_concat_along_channels_and_gate_by_broadcast() -> None:
    spec = ModelSpec(
        (
            LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 1}, name="a"),
            LayerSpec("Conv2d", {"out_channels": 6, "kernel_size": 1}, name="b", inputs=("input",)),
            LayerSpec("Concat", {"dim": 1}, name="cat", inputs=("a", "b")),
            LayerSpec("AdaptiveAvgPool2d", {"output_size": 1}, name="squeeze"),
            LayerSpec("Sigmoid", name="gate"),
            LayerSpec("Mul", name="scaled", inputs=("cat", "gate")),
        ),
        input_shape=(3, 5, 5),
    )
    built = build_model(spec)
    assert [row.output_shape for row in built.rows] == [
        *((4, 5, 5), (6, 5, 5), (10, 5, 5), (10, 1, 1), (10, 1, 1), (10, 5, 5)),
    ]
    assert tuple(built.module(torch.randn(2, 3, 5, 5)).shape) == (2, 10, 5, 5)


def test_outputs_picks_the_layer_the_model_gives_and_order_follows_inputs() -> None:
    spec = ModelSpec(
        (
            LayerSpec("Linear", {"out_features": 3}, name="head", inputs=("body",)),
            LayerSpec("Linear", {"out_features": 5}, name="body", inputs=("input",)),
        ),
        input_shape=(4,),
        outputs=("head",),
    )
    built = build_model(spec)
    assert built.output_shape == (3,)
    assert list(built.module.state_dict())[:1] == ["head.weight"]  # file order, run after body
    assert tuple(built.module(torch.randn(2, 4)).shape) == (2, 3)


def test_a_graph_model_pickles_and_deep_copies_with_its_forward() -> None:
    import copy
    import pickle

    model = build_model(parse_experiment(residual()).model).module.eval()
    x = torch.randn(2, 3, 32, 32)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        torch.testing.assert_close(clone(x), model(x))


# --------------------------------------------------------------------------- files


def test_graph_files_round_trip(tmp_path: Path, presets: Path) -> None:
    for name in ("cifar10-resnet", "mnist-cnn", "tutorial-mlp"):
        experiment = load_experiment(presets / f"{name}.toml")
        save_experiment(experiment, tmp_path / f"{name}.toml")
        assert load_experiment(tmp_path / f"{name}.toml") == experiment
    graph = parse_experiment(residual(keys='outputs = ["fc"]\ninput_dtype = "long"\n'))
    assert parse_experiment(dump_experiment(graph)) == graph
    assert graph.model.layers[5] == LayerSpec("Add", {}, name="skip", inputs=("bn2", "relu1"))
    assert graph.model.outputs == ("fc",) and graph.model.input_dtype == "long"


def test_old_files_read_the_same(presets: Path) -> None:
    experiment = load_experiment(presets / "digits-mlp.toml")
    assert all(layer.name is None and layer.inputs is None for layer in experiment.model.layers)
    written = experiment.model.to_dict()
    assert written == {"layers": [layer.to_dict() for layer in experiment.model.layers]}
    assert not any({"name", "inputs"} & set(layer) for layer in written["layers"])
    model = build_model(experiment.model, (1, 8, 8)).module
    assert isinstance(model, nn.Sequential)
    assert list(model.state_dict()) == [f"{i}.{p}" for i in (1, 3, 5) for p in ("weight", "bias")]


def test_tutorial_mlp_summary_counts_2213(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "tutorial-mlp"]) == 0
    out = capsys.readouterr().out
    assert "Total number of trainable model parameters: 2213" in out
    assert "  (fc1): Linear(in_features=50, out_features=30, bias=True)" in out
    totals = [line.split()[:2] for line in out.splitlines() if line.strip().startswith("total ")]
    assert totals == [["total", "2,213"]]


def test_an_input_layer_the_data_does_not_match_is_named(presets: Path) -> None:
    from workbench.engine.trainer import Trainer

    experiment = load_experiment(presets / "tutorial-mlp.toml")
    options = {**experiment.data.options, "features": 2}
    experiment = dataclasses.replace(
        experiment, data=dataclasses.replace(experiment.data, options=options)
    )
    with pytest.raises(ModelBuildError) as caught:
        Trainer(experiment).fit()
    assert str(caught.value) == (
        "model.input_shape is [50], but the blobs data gives samples of [2]; remove "
        "model.input_shape to build the model for the data, or use data whose samples are [50]"
    )


# --------------------------------------------------------------------------- bad graphs

BLOCK = "[model]\ninput_shape = [4]\nlayers = [{layers}]\n[model.blocks.B]\nlayers = [{block}]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            residual(inputs='["bn3", "relu1"]'),
            "model.layers[5] ('skip'): inputs: 'bn3' is not a layer here (did you mean 'bn2'?); "
            "use a layer's name, or \"input\" for the model's input",
        ),
        (
            residual(inputs='["relu2", "relu1"]'),
            "model.layers[5] ('skip'): its inputs go round in a cycle (skip <- relu2 <- skip); "
            "a layer can only take outputs of layers that do not depend on it",
        ),
        (
            residual(extra='  { name = "fc", type = "ReLU" },\n'),
            "model.layers[10] ('fc'): the name 'fc' is already used by layer 9; give each layer "
            "its own name",
        ),
        (
            residual(extra='  { name = "fc-2", type = "ReLU", inputs = "fc" },\n'),
            "model.layers[10] ('fc-2'): the name 'fc-2' cannot be a module attribute; use "
            "letters, digits and underscores, starting with a letter, e.g. 'conv1'",
        ),
        (
            residual(extra='  { name = "input", type = "ReLU" },\n'),
            "model.layers[10] ('input'): the name 'input' stands for the input in `inputs`; "
            "give the layer another name",
        ),
        (
            residual(keys='outputs = ["fcc"]\n'),
            "model.outputs: 'fcc' is not a layer here (did you mean 'fc'?); name the layer whose "
            "output the model gives",
        ),
        (
            residual(keys='outputs = ["fc", "relu2"]\n'),
            "model.outputs: 2 outputs; the loss takes one output, so name one layer, e.g. "
            'outputs = ["fc"]',
        ),
        (
            residual(keys='outputs = ["flat"]\n'),
            "model.layers[9] ('fc'): nothing takes its output and it is not the output; name it "
            "in another layer's inputs, or remove it",
        ),
        (
            residual(inputs="[1, 2]"),
            'model.layers[5].inputs: expected a layer name or a list of names, like ["bn2", '
            '"relu1"], got [1, 2]',
        ),
        (
            residual(keys='input_dtype = "int"\n'),
            "model.input_dtype: 'int' is not allowed; choose one of float32, long",
        ),
        (
            BLOCK.format(layers='{ type = "B" }', block='{ type = "ReLU", inputs = ["x"] }'),
            "model.blocks.B.layers[0]: inputs: 'x' is not a layer here; use a layer's name, or "
            '"input" for the block\'s input',
        ),
        (
            '[model]\nlayers = [{ type = "B" }]\n[model.blocks.B]\nlayers = [{ type = "C" }]\n'
            '[model.blocks.C]\nlayers = [{ type = "B" }]\n',
            "model.blocks.B: the block uses itself (B -> C -> B); a block can use other blocks, "
            "but not one that leads back to it",
        ),
        (
            BLOCK.format(layers='{ type = "B" }', block=""),
            'model.blocks.B: the block has no layers; give it layers = [ { type = "..." }, ... ]',
        ),
    ],
)
def test_a_bad_connection_in_a_file_names_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(text, "exp.toml")
    assert str(caught.value) == f"exp.toml: {message}"


@pytest.mark.parametrize(
    ("text", "message", "index", "key_path"),
    [
        (
            residual(channels=32),
            "layer 5 'skip' (Add) receives [32, 32, 32] from 'bn2' and [16, 32, 32] from "
            "'relu1': the shapes must match (or broadcast); make the shapes equal, e.g. give "
            "the branches the same out_channels, or put a Conv2d with kernel_size = 1 (and the "
            "same stride) on the shortcut",
            5,
            "model.layers[5]",
        ),
        (
            residual(inputs='["bn2"]'),
            "layer 5 (Add): it joins 2 or more layers, but takes 1; list them in inputs, e.g. "
            'inputs = ["bn2", "relu1"]',
            5,
            "model.layers[5]",
        ),
        (
            residual(extra='  { name = "training", type = "ReLU" },\n'),
            "layer 10 'training' (ReLU): the name 'training' is taken by every PyTorch module; "
            "choose another, e.g. 'training_1'",
            10,
            "model.layers[10]",
        ),
        (
            residual(keys='input_dtype = "long"\n'),
            "layer 0 'conv1' (Conv2d) receives long values (token ids), but it needs float32; "
            'token ids go through an embedding layer first, or set model.input_dtype = "float32"',
            0,
            "model.layers[0]",
        ),
        (
            "[model]\ninput_shape = [4, 6]\nlayers = [\n"
            '  { name = "a", type = "Flatten" },\n'
            '  { name = "b", type = "Identity", inputs = "input" },\n'
            '  { name = "c", type = "Concat", inputs = ["a", "b"] },\n]\n',
            "layer 2 'c' (Concat) receives [24] from 'a' and [4, 6] from 'b': Concat needs "
            "inputs of the same rank; add a Flatten to the branches first",
            2,
            "model.layers[2]",
        ),
        (
            BLOCK.format(
                layers='{ name = "stage", type = "B", repeat = 2 }',
                block='{ name = "fc", type = "Linear", out_features = 5 }, '
                '{ name = "add", type = "Add", inputs = ["fc", "input"] }',
            ),
            "stage.0.add (Add) receives [5] from 'fc' and [4] from 'input': the shapes must "
            "match (or broadcast); make the shapes equal, e.g. with a Linear on the shorter branch",
            0,
            "model.blocks.B.layers[1]",
        ),
        (
            BLOCK.format(layers='{ type = "B" }', block='{ type = "Dropout", p = 2.0 }'),
            "block B, layer 0 (Dropout): p = 2.0 is out of range; use a value between 0 and 1",
            0,
            "model.blocks.B.layers[0]",
        ),
        (
            BLOCK.format(layers='{ type = "B", width = 3 }', block='{ type = "ReLU" }'),
            "layer 0 (B): unknown parameter 'width'; a block's use takes only repeat (its layers "
            "are set under [model.blocks.B])",
            0,
            "model.layers[0]",
        ),
        (
            BLOCK.format(layers='{ type = "B", repeat = 0 }', block='{ type = "ReLU" }'),
            "layer 0 (B): repeat = 0 is not a whole number of at least 1",
            0,
            "model.layers[0]",
        ),
        (
            BLOCK.format(layers='{ type = "b" }', block='{ type = "ReLU" }'),
            "layer 0: unknown layer type 'b'; did you mean 'B'?",
            0,
            "model.layers[0]",
        ),
        (
            BLOCK.replace("blocks.B", "blocks.Linear").format(
                layers='{ type = "Linear" }', block='{ type = "ReLU" }'
            ),
            "layer 0 (Linear): a block cannot be named like the layer type Linear; rename "
            "[model.blocks.Linear] and its uses",
            0,
            "model.layers[0]",
        ),
    ],
)
def test_a_graph_that_cannot_be_built_names_the_layer(
    text: str, message: str, index: int, key_path: str
) -> None:
    spec = parse_experiment(text).model
    with pytest.raises(ModelBuildError) as caught:
        build_model(spec)
    assert str(caught.value) == message
    assert (caught.value.layer_index, caught.value.key_path) == (index, key_path)
    plan = plan_model(spec)
    assert plan.problem is not None and str(plan.problem) == message


def test_a_bad_connection_built_in_code_is_a_plan_problem_on_its_layer() -> None:
    spec = dataclasses.replace(
        parse_experiment(residual()).model,
        layers=(
            LayerSpec("Linear", {"out_features": 4}, name="fc"),
            LayerSpec("Add", name="sum", inputs=("fc", "missing")),
        ),
        input_shape=(3,),
    )
    plan = plan_model(spec)
    assert [row.name for row in plan.rows] == ["fc"]
    assert plan.problem_at(1) is not None
    assert str(plan.problem_at(1)) == (
        "layer 1 'sum' (Add): inputs: 'missing' is not a layer here; use a layer's name, or "
        '"input" for the model\'s input'
    )


# --------------------------------------------------------------------------- planning for views


def test_the_plan_gives_each_node_its_inputs_shapes_and_problems() -> None:
    spec = parse_experiment(residual(channels=32)).model
    plan = plan_model(spec)
    assert not plan.is_chain and plan.output == "fc"
    conv2 = plan.row_named("conv2")
    assert conv2 is not None and conv2.inputs == ("relu1",) and conv2.output_shape == (32, 32, 32)
    assert conv2.input_shapes == ((16, 32, 32),) and conv2.path == "conv2"
    assert plan.row_named("skip") is None and plan.row_at(6) is None  # after the problem
    assert [p.layer_index for p in plan.problems] == [5]
    assert plan.output_shape is None


def test_a_branch_beside_a_problem_is_still_planned() -> None:
    spec = ModelSpec(
        (
            LayerSpec("Linear", {"out_features": 4}, name="left"),
            LayerSpec("Dropout", {"p": 2.0}, name="right", inputs=("input",)),
            LayerSpec("Add", name="sum", inputs=("left", "right")),
        ),
        input_shape=(3,),
    )
    plan = plan_model(spec)
    assert [row.name for row in plan.rows] == ["left"]
    assert [p.layer_index for p in plan.problems] == [1]


# --------------------------------------------------------------------------- memory


def test_a_layer_too_big_for_memory_is_refused_before_allocating(tmp_path: Path) -> None:
    experiment = tmp_path / "huge.toml"
    experiment.write_text(
        '[model]\ninput_shape = [4]\nlayers = [{ type = "Linear", out_features = 1000000000000 }]\n'
    )
    with pytest.raises(ModelBuildError) as caught:
        build_model(load_experiment(experiment).model)
    message = str(caught.value)
    assert message.startswith(
        "the model would need 20,000 GB of parameters (5,000,000,000,000 float32 values), more "
        "than the "
    )
    assert message.endswith(
        "of memory available; make the layers smaller (the largest, layer 0 (Linear), holds "
        "5,000,000,000,000)"
    )


def test_the_cli_refuses_a_huge_layer_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = tmp_path / "huge.toml"
    experiment.write_text(
        '[model]\ninput_shape = [1, 28, 28]\nlayers = [\n  { type = "Flatten" },\n'
        '  { name = "fc", type = "Linear", out_features = 1000000000000 },\n]\n'
    )
    assert main(["summary", str(experiment)]) == 2
    err = capsys.readouterr().err
    assert "would need 3,140,000 GB of parameters" in err and "layer 1 'fc' (Linear)" in err
    assert "allocate" not in err


def test_memory_is_compared_with_what_the_system_has(monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.engine.model_builder as model_builder

    monkeypatch.setattr(model_builder, "available_memory", lambda: 1_000_000)
    spec = ModelSpec((LayerSpec("Linear", {"out_features": 1000}),), input_shape=(1000,))
    with pytest.raises(ModelBuildError, match=r"would need 4\.0 MB .* than the 1\.0 MB"):
        build_model(spec)
    monkeypatch.setattr(model_builder, "available_memory", lambda: None)
    assert build_model(spec).total_parameters == 1_001_000


def test_tutorial_mlp_trains_on_its_fifty_feature_blobs(presets: Path, tmp_path: Path) -> None:
    from workbench.engine.datasets import describe_dataset
    from workbench.engine.trainer import Trainer

    experiment = load_experiment(presets / "tutorial-mlp.toml")
    info = describe_dataset(experiment.data)
    assert info.input_shape == (50,) and info.kind == "table"  # not drawn on a plane
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=3)
    )
    summary = Trainer(experiment, out_dir=tmp_path / "run").fit()
    assert summary["parameters"] == 2213 and summary["val_accuracy"] > 0.9
