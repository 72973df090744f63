"""Reproducibility: run.json in every run folder, --deterministic and its cost, workbench rerun."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench import __version__
from workbench.cli import main
from workbench.engine.experiment import load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.trainer import Trainer

SUMMARY_KEYS = {
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epochs_completed",
    "samples_per_second",
    "wall_seconds",
    "parameters",
    "precision",
    "device",
    "world_size",
    "status",
}


def test_every_run_folder_records_versions_device_seed_and_flags(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "toy-mlp", "--epochs", "2", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["format"] == "workbench-run/1"
    assert record["python"] == platform.python_version() and record["torch"] == torch.__version__
    assert record["workbench"] == __version__ and record["cuda"] == torch.version.cuda
    assert record["torchvision"] and record["device"] == "cpu" and record["seed"] == 123
    assert record["deterministic"] is False
    assert record["flags"]["command"] == "train" and record["flags"]["epochs"] == 2
    assert record["flags"]["oom_rescue"] is False
    assert set(json.loads((out / "summary.json").read_text())) >= SUMMARY_KEYS  # as before
    # Runs started elsewhere (the window, a sweep) record theirs too.
    trainer = Trainer(load_experiment(PRESETS / "toy-mlp.toml"), out_dir=tmp_path / "window")
    trainer.fit()
    assert json.loads((tmp_path / "window" / "run.json").read_text())["flags"] == {}


def test_deterministic_prints_its_cost_and_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train", "toy-mlp", "--deterministic", "--out", str(out)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("Deterministic algorithms on: a training step takes ")
    assert "x as long (CPU time, fastest of 3 rounds each way on cpu: " in first_line
    record = json.loads((out / "run.json").read_text())
    assert record["deterministic"] is True and record["flags"]["deterministic"] is True
    assert record["flags"]["determinism_cost"] > 0
    assert torch.are_deterministic_algorithms_enabled() is False  # put back after the run


def test_deterministic_names_an_operation_without_a_deterministic_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.engine.reproducibility as reproducibility

    def refuse(*args: object, **kwargs: object) -> float:
        if torch.are_deterministic_algorithms_enabled():
            raise RuntimeError(
                "adaptive_max_pool2d_backward_cuda does not have a deterministic implementation"
            )
        return 0.0

    monkeypatch.setattr(reproducibility, "train_step", refuse)
    assert main(["train", "toy-mlp", "--deterministic"]) == 2
    assert (
        "error: --deterministic: adaptive_max_pool2d_backward_cuda does not have a deterministic "
        "implementation; train without --deterministic" in capsys.readouterr().err
    )


def test_rerun_repeats_a_run_bit_for_bit_into_a_new_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = tmp_path / "run"
    assert main(["train", "digits-mlp", "--epochs", "2", "--out", str(original)]) == 0
    capsys.readouterr()
    assert main(["rerun", str(original)]) == 0
    out = capsys.readouterr().out
    assert f"Repeating {original} into {tmp_path / 'run-rerun'}" in out
    assert "Note:" not in out  # same machine, same versions
    assert "  val_loss: " in out and "(same)" in out and "(differs)" not in out
    assert "  weights: bit-identical" in out
    rerun = tmp_path / "run-rerun"
    assert load_experiment(rerun / "experiment.toml") == load_experiment(
        original / "experiment.toml"
    )
    assert main(["rerun", str(original)]) == 0
    assert (tmp_path / "run-rerun-2" / "model.pth").is_file()


def test_rerun_keeps_the_runs_flags_and_says_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = tmp_path / "run"
    assert main(["train", "toy-mlp", "--deterministic", "--out", str(original)]) == 0
    record = json.loads((original / "run.json").read_text())
    (original / "run.json").write_text(json.dumps({**record, "torch": "2.0.0"}))
    capsys.readouterr()
    assert main(["rerun", str(original), "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert f"Note: recorded with torch 2.0.0, now {torch.__version__}; the numbers may" in out
    assert "with deterministic algorithms" in out and "Deterministic algorithms on:" in out
    assert json.loads((tmp_path / "again" / "run.json").read_text())["deterministic"] is True


def test_rerun_of_an_older_run_or_of_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = tmp_path / "older"
    experiment = with_overrides(load_experiment(PRESETS / "toy-mlp.toml"), {}, source="test")
    Trainer(experiment, out_dir=older).fit()
    (older / "run.json").unlink()
    assert main(["rerun", str(older)]) == 0
    assert "has no run.json (an older run): versions and flags unknown" in capsys.readouterr().out
    assert main(["rerun", str(tmp_path / "nothing")]) == 2
    assert "nothing: not a run folder (no experiment.toml)" in capsys.readouterr().err
