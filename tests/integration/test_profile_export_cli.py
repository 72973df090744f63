"""`workbench profile` and `workbench export` as a user runs them: output, files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.quantization import MeasureSettings, QuantizationOptions, quantize_experiment

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "resources" / "presets"
QUICK_PROFILE = ("--batches", "3", "--warmup", "1", "--threads", "1")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def offline_mnist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """mnist-cnn.toml with its data root an empty folder, and seeded weights for it."""
    folder = tmp_path_factory.mktemp("mnist")
    text = (PRESETS / "mnist-cnn.toml").read_text()
    experiment_file = folder / "mnist-cnn.toml"
    experiment_file.write_text(
        text.replace('root = "~/.cache/workbench/datasets"', f'root = "{folder / "no-data"}"')
    )
    torch.manual_seed(0)
    model = build_experiment_model(load_experiment(experiment_file)).module
    torch.save(model.state_dict(), folder / "model.pth")
    return experiment_file, folder / "model.pth"


@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    torch.manual_seed(0)
    model = build_experiment_model(load_experiment(PRESETS / "digits-mlp.toml")).module
    torch.save(model.state_dict(), folder / "digits.pth")
    return folder / "digits.pth"


def test_verbs_import_torch_only_when_they_run() -> None:
    code = (
        "import sys, workbench.commands.export, workbench.commands.profile; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_profile_prints_the_table_marks_the_hottest_layer_and_writes_a_trace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, offline_mnist: tuple[Path, Path]
) -> None:
    experiment, weights = offline_mnist
    trace = tmp_path / "traces" / "step.json"
    code, out, err = run_cli(
        capsys, "profile", experiment, "--weights", weights, *QUICK_PROFILE, "--no-what-ifs",
        "--trace", trace,
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Profile of a training step: cpu, 1 CPU thread, 32-true, batch 64")
    header = next(line for line in lines if line.startswith("layer "))
    for column in ("forward", "backward", "step share", "fwd FLOPs", "params", "activations"):
        assert column in header
    hottest = [line for line in lines if line.endswith("<- hottest")]
    assert len(hottest) == 1 and hottest[0].split()[:2] == ["conv2", "Conv2d"]
    assert any(line.startswith("Step: ") and "data loading" in line for line in lines)
    assert any(line.startswith("Peak memory: ") for line in lines)
    assert "forward (error " in out and "the whole step within" in out
    assert f"Chrome trace: {trace}" in out and trace.is_file()
    assert "[100%] done" in err and "USDT" not in err  # progress on stderr, kineto kept quiet


def test_profile_measures_what_ifs_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "profile", "digits-mlp", *QUICK_PROFILE)
    assert code == 0, err
    table = out[out.index("what if") :].splitlines()
    rows = {line.split("  ")[0]: line for line in table[2:6]}
    assert set(rows) == {"channels-last", "bf16-mixed", "torch.compile", "batch 64"}
    assert "not applicable: no 2-D convolutions" in rows["channels-last"]
    assert "x faster" in rows["batch 64"] or "x slower" in rows["batch 64"]
    assert "skipped: ask for it with --compile" in rows["torch.compile"]
    assert "the digits training split" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--batches", "0"), "batches: 0 is too few"),
        (("--device", "cpu", "--precision", "16-mixed"), "precision '16-mixed' cannot run on cpu"),
        (("--threads", "0"), "threads: 0 is too few"),
    ],
)
def test_profile_bad_options_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    offline_mnist: tuple[Path, Path],
    argv: tuple[str, ...],
    message: str,
) -> None:
    experiment, _weights = offline_mnist
    code, out, err = run_cli(capsys, "profile", experiment, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_profile_refuses_an_unwritable_trace_and_weights_that_do_not_fit(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    offline_mnist: tuple[Path, Path],
    digits_weights: Path,
) -> None:
    experiment, _weights = offline_mnist
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _out, err = run_cli(capsys, "profile", experiment, "--trace", blocker / "t.json")
    assert code == 2 and "--trace" in err and "is a file, not a folder" in err
    code, _out, err = run_cli(capsys, "profile", experiment, "--weights", digits_weights)
    assert code == 2 and "does not fit the current layer stack" in err


def test_export_onnx_prints_the_check_and_writes_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, offline_mnist: tuple[Path, Path]
) -> None:
    experiment, weights = offline_mnist
    target = tmp_path / "model.onnx"
    code, out, err = run_cli(
        capsys, "export", experiment, "--weights", weights, "--format", "onnx", "-o", target
    )
    assert code == 0, err
    assert out.startswith(f"Exported a float32 model to {target} (onnx, ")
    assert "checked with onnxruntime" in out
    assert "batch 8: largest absolute difference" in out and "batch 1:" in out
    assert "OK: within --atol 0.0001" in out and target.is_file()
    code, out, err = run_cli(
        capsys, "export", experiment, "--weights", weights, "--format", "onnx", "-o", target,
        "--atol", "1e-12", "--force",
    )  # fmt: skip
    assert code == 1, err
    assert "FAILED: the largest difference" in out and "over --atol 1e-12" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--format", "tflite"), "--format 'tflite' is not supported; choose one of onnx, pt2"),
        (("--format", "pt2", "--opset", "17"), "--opset applies to onnx only"),
        (("--format", "onnx", "--atol", "-1"), "--atol -1 must be a positive number"),
    ],
)
def test_export_bad_options_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    offline_mnist: tuple[Path, Path],
    argv: tuple[str, ...],
    message: str,
) -> None:
    experiment, weights = offline_mnist
    code, out, err = run_cli(
        capsys, "export", experiment, "--weights", weights, "-o", tmp_path / "m.onnx", *argv
    )
    assert code == 2 and out == "" and message in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_unwritable_output_and_unfit_weights_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    offline_mnist: tuple[Path, Path],
    digits_weights: Path,
) -> None:
    experiment, weights = offline_mnist
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _out, err = run_cli(
        capsys, "export", experiment, "--weights", weights, "--format", "onnx",
        "-o", blocker / "m.onnx",
    )  # fmt: skip
    assert code == 2 and "is a file, not a folder" in err
    code, _out, err = run_cli(
        capsys, "export", experiment, "--weights", digits_weights, "--format", "pt2",
        "-o", tmp_path / "m.pt2",
    )  # fmt: skip
    assert code == 2 and "does not fit the current layer stack" in err


def test_export_a_quantized_model_where_it_cannot_go_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, digits_weights: Path
) -> None:
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    state = torch.load(digits_weights, weights_only=True)
    outcome = quantize_experiment(
        experiment,
        state,
        QuantizationOptions(method="dynamic", path="eager"),
        tmp_path,
        measure=MeasureSettings(repeats=1, warmup=0, threads=1, inference_options=False),
    )
    code, out, err = run_cli(
        capsys, "export", "digits-mlp", "--weights", outcome.model_path, "--format", "onnx",
        "-o", tmp_path / "q.onnx",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert "a dynamic int8 (eager mode) model cannot be exported to onnx" in err
    assert "it exports to torchscript" in err
    code, out, err = run_cli(
        capsys, "export", "digits-mlp", "--weights", outcome.model_path, "--format",
        "torchscript", "-o", tmp_path / "q.pt",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("Exported a dynamic int8 (eager mode) model")
