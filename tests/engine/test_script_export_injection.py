"""Export-script injection: hostile strings in any experiment field or the file name stay data."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PRESETS
from tests.engine.test_script_export import run_standalone
from workbench.cli import build_parser
from workbench.engine import model_graph, model_planner
from workbench.engine.errors import ExperimentError, WorkbenchError
from workbench.engine.experiment import (
    BlockSpec,
    DDPSpec,
    EarlyStoppingSpec,
    Experiment,
    LayerSpec,
    ModelSpec,
    SchedulerSpec,
    load_experiment,
    save_experiment,
)
from workbench.engine.script_export import export_script, rules
from workbench.engine.script_export.text import doc_text, literal

MARKER = "injected-marker"  # what every payload tries to create, in the script's folder
TOUCH = f"__import__('pathlib').Path({MARKER!r}).touch()"
PAYLOADS = [
    f'x"; {TOUCH}; _x = "',
    f"x'; {TOUCH}; _x = '",
    f'x"); {TOUCH}; _x = ("',  # for a value inside a call: Path("...")
    f"x'); {TOUCH}; _x = ('",
    f'x"""; {TOUCH}; _x = """',
    f"x'''; {TOUCH}; _x = '''",
    f"x\n{TOUCH}\n#",
    f"x\r{TOUCH}\r#",
    "x\\",  # pasted, a trailing backslash swallows the closing quote
    f"x\\\n{TOUCH}",
    f"{{{TOUCH}}}",  # pasted into an f-string, braces run code
    f"x\u2028{TOUCH}",
    f"x\x00{TOUCH}",
    f"\\x22; {TOUCH}; _x = \\x22",  # escapes that decode to quotes
]
BENIGN = "benign-value"
# Names torch's add_module takes (no dot): what a layer or block name would try if the
# validation let it through. Each opens MARKER for writing when run as code.
NAME_PAYLOADS = [
    f'a; open("{MARKER}", "w"); b',
    f'a)\nopen("{MARKER}", "w")\n#',
    f"a'] = 1; open('{MARKER}', 'w'); #",
    f"{{open('{MARKER}', 'w')}}",
    f'a"""; open("{MARKER}", "w"); """',
]


def preset(name: str) -> Experiment:
    return load_experiment(PRESETS / f"{name}.toml")


def with_data(experiment: Experiment, input_shape: tuple[int, ...], **data: Any) -> Experiment:
    """`experiment` on other data; the input shape is given, so no file is read to export it."""
    return dataclasses.replace(
        experiment,
        model=dataclasses.replace(experiment.model, input_shape=input_shape),
        data=dataclasses.replace(experiment.data, **data),
    )


def tabular(**data: Any) -> Experiment:
    layers = (
        LayerSpec("Linear", {"out_features": 4}),
        LayerSpec("ReLU"),
        LayerSpec("Linear", {"out_features": 2}),
    )
    base = dataclasses.replace(preset("moons-mlp"), model=ModelSpec(layers=layers))
    return with_data(base, (2,), **{"name": "csv", "path": "t.csv", "options": {}, **data})


# Free-text fields the validation accepts: each is exported with a dataset that uses it.
ACCEPTED: dict[str, Callable[[str], Experiment]] = {
    "data.root": lambda value: with_data(preset("mnist-cnn"), (1, 28, 28), root=value),
    "data.path (csv)": lambda value: tabular(path=value),
    "data.label_column": lambda value: tabular(label_column=value),
    "data.options.delimiter": lambda value: tabular(options={"delimiter": value}),
    "data.path (image-folder)": lambda value: with_data(
        preset("mnist-cnn"), (1, 28, 28), name="image-folder", path=value, options={}
    ),
}


def replace_train(**train: Any) -> Callable[[str], Experiment]:
    def make(value: str) -> Experiment:
        base = preset("toy-mlp")
        values = {key: maker(value) for key, maker in train.items()}
        return dataclasses.replace(base, train=dataclasses.replace(base.train, **values))

    return make


def replace_layer(layer: Callable[[str], LayerSpec]) -> Callable[[str], Experiment]:
    def make(value: str) -> Experiment:
        base = preset("mnist-cnn")
        layers = (layer(value), *base.model.layers[1:])
        return dataclasses.replace(base, model=dataclasses.replace(base.model, layers=layers))

    return make


# Fields with a fixed vocabulary: refused with a named error before any script exists.
REFUSED: dict[str, tuple[Callable[[str], Experiment], str]] = {
    "train.device": (replace_train(device=lambda v: v), "train.device"),
    "train.optimizer": (replace_train(optimizer=lambda v: v), "train.optimizer"),
    "train.loss": (replace_train(loss=lambda v: v), "train.loss"),
    "train.precision": (replace_train(precision=lambda v: v), "train.precision"),
    "train.memory_format": (replace_train(memory_format=lambda v: v), "train.memory_format"),
    "train.scheduler.name": (
        replace_train(scheduler=lambda v: SchedulerSpec(name=v)),
        "train.scheduler.name",
    ),
    "train.early_stopping.monitor": (
        replace_train(early_stopping=lambda v: EarlyStoppingSpec(monitor=v)),
        "train.early_stopping.monitor",
    ),
    "train.early_stopping.mode": (
        replace_train(early_stopping=lambda v: EarlyStoppingSpec(mode=v)),
        "train.early_stopping.mode",
    ),
    "train.ddp.backend": (
        replace_train(ddp=lambda v: DDPSpec(enabled=True, backend=v)),
        "train.ddp.backend",
    ),
    "data.name": (lambda v: with_data(preset("toy-mlp"), (2,), name=v), "data.name"),
    "model.layers[0].type": (replace_layer(lambda v: LayerSpec(v)), "unknown layer type"),
    "a layer's string parameter": (
        replace_layer(
            lambda v: LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": v})
        ),
        "padding",
    ),
    "a layer's parameter name": (
        replace_layer(lambda v: LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, v: 1})),
        "unknown parameter",
    ),
    "model.layers[0].name": (
        replace_layer(lambda v: LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3}, v)),
        "cannot be a module attribute",
    ),
    "a block's name": (lambda v: named_graph("dense", v), "the block name"),
}


def named_graph(layer: str, block: str) -> Experiment:
    """A graph model with a layer named `layer` and a block named `block`, used twice."""
    layers = (
        LayerSpec("Linear", {"out_features": 4}, name=layer),
        LayerSpec(block, {"repeat": 2}, name="blocks"),
        LayerSpec("Add", inputs=(layer, "blocks"), name="add"),
        LayerSpec("Linear", {"out_features": 2}, name="fc"),
    )
    blocks = {block: BlockSpec(layers=(LayerSpec("ReLU", name=layer),))}
    model = ModelSpec(layers=layers, input_shape=(2,), blocks=blocks)
    return dataclasses.replace(preset("toy-mlp"), model=model)


def shape_of(script: str, value: str) -> str:
    """The script's syntax tree with `value` masked inside string constants."""
    tree = ast.parse(script)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = node.value.replace(value, "<VALUE>")
    return ast.dump(tree)


