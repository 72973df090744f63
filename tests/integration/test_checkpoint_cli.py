"""The checkpoint verbs as a user runs them: inspect, edit, diff, reconcile."""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import workbench.commands.reconcile as reconcile_verb
from workbench.cli import main


class MnistCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)


class RenamedCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_1 = nn.Conv2d(1, 32, 3, 1)
        self.embed_2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)


class TouchesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def mnist_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = MnistCnn().state_dict()
    path = tmp_path / "mnist_cnn.pth"
    torch.save(state, path)
    return path, state


def test_rename_via_cli_then_strict_load_into_renamed_model(
    capsys: pytest.CaptureFixture[str], mnist_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    source, state = mnist_file
    out = source.with_name("renamed.pth")
    code, stdout, _ = run_cli(
        capsys, "edit", source, "-o", out, "--rename", "conv1=embed_1", "--rename", "conv2=embed_2"
    )
    assert code == 0
    assert "rename 'conv1' -> 'embed_1': 2 key(s) renamed" in stdout
    assert "  conv2.weight -> embed_2.weight" in stdout
    model = RenamedCnn()
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert torch.equal(model.embed_1.weight, state["conv1.weight"])


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_wrapper_prefix_fixed_by_one_action(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prefix: str
) -> None:
    model = MnistCnn()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, wrapped)
    out = tmp_path / "fixed.safetensors"
    code, stdout, _ = run_cli(capsys, "edit", wrapped, "-o", out, "--strip-wrappers")
    assert code == 0 and "strip wrapper prefixes: 8 key(s) renamed" in stdout
    from safetensors.torch import load_file

    MnistCnn().load_state_dict(load_file(out), strict=True)


def lightning_file(tmp_path: Path) -> Path:
    model = nn.Linear(3, 2)
    path = tmp_path / "epoch=2.ckpt"
    torch.save(
        {
            "epoch": 2,
            "global_step": 40,
            "pytorch-lightning_version": "2.5.0",
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "optimizer_states": [torch.optim.SGD(model.parameters(), lr=0.1).state_dict()],
            "hyper_parameters": {"lr": 0.1},
        },
        path,
    )
    return path


def test_inspect_lightning_checkpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, stdout, _ = run_cli(capsys, "inspect", lightning_file(tmp_path))
    assert code == 0
    assert "Layout:  Lightning checkpoint (weights under 'state_dict')" in stdout
    assert "Tensors: 2 keys, 8 parameters, 32 B" in stdout
    assert "model.weight  [2, 3]  float32      6  24 B" in stdout
    assert "model    Linear             8  32 B" in stdout
    assert "  epoch: 2\n  global_step: 40\n" in stdout
    assert "  optimizer_states:\n    [0]:\n      state: " in stdout
    assert "  hyper_parameters:\n    lr: 0.1" in stdout


def test_inspect_json_and_stats(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"layer.weight": torch.tensor([[0.0, 2.0], [4.0, 6.0]])}, path)
    code, stdout, _ = run_cli(capsys, "inspect", path, "--json", "--stats")
    report = json.loads(stdout)
    assert code == 0 and report["format"] == "zip"
    assert report["tensors"][0]["shape"] == [2, 2]
    assert report["tensors"][0]["stats"]["mean"] == 3.0
    assert report["tensors"][0]["stats"]["zero_fraction"] == 0.25
    assert report["modules"] == [
        {"path": "layer", "type": "Embedding", "parameters": 4, "numel": 4, "bytes": 16}
    ]
    code, stdout, _ = run_cli(capsys, "inspect", path, "--stats")
    assert "zeros" in stdout and "25.0%" in stdout


def test_inspect_refuses_code_and_lists_the_global(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "x": TouchesMarker(marker)}, path)
    code, stdout, stderr = run_cli(capsys, "inspect", path)
    assert code == 2 and stdout == ""
    assert "refused to open" in stderr and "  - pathlib.Path" in stderr
    assert not marker.exists()


def test_trusted_file_with_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 1), path)
    code, stdout, stderr = run_cli(capsys, "inspect", path, "--trust-this-file")
    assert code == 0
    assert "warning: --trust-this-file" in stderr
    assert "Loaded:  in a separate process" in stdout and "weight" in stdout


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "empty (0 bytes)"),
        (bytes([0x13]) + random.Random(1).randbytes(2048), "not a PyTorch checkpoint"),
        (b"just some notes\n", "is text"),
    ],
    ids=["empty", "random", "text"],
)
def test_bad_files_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: bytes, phrase: str
) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(data)
    code, _, stderr = run_cli(capsys, "inspect", path)
    assert code == 2 and phrase in stderr and str(path) in stderr


