"""Experiment files: round trip, and one clear message for every kind of bad value."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from tests.conftest import PRESETS
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import (
    Experiment,
    LayerSpec,
    dump_experiment,
    load_experiment,
    parse_experiment,
    save_experiment,
)

GOOD = """
[model]
input_shape = [1, 28, 28]
layers = [
  { type = "Conv2d", out_channels = 32, kernel_size = 3, stride = 1 },
  { type = "ReLU" },
  { type = "Flatten" },
  { type = "Linear", out_features = 10 },
]

[data]
name = "mnist"
batch_size = 64
options = { n_samples = 500, noise = 0.1 }

[train]
epochs = 3
optimizer = "adadelta"
lr = 1.0
loss = "nll"
scheduler = { name = "step", step_size = 1, gamma = 0.7 }
early_stopping = { monitor = "val_loss", patience = 3 }
gradient_clip_val = 1.0

[train.ddp]
enabled = true
nproc_per_node = 2
"""


def test_good_file_is_read_with_every_value() -> None:
    experiment = parse_experiment(GOOD)
    assert experiment.model.input_shape == (1, 28, 28)
    assert experiment.model.layers[0] == LayerSpec(
        "Conv2d", {"out_channels": 32, "kernel_size": 3, "stride": 1}
    )
    assert experiment.data.name == "mnist" and experiment.data.options["noise"] == 0.1
    assert experiment.train.scheduler is not None and experiment.train.scheduler.gamma == 0.7
    assert experiment.train.early_stopping is not None
    assert experiment.train.ddp.enabled and experiment.train.gradient_clip_val == 1.0
    assert experiment.train.lr == 1.0 and isinstance(experiment.train.lr, float)


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    experiment = parse_experiment(GOOD)
    save_experiment(experiment, tmp_path / "exp.toml")
    assert load_experiment(tmp_path / "exp.toml") == experiment
    assert parse_experiment(dump_experiment(experiment)) == experiment


def test_defaults_round_trip() -> None:
    assert parse_experiment(dump_experiment(Experiment())) == Experiment()


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_preset_loads(preset: Path) -> None:
    experiment = load_experiment(preset)
    assert experiment.model.layers


def test_specs_are_immutable_but_picklable() -> None:
    experiment = parse_experiment(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.train.lr = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="immutable"):
        experiment.model.layers[0].params["out_channels"] = 3  # type: ignore[index]
    assert pickle.loads(pickle.dumps(experiment)) == experiment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[train]\noptimizer = "adamm"',
            "train.optimizer: 'adamm' is not allowed (did you mean 'adam'?); choose one of sgd, adam",
        ),
        ("[train]\nlearning_rate = 0.1", "train.learning_rate: unknown key; known keys:"),
        ("[train]\nepoch = 3", "train.epoch: unknown key; did you mean 'epochs'?"),
        ("[train]\nepochs = 0", "train.epochs: 0 is out of range; use a value between 1 and"),
        ('[train]\nepochs = "3"', "train.epochs: '3' is not a whole number"),
        ("[train]\nlr = -1.0", "train.lr: -1.0 is out of range; use a value at least 0.0"),
        ("[data]\nbatch_size = 1.5", "data.batch_size: 1.5 is not a whole number"),
        ('[data]\nname = "mnits"', "data.name: 'mnits' is not allowed (did you mean 'mnist'?)"),
        ("[data]\nshuffle = 1", "data.shuffle: 1 is not true or false"),
        (
            '[train]\nprecision = "fp16"',
            "train.precision: 'fp16' is not allowed; choose one of 32-true",
        ),
        ("[train.ddp]\nnproc_per_node = 0", "train.ddp.nproc_per_node: 0 is out of range"),
        (
            "[model]\nlayers = [ { out_features = 3 } ]",
            "model.layers[0]: each layer is a table with a type",
        ),
        ('[model]\nlayers = "Linear"', "model.layers: expected a list"),
        ("[model]\ninput_shape = [0, 28]", "model.input_shape[0]: 0 is out of range"),
        (
            '[train]\nscheduler = { name = "cosin" }',
            "train.scheduler.name: 'cosin' is not allowed (did you mean 'cosine'?)",
        ),
        (
            '[train]\ndevice = "gpu"',
            "train.device: 'gpu' is not allowed; use auto, cpu, cuda, cuda:N or mps",
        ),
        (
            '[train]\ndevice = "cpu\\"; import os; _x = \\""',
            """train.device: 'cpu"; import os; _x = "' is not allowed""",
        ),
        ("[trian]\nepochs = 3", "trian: unknown key; did you mean 'train'?"),
        ("[train\nepochs = 3", "not valid TOML"),
    ],
)
def test_bad_values_name_file_key_value_and_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


DEVICES = ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"]


@pytest.mark.parametrize("device", DEVICES, ids=[f"device={name}" for name in DEVICES])
def test_every_device_name_the_engine_resolves_is_accepted(device: str) -> None:
    assert parse_experiment(f'[train]\ndevice = "{device}"').train.device == device


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"nope\.toml: file not found"):
        load_experiment(tmp_path / "nope.toml")


def test_binary_file_is_refused_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "model.toml"
    path.write_bytes(b"\x80\x02\xff\xfe")
    with pytest.raises(ExperimentError, match="cannot read the file"):
        load_experiment(path)
