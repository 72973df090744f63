"""`workbench quantize` as a user runs it: the card on stdout, files on disk, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.engine.experiment import load_experiment
from workbench.engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--repeats", "2", "--threads", "1")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The digits preset trained for 3 epochs, as `workbench train --out` leaves it."""
    folder = tmp_path_factory.mktemp("run")
    experiment_file = folder / "digits-mlp.toml"
    text = (ROOT / "resources" / "presets" / "digits-mlp.toml").read_text()
    experiment_file.write_text(text.replace("epochs = 10", "epochs = 3"))
    Trainer(load_experiment(experiment_file), out_dir=folder / "out").fit()
    return experiment_file, folder / "out"


@pytest.mark.parametrize("method", ["dynamic", "static", "qat"])
def test_prints_the_card_and_writes_model_and_json(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    trained_run: tuple[Path, Path],
    method: str,
) -> None:
    experiment, run = trained_run
    code, out, err = run_cli(
        capsys,
        "quantize", experiment, "--weights", run / "model.pth", "--method", method,
        "-o", tmp_path, "--calibration", "64", *FAST,
    )  # fmt: skip
    assert code == 0, err
    model = tmp_path / f"model-{method}-int8.pth"
    report = tmp_path / f"model-{method}-int8.report.json"
    assert model.is_file() and report.is_file()
    assert f"Quantization report: {method}" in out
    for row in ("accuracy", "size on disk", "latency, batch 1", "latency, batch 64", "throughput"):
        assert any(line.startswith(row) for line in out.splitlines()), row
    assert "torch.inference_mode" in out and "channels_last" in out
    assert f"Report: {report}" in out
    data = json.loads(report.read_text())
    assert data["method"] == method
    assert abs(data["accuracy_change_points"]) <= 2.0
    assert data["quantized"]["size_bytes"] == model.stat().st_size
    assert "[100%] done" in err  # progress goes to stderr, the card to stdout


def test_a_file_name_for_out_and_the_full_run_checkpoint_as_weights(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trained_run: tuple[Path, Path]
) -> None:
    experiment, run = trained_run
    target = tmp_path / "small.pth"
    code, _out, err = run_cli(
        capsys, "quantize", experiment, "--weights", run / "checkpoint.pt", "--method", "dynamic",
        "-o", target, *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert target.is_file() and (tmp_path / "small.report.json").is_file()


def test_bad_weights_file_is_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trained_run: tuple[Path, Path]
) -> None:
    experiment, _run = trained_run
    bogus = tmp_path / "weights.pth"
    bogus.write_text("not weights")
    code, out, err = run_cli(
        capsys, "quantize", experiment, "--weights", bogus, "--method", "static", "-o", tmp_path
    )
    assert code == 2
    assert f"error: {bogus}: the file is text" in err
    assert "Traceback" not in err and out == ""
    assert list(tmp_path.iterdir()) == [bogus]


def test_weights_of_another_model_are_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trained_run: tuple[Path, Path]
) -> None:
    experiment, _run = trained_run
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    code, _out, err = run_cli(
        capsys, "quantize", experiment, "--weights", other, "--method", "dynamic", "-o", tmp_path
    )
    assert code == 2
    assert "does not fit the model" in err and "missing" in err


def test_unsafe_weights_are_refused_not_loaded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trained_run: tuple[Path, Path]
) -> None:
    experiment, _run = trained_run
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"weights": torch.zeros(2), "when": shutil.disk_usage}, unsafe)
    code, _out, err = run_cli(
        capsys, "quantize", experiment, "--weights", unsafe, "--method", "dynamic", "-o", tmp_path
    )
    assert code == 2
    assert "shutil" in err


def test_existing_output_needs_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trained_run: tuple[Path, Path]
) -> None:
    experiment, run = trained_run
    target = tmp_path / "q.pth"
    target.write_bytes(b"keep me")
    argv = ("quantize", experiment, "--weights", run / "model.pth", "--method", "dynamic")
    code, _out, err = run_cli(capsys, *argv, "-o", target)
    assert code == 2 and "exists; pass --force" in err
    assert target.read_bytes() == b"keep me"
    code, _out, err = run_cli(capsys, *argv, "-o", target, "--force", *FAST)
    assert code == 0, err
    assert target.read_bytes() != b"keep me"


def test_nothing_to_quantize_is_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    experiment = tmp_path / "conv.toml"
    experiment.write_text(
        '[model]\nlayers = [{ type = "Conv2d", out_channels = 10, kernel_size = 8 }, '
        '{ type = "Flatten" }]\n[data]\nname = "digits"\n'
    )
    weights = tmp_path / "conv.pth"
    torch.save({"0.weight": torch.zeros(10, 1, 8, 8), "0.bias": torch.zeros(10)}, weights)
    code, out, err = run_cli(
        capsys, "quantize", experiment, "--weights", weights, "--method", "dynamic",
        "-o", tmp_path / "q",
    )  # fmt: skip
    assert code == 1
    assert "quantization failed: dynamic quantization converts Linear" in err
    assert out == "" and not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--calibration", "0"), "calibration: 0 samples is too few"),
        (("--path", "torchao", "--method", "static"), "path 'torchao' runs dynamic"),
        (("--backend", "tpu"), "backend 'tpu' is not available on this machine"),
    ],
)
def test_bad_options_are_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    trained_run: tuple[Path, Path],
    extra: tuple[str, ...],
    message: str,
) -> None:
    experiment, run = trained_run
    code, _out, err = run_cli(
        capsys, "quantize", experiment, "--weights", run / "model.pth", "--method", "dynamic",
        "-o", tmp_path, *extra,
    )  # fmt: skip
    assert code == 2
    assert message in err


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["quantize", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--weights", "--method", "--calibration", "--qat-epochs", "--compile", "-o"):
        assert option in out
