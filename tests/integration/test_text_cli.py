"""Language models from the command line: the tiny-gpt and lstm-text presets trained on a text
the test writes, `generate`, DDP and bf16 runs, int8 quantization and export-script."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch

from tests.conftest import PRESETS, ROOT
from workbench.cli import main
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.script_export import export_script

PRESET_NAMES = ("tiny-gpt", "lstm-text")
TEXT = (
    "the cat sat on the mat and the dog sat on the log. "
    "a bird sang in the tree and the sun shone on the hill.\n"
) * 24  # about 2,600 characters, 19 of them distinct


def small_preset(name: str, folder: Path, **train: Any) -> Path:
    """The preset's model and training, on the test's text, with small blocks and epochs."""
    values = tomllib.loads((PRESETS / f"{name}.toml").read_text(encoding="utf-8"))
    values["data"].update(path=str(folder / "corpus.txt"), block_size=16, batch_size=16)
    values["train"].update({"epochs": 3, "device": "cpu", **train})
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("text")
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def trained(corpus: Path) -> dict[str, tuple[Path, Path, str]]:
    """Each preset trained once: (experiment, run folder, what the run printed)."""
    runs = {}
    for name in PRESET_NAMES:
        experiment = small_preset(name, corpus)
        out = corpus / f"run-{name}"
        events = corpus / f"{name}.events"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        args = ["train", str(experiment), "--out", str(out), "--events", str(events)]
        done = subprocess.run(
            [sys.executable, "-m", "workbench", *args],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = (experiment, out, done.stdout)
    return runs


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_a_preset_trains_on_text_with_falling_loss_and_perplexity(
    name: str, trained: dict[str, tuple[Path, Path, str]]
) -> None:
    _, out, printed = trained[name]
    assert "Unigram baseline: a model that ignores the context scores Val Loss" in printed
    epoch_lines = [
        line for line in printed.splitlines() if line.startswith("Epoch: ") and "| Val PPL:" in line
    ]
    assert len(epoch_lines) == 3 and "Train Acc" not in printed
    assert "Sample after epoch 3:" in printed
    events = [json.loads(line) for line in (out.parent / f"{name}.events").read_text().splitlines()]
    first_loss = next(e["loss"] for e in events if e["event"] == "batch_end")
    epochs = [e for e in events if e["event"] == "epoch_end"]
    assert epochs[-1]["train_loss"] < first_loss  # it learns
    assert epochs[-1]["val_perplexity"] == pytest.approx(math.exp(epochs[-1]["val_loss"]))
    assert epochs[-1]["val_bits_per_char"] == pytest.approx(epochs[-1]["val_loss"] / math.log(2))
    assert epochs[-1]["tokens_per_second"] == pytest.approx(16 * epochs[-1]["samples_per_second"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "next_token" and summary["val_accuracy"] is None
    assert summary["val_perplexity"] == pytest.approx(math.exp(summary["val_loss"]))
    assert summary["val_loss"] < summary["unigram_val_loss"]  # below the baseline
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[-1]["val_perplexity"]) == pytest.approx(summary["val_perplexity"])


def test_generate_streams_reproducible_text_for_a_seed(
    capsys: pytest.CaptureFixture[str], trained: dict[str, tuple[Path, Path, str]]
) -> None:
    experiment, out, _ = trained["tiny-gpt"]
    args = ["generate", experiment, "--weights", out / "model.pth", "--prompt", "the "]
    first = cli(capsys, *args, "--tokens", 40, "--seed", 7)
    again = cli(capsys, *args, "--tokens", 40, "--seed", 7)
    other = cli(capsys, *args, "--tokens", 40, "--seed", 8, "--temperature", 1.5, "--top-k", 0)
    assert first[0] == 0 and first == again
    assert first[1].startswith("the ") and len(first[1]) == len("the ") + 40 + 1
    assert set(first[1]) <= set(TEXT) | {"\n"}
    assert other[0] == 0 and other[1] != first[1]


def test_a_prompt_outside_the_vocabulary_is_refused_with_exit_2(
    capsys: pytest.CaptureFixture[str], trained: dict[str, tuple[Path, Path, str]]
) -> None:
    experiment, out, _ = trained["lstm-text"]
    code, printed, err = cli(
        capsys, "generate", experiment, "--weights", out / "model.pth", "--prompt", "The Cat"
    )
    assert code == 2 and printed == ""
    assert err == (
        "error: the prompt: 'C', 'T' are not in the vocabulary (the 19 characters of the "
        "training text); use only characters that occur in it\n"
    )


def test_generate_refuses_a_model_that_is_not_a_text_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch.save({}, tmp_path / "model.pth")
    code, _, err = cli(capsys, "generate", "toy-mlp", "--weights", tmp_path / "model.pth")
    assert code == 2
    assert 'generating needs a next-token model trained on text (data.name = "text")' in err


def test_ddp_on_two_processes_trains_the_tiny_gpt(corpus: Path, tmp_path: Path) -> None:
    experiment = small_preset("tiny-gpt", corpus, epochs=1)
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["train", str(experiment), "--nproc", "2", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["task"] == "next_token"
    assert math.isfinite(summary["val_perplexity"])
    assert "| Val PPL:" in done.stdout


def test_bf16_mixed_on_the_cpu_trains_the_tiny_gpt(
    capsys: pytest.CaptureFixture[str], corpus: Path, tmp_path: Path
) -> None:
    experiment = small_preset("tiny-gpt", corpus, epochs=1)
    code, printed, _ = cli(
        capsys, "train", experiment, "--precision", "bf16-mixed", "--out", tmp_path / "bf16"
    )
    assert code == 0 and "(bf16-mixed, world size 1" in printed
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert summary["precision"] == "bf16-mixed" and math.isfinite(summary["val_loss"])


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_dynamic_int8_writes_a_report_with_size_and_latency_per_token(
    name: str,
    capsys: pytest.CaptureFixture[str],
    trained: dict[str, tuple[Path, Path, str]],
    tmp_path: Path,
) -> None:
    experiment, out, _ = trained[name]
    code, printed, _ = cli(
        capsys, "quantize", experiment, "--weights", out / "model.pth", "--method", "dynamic",
        "-o", tmp_path, "--repeats", 3,
    )  # fmt: skip
    assert code == 0
    assert "latency per generated token: float" in printed
    report = json.loads((tmp_path / "model-dynamic-int8.report.json").read_text())
    assert report["quantized"]["size_bytes"] < report["float"]["size_bytes"]
    latency = report["per_token_latency_ms"]
    assert latency["float"] > 0 and latency["int8"] > 0 and latency["context"] == 16
    assert abs(report["val_loss"]["change"]) < 0.1  # int8 weights barely move the loss


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_export_script_builds_the_same_model_and_is_lint_clean(name: str, tmp_path: Path) -> None:
    experiment = load_experiment(PRESETS / f"{name}.toml")
    script = export_script(experiment, f"{name}.toml")
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(script, "train.py", "exec"), namespace)
    torch.manual_seed(0)
    theirs = namespace["build_model"]()  # type: ignore[operator]
    torch.manual_seed(0)
    ours = build_experiment_model(experiment).module
    x = torch.randint(0, 61, (2, 64))
    with torch.inference_mode():
        torch.testing.assert_close(theirs.eval()(x), ours.eval()(x))  # type: ignore[attr-defined]
    (tmp_path / "train.py").write_text(script, encoding="utf-8")
    ruff = Path(sys.executable).with_name("ruff")
    lint = subprocess.run(
        [str(ruff), "check", "--isolated", "--line-length", "100", "--select", "E,F,W,I,B,UP",
         str(tmp_path / "train.py")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout
