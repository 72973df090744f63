"""The `workbench` command as a user runs it: output lines, files written, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS, ROOT
from workbench.cli import main
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_train_toy_prints_six_batch_lines_and_reaches_full_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli("train", str(PRESETS / "toy-mlp.toml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    batch_lines = [line for line in result.stdout.splitlines() if "| Batch " in line]
    assert len(batch_lines) == 6
    assert batch_lines[0].startswith("Epoch: 001/003 | Batch 000/002 | Train/Val Loss: ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_accuracy"] == 1.0 and summary["val_accuracy"] == 1.0
    assert summary["epochs_completed"] == 3 and summary["world_size"] == 1
    model = build_experiment_model(load_experiment(PRESETS / "toy-mlp.toml")).module
    model.load_state_dict(torch.load(out / "model.pth", weights_only=True))
    assert (out / "metrics.csv").read_text().count("\n") == 4
    assert load_experiment(out / "experiment.toml") == load_experiment(PRESETS / "toy-mlp.toml")


def test_events_stream_json_lines_to_stdout(tmp_path: Path) -> None:
    result = run_cli("train", str(PRESETS / "toy-mlp.toml"), "--events", "-", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("batch_end") == 2 and kinds.count("epoch_end") == 1
    batch = next(event for event in events if event["event"] == "batch_end")
    assert set(batch) >= {"epoch", "batch", "batches", "loss", "step"}
    assert "Epoch: 001/001 | Batch 000/002" in result.stderr  # the human lines moved to stderr


def test_overrides_are_validated_like_the_file() -> None:
    result = run_cli("train", str(PRESETS / "toy-mlp.toml"), "--precision", "fp16")
    assert result.returncode == 2
    assert (
        "command line: train.precision: 'fp16' is not allowed; choose one of 32-true"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_fp16_on_cpu_is_refused_before_training() -> None:
    result = run_cli(
        "train", str(PRESETS / "toy-mlp.toml"), "--precision", "16-mixed", "--device", "cpu"
    )
    assert result.returncode == 2
    assert "float16 mixed precision needs a CUDA GPU; on the CPU use bf16-mixed" in result.stderr


def test_a_failed_run_exits_1_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "diverge.toml"
    bad.write_text((PRESETS / "toy-mlp.toml").read_text().replace("lr = 0.5", "lr = 1e30").replace(
        'loss = "cross_entropy"', 'loss = "mse"'))  # fmt: skip
    result = run_cli("train", str(bad), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "Training failed: the loss became" in result.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def test_bad_experiment_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepoch = 3\n")
    assert main(["train", str(bad)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {bad}: train.epoch: unknown key; did you mean 'epochs'?"
    )


def test_resume_continues_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        run_cli(
            "train", str(PRESETS / "toy-mlp.toml"), "--out", str(out), "--epochs", "1"
        ).returncode
        == 0
    )
    result = run_cli(
        "train",
        str(PRESETS / "toy-mlp.toml"),
        "--out",
        str(out),
        "--resume",
        str(out / "checkpoint.pt"),
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Epoch: 001/003" not in result.stdout and "Epoch: 002/003 | Batch 000/002" in result.stdout
    )


def test_summary_prints_the_classic_parameter_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlp = tmp_path / "mlp.toml"
    mlp.write_text(
        "[model]\ninput_shape = [50]\nlayers = [\n"
        '  { type = "Linear", out_features = 30 }, { type = "ReLU" },\n'
        '  { type = "Linear", out_features = 20 }, { type = "ReLU" },\n'
        '  { type = "Linear", out_features = 3 },\n]\n'
    )
    assert main(["summary", str(mlp)]) == 0
    assert "Total number of trainable model parameters: 2213" in capsys.readouterr().out
    assert main(["summary", str(PRESETS / "mnist-cnn.toml")]) == 0
    out = capsys.readouterr().out
    assert "Total number of trainable model parameters: 609354" in out
    assert "Linear(in_features=9216, out_features=64, bias=True)" in out


def test_every_preset_summarises(capsys: pytest.CaptureFixture[str]) -> None:
    for preset in sorted(PRESETS.glob("*.toml")):
        assert main(["summary", str(preset)]) == 0, preset
    assert capsys.readouterr().out.count("Total number of trainable model parameters") == len(
        list(PRESETS.glob("*.toml"))
    )


def test_version_and_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("workbench 0.1.0") and f"torch {torch.__version__}" in out
    assert main(["devices"]) == 0
    assert "cpu" in capsys.readouterr().out


def test_every_verb_has_help() -> None:
    from workbench.cli import _verbs

    for verb in sorted(_verbs()):
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0, verb


def test_experiment_verbs_take_a_preset_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", "toy-mlp"]) == 0
    assert main(["export-script", "toy-mlp", "-o", str(tmp_path / "train.py")]) == 0
    assert "def main" in (tmp_path / "train.py").read_text()
    model = build_experiment_model(load_experiment(PRESETS / "toy-mlp.toml")).module
    torch.save(model.state_dict(), tmp_path / "w.pth")
    assert main(["reconcile", str(tmp_path / "w.pth"), "toy-mlp"]) == 0
    assert main(["summary", "no-such-preset"]) == 2
    assert "not a preset name" in capsys.readouterr().err