def string_constants(script: str) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(script))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def from_file(experiment: Experiment, folder: Path) -> Experiment:
    """The experiment written to TOML and read back, as `workbench export-script` reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    save_experiment(experiment, folder / "exp.toml")
    return load_experiment(folder / "exp.toml")


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
@pytest.mark.parametrize("field", ACCEPTED)
def test_a_hostile_value_stays_one_string_literal_of_the_script(
    field: str, payload: str, tmp_path: Path
) -> None:
    make = ACCEPTED[field]
    hostile = from_file(make(payload), tmp_path / "hostile")
    script = export_script(hostile)
    benign = export_script(from_file(make(BENIGN), tmp_path / "benign"))
    # The same program as with a harmless value: the value changed only what a string holds...
    assert shape_of(script, payload) == shape_of(benign, BENIGN)
    # ...and the script holds the original value as one literal, exactly.
    assert payload in string_constants(script)
    compile(script, "train.py", "exec")


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_hostile_file_name_stays_inside_the_docstring(payload: str) -> None:
    source = f"{payload}.toml"
    script = export_script(preset("toy-mlp"), source)
    benign = export_script(preset("toy-mlp"), f"{BENIGN}.toml")
    assert shape_of(script, source) == shape_of(benign, f"{BENIGN}.toml")
    docstring = ast.get_docstring(ast.parse(script), clean=False)
    assert docstring is not None and f"exported from {source} by Torch" in docstring


@pytest.mark.parametrize("payload", PAYLOADS[:5], ids=range(5))
@pytest.mark.parametrize("field", REFUSED)
def test_a_hostile_value_in_a_field_with_fixed_names_is_refused(field: str, payload: str) -> None:
    """An experiment built in code meets the file's validation before any script is written."""
    make, named = REFUSED[field]
    with pytest.raises(WorkbenchError) as caught:
        export_script(make(payload), "exp.toml")
    assert named in str(caught.value)