def test_truncated_file_message(
    capsys: pytest.CaptureFixture[str], mnist_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    source, _ = mnist_file
    cut = source.with_name("cut.pth")
    cut.write_bytes(source.read_bytes()[:100_000])
    code, _, stderr = run_cli(capsys, "inspect", cut)
    assert code == 2 and "truncated or damaged" in stderr


def test_colliding_regex_is_refused_and_nothing_written(
    capsys: pytest.CaptureFixture[str], mnist_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    source, _ = mnist_file
    out = source.with_name("out.pth")
    code, _, stderr = run_cli(capsys, "edit", source, "-o", out, "--regex", r"conv\d=conv")
    assert code == 2
    assert "'conv1.weight', 'conv2.weight' would all become 'conv.weight'" in stderr
    assert not out.exists()


def test_edit_never_overwrites_without_force(
    capsys: pytest.CaptureFixture[str], mnist_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    source, _ = mnist_file
    before = source.read_bytes()
    code, _, stderr = run_cli(capsys, "edit", source, "-o", source, "--drop", "fc2")
    assert code == 2 and "is the input file; pass --force" in stderr
    assert source.read_bytes() == before
    code, stdout, _ = run_cli(capsys, "edit", source, "-o", source, "--drop", "fc2", "--force")
    assert code == 0 and "deleted fc2.bias" in stdout
    assert "fc2.weight" not in torch.load(source, weights_only=True)


def test_edit_dry_run_and_note_about_metadata(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ckpt = lightning_file(tmp_path)
    code, stdout, _ = run_cli(capsys, "edit", ckpt, "--dry-run", "--strip-prefix", "model.")
    assert code == 0 and "model.weight -> weight" in stdout and "nothing written" in stdout
    out = tmp_path / "plain.pth"
    code, stdout, _ = run_cli(capsys, "edit", ckpt, "-o", out, "--cast", "bf16")
    assert code == 0 and "note: only the state_dict was written" in stdout
    assert torch.load(out, weights_only=True)["model.weight"].dtype == torch.bfloat16


def test_diff_verb(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = tmp_path / "a.pth", tmp_path / "b.safetensors"
    torch.save({"w": torch.tensor([1.0, 2.0]), "old": torch.ones(1)}, a)
    from safetensors.torch import save_file

    save_file({"w": torch.tensor([1.0, 2.5]), "new": torch.ones(1)}, str(b))
    code, stdout, _ = run_cli(capsys, "diff", a, b)
    assert code == 0
    assert "Only in A (1)\n  old" in stdout and "Only in B (1)\n  new" in stdout
    assert "Values changed (1 of 1 shared tensors)" in stdout and "0.5" in stdout
    assert run_cli(capsys, "diff", a, b, "--exit-code")[0] == 1
    assert run_cli(capsys, "diff", a, a, "--exit-code")[0] == 0
    code, stdout, _ = run_cli(capsys, "diff", a, b, "--json")
    assert json.loads(stdout)["changes"][0]["max_abs_diff"] == 0.5


def write_experiment(tmp_path: Path) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(
        '[model]\ninput_shape = [1, 28, 28]\nlayers = [{ type = "Flatten" }]\n'
        '[data]\nname = "mnist"\n'
    )
    return path


def test_reconcile_verb_suggests_and_applies_renames(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mnist_file: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    source, state = mnist_file
    monkeypatch.setattr(reconcile_verb, "build_experiment_model", lambda *_: RenamedCnn())
    experiment = write_experiment(source.parent)
    code, stdout, _ = run_cli(capsys, "reconcile", source, experiment)
    assert code == 1
    assert "Missing from the file (4)" in stdout and "Unexpected in the file (4)" in stdout
    assert "conv1.weight  ->  embed_1.weight" in stdout
    assert "With the suggested renames the checkpoint fits" in stdout
    out = source.with_name("fixed.pth")
    code, stdout, _ = run_cli(capsys, "reconcile", source, experiment, "--apply", "-o", out)
    assert code == 0 and "strict load passed" in stdout
    model = RenamedCnn()
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert torch.equal(model.embed_1.bias, state["conv1.bias"])


def test_reconcile_with_the_real_model_builder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("workbench.engine.model_builder")
    from workbench.engine.experiment import load_experiment

    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        "[model]\ninput_shape = [1, 8, 8]\nlayers = [\n"
        '  { type = "Conv2d", out_channels = 4, kernel_size = 3 },\n  { type = "ReLU" },\n'
        '  { type = "Flatten" },\n  { type = "Linear", out_features = 10 },\n]\n'
    )
    model = reconcile_verb.build_experiment_model(load_experiment(experiment), str(experiment))
    ddp = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ddp)
    out = tmp_path / "fixed.pth"
    code, stdout, _ = run_cli(capsys, "reconcile", ddp, experiment, "--apply", "-o", out)
    assert code == 0, stdout
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)


def test_command_line_process_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(bytes([0x13]) + random.Random(2).randbytes(512))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "inspect", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}:")
    assert "Traceback" not in result.stderr
