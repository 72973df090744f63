"""Hostile experiment files: NaN and infinity anywhere, and nesting 50,000 levels deep."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.engine.datasets import describe_dataset
from workbench.engine.errors import DatasetError, ExperimentError
from workbench.engine.experiment import (
    DataSpec,
    EarlyStoppingSpec,
    SchedulerSpec,
    TrainSpec,
    experiment_from_dict,
    load_experiment,
)

TABLES = {
    "data": DataSpec,
    "train": TrainSpec,
    "train.scheduler": SchedulerSpec,
    "train.early_stopping": EarlyStoppingSpec,
}


def float_fields() -> list[str]:
    """Every float field of the specs, as a key path (lr, momentum, ..., gamma, factor)."""
    found = []
    for table, spec in TABLES.items():
        hints = typing.get_type_hints(spec)
        for spec_field in dataclasses.fields(spec):
            if float in (hints[spec_field.name], *typing.get_args(hints[spec_field.name])):
                found.append(f"{table}.{spec_field.name}")
    return found


def test_the_float_fields_are_the_ones_the_issue_names() -> None:
    assert {
        "train.lr",
        "train.momentum",
        "train.weight_decay",
        "train.gradient_clip_val",
        "data.val_split",
        "train.scheduler.gamma",
        "train.scheduler.factor",
    } <= set(float_fields())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
@pytest.mark.parametrize("key", float_fields())
def test_every_float_field_refuses_nan_and_inf(tmp_path: Path, key: str, value: str) -> None:
    *tables, name = key.split(".")
    path = tmp_path / "exp.toml"
    path.write_text(f"[{'.'.join(tables)}]\n{name} = {value}\n")
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    shown = "nan" if "nan" in value else value.lstrip("+")
    assert str(caught.value).startswith(f"{path}: {key}: {shown} is not a finite number")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[data]\nname = "moons"\noptions = { noise = nan }', "data.options.noise"),
        ('[data]\nname = "circles"\noptions = { factor = inf }', "data.options.factor"),
        ('[model]\nlayers = [{ type = "Dropout", p = nan }]', "model.layers[0].p"),
        ('[train]\nscheduler = { name = "multistep", milestones = [1, inf] }', "milestones[1]"),
    ],
)
def test_nan_and_inf_are_refused_wherever_they_are(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    with pytest.raises(ExperimentError, match=re.escape(f"{key}: ")):
        load_experiment(path)


def test_dataset_options_built_in_code_refuse_nan_too() -> None:
    with pytest.raises(DatasetError, match=r"data.options.noise: nan is not a finite number"):
        describe_dataset(DataSpec(name="moons", options={"noise": math.nan}))


def test_overrides_and_dicts_are_checked_like_files() -> None:
    with pytest.raises(ExperimentError, match=r"command line: train.lr: inf is not a finite"):
        experiment_from_dict({"train": {"lr": math.inf}}, source="command line")


DEEP = 50_000


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * DEEP + "]" * DEEP,
        "[data]\noptions = " + "{ a = " * DEEP + "1" + " }" * DEEP,
        "[" + ".".join(["a"] * DEEP) + "]",
        "[data.options" + ".a" * DEEP + "]",
    ],
    ids=["arrays", "inline-tables", "table-headers", "option-headers"],
)
def test_nesting_50000_deep_is_a_named_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "levels" in str(caught.value)


@pytest.mark.parametrize("verb", ["summary", "train"])
def test_the_cli_says_so_with_exit_2(
    tmp_path: Path, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * DEEP + "]" * DEEP)
    nan = tmp_path / "nan.toml"
    nan.write_text("[data]\nval_split = nan\n")
    assert main([verb, str(deep)]) == 2
    assert main([verb, str(nan)]) == 2
    err = capsys.readouterr().err
    assert "levels" in err and "data.val_split: nan is not a finite number" in err
    assert "unexpected" not in err


def test_escapes_in_a_key_are_shown_not_obeyed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ansi.toml"
    path.write_text('[train]\n"\\u001b[2J\\u202eevil" = 1\n')
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err
    assert "train.\\x1b[2J\\u202eevil: unknown key" in err
    assert "\x1b" not in err and "\u202e" not in err