def test_running_the_hostile_scripts_never_runs_a_payload(tmp_path: Path) -> None:
    """Each script runs without workbench importable, until its missing data stops it."""
    scripts = {
        f"{field}-{index}": export_script(make(payload))
        for field, make in ACCEPTED.items()
        for index, payload in enumerate(PAYLOADS)
    }
    toy = dataclasses.replace(
        preset("toy-mlp"), train=dataclasses.replace(preset("toy-mlp").train, epochs=1)
    )
    for index, payload in enumerate(PAYLOADS):
        scripts[f"file-name-{index}"] = export_script(toy, f"{payload}.toml")
    run_standalone(tmp_path, scripts)
    output = (tmp_path / "data.root-0" / "stdout.txt").read_text()
    assert "Traceback" in output and "Dataset not found" in output  # stopped at its data
    assert (tmp_path / "file-name-0" / "model.pth").is_file()  # the toy scripts ran to the end
    assert not list(tmp_path.rglob(MARKER))


def test_export_script_verb_with_a_hostile_file_name(tmp_path: Path) -> None:
    name = 'we"""ird\\name\n.toml'
    experiment_file = tmp_path / name
    save_experiment(preset("toy-mlp"), experiment_file)
    out = tmp_path / "train.py"
    args = build_parser().parse_args(["export-script", str(experiment_file), "-o", str(out)])
    assert args.run(args) == 0
    script = out.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(script), clean=False)
    assert docstring is not None and f"exported from {name} by Torch" in docstring


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_device_the_validation_missed_would_still_be_a_literal(
    payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with the validation switched off, the device is still only data."""
    monkeypatch.setattr(rules, "validated", lambda experiment, source: experiment)
    script = export_script(replace_train(device=lambda v: v)(payload))
    benign = export_script(replace_train(device=lambda v: v)(BENIGN))
    assert shape_of(script, payload) == shape_of(benign, BENIGN)
    assert payload in string_constants(script)


def test_literals_read_back_as_the_value_and_never_use_a_subclass_repr() -> None:
    values: list[object] = [*PAYLOADS, None, True, False, 0, -3, 2.5, 1e-300, (1,), (2, "a"), [1.0]]
    for value in values:
        assert ast.literal_eval(literal(value)) == value
    infinite = eval(literal(float("-inf")), {"__builtins__": {"float": float}})
    assert infinite == float("-inf")

    class Sneaky(str):
        def __repr__(self) -> str:
            return TOUCH

    class SneakyNumber(int):
        def __repr__(self) -> str:
            return TOUCH

    assert literal(Sneaky("cpu")) == '"cpu"'
    assert literal(SneakyNumber(3)) == "3"
    with pytest.raises(ExperimentError, match="cannot be written into a script"):
        literal({"a": 1})


def test_docstring_text_reads_back_unchanged() -> None:
    for text in [*PAYLOADS, 'a"""b', "end\\", 'end"', "tab\there"]:
        assert ast.literal_eval(f'"""{doc_text(text)}"""') == text


@pytest.mark.parametrize("payload", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_layer_and_block_names_the_validation_missed_would_still_be_literals(
    payload: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defence in depth: with the name checks switched off, the engine builds the model and
    the script still holds each name only as a string; its model builds with the same keys."""
    monkeypatch.setattr(rules, "validated", lambda experiment, source: experiment)
    monkeypatch.setattr(model_graph, "name_problem", lambda name: None)
    monkeypatch.setattr(model_planner, "block_problems", lambda spec, block: [])
    script = export_script(named_graph(payload, payload))
    benign = export_script(named_graph(BENIGN, BENIGN))
    assert shape_of(script, payload) == shape_of(benign, BENIGN)
    assert payload in string_constants(script)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "exported"}
    exec(compile(script, "train.py", "exec"), namespace)
    keys = list(namespace["build_model"]().state_dict())
    assert keys == [f"{payload}.weight", f"{payload}.bias", "fc.weight", "fc.bias"]
    assert not list(tmp_path.rglob(MARKER))
