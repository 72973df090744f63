"""A sweep folder read back for the window: its keys, metric and every trial's state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.sweep import SweepRunner
from workbench.engine.sweep_folder import read_sweep_folder
from workbench.engine.sweep_plan import SweepError, SweepSpec


def toy_sweep(folder: Path) -> list[object]:
    base = load_experiment(PRESETS / "toy-mlp.toml")
    experiment = with_overrides(base, {"train.epochs": 2, "train.device": "cpu"}, source="test")
    spec = SweepSpec(experiment, grid=(("train.lr", (0.5, 0.1)),), metric="val_accuracy")
    return list(SweepRunner(spec, folder).run())


def test_a_finished_sweep_reads_back_as_it_ran(tmp_path: Path) -> None:
    ran = toy_sweep(tmp_path / "s")
    sweep = read_sweep_folder(tmp_path / "s")
    assert sweep.keys == ("train.lr",) and sweep.metric == "val_accuracy"
    assert [r.state() for r in sweep.results] == [r.state() for r in ran]  # type: ignore[attr-defined]
    assert [r.trial.experiment.train.lr for r in sweep.results] == [0.5, 0.1]


def test_folders_that_are_not_sweeps_are_named_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SweepError) as missing:
        read_sweep_folder(tmp_path)
    assert str(missing.value).startswith(f"{tmp_path / 'sweep.json'}: cannot be read (")
    assert str(missing.value).endswith(
        "pick a folder that `workbench sweep --out` or the Experiments tab wrote"
    )
    (tmp_path / "sweep.json").write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(SweepError, match="not a Torch Workbench sweep file"):
        read_sweep_folder(tmp_path)
    (tmp_path / "sweep.json").write_text(
        json.dumps({"format": "workbench-sweep/1", "experiment": ""}), encoding="utf-8"
    )
    with pytest.raises(SweepError, match=r"sweep.json: damaged \(KeyError: 'trials'\)"):
        read_sweep_folder(tmp_path)
