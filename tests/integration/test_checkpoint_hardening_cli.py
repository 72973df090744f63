"""Hostile checkpoints through the command line: named errors, exit 2, bounded memory and time."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.checkpoint_crafting import (
    Storage,
    View,
    run_cli_measured,
    safetensors_with_header,
    write_torch_zip,
    write_zip_bomb,
)
from tests.conftest import PRESETS
from workbench.cli import main

GIB = 1 << 30
TOY = PRESETS / "toy-mlp.toml"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_named(code: int, stderr: str, *phrases: str) -> None:
    """Exit 2 with one readable message: never the 'unexpected error, please report' path."""
    assert code == 2, stderr
    assert "unexpected" not in stderr and "Traceback" not in stderr, stderr
    assert stderr.startswith("error: "), stderr
    for phrase in phrases:
        assert phrase in stderr, stderr


# --- bombs: memory and time measured in a fresh interpreter -------------------------------------


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_bombs_end_in_a_named_error_within_a_gigabyte(tmp_path: Path) -> None:
    bomb = write_zip_bomb(tmp_path / "bomb.pth")
    raw = torch.arange(10.0).numpy().tobytes()
    stride0 = write_torch_zip(
        tmp_path / "stride0.pth", {"w": View(Storage("0", 1), (10**9,), (0,))}, {"0": raw[:4]}
    )
    views = {f"v{i}": View(Storage("0", 80_000), (40_000, 40_000), (1, 1)) for i in range(3)}
    overlap = write_torch_zip(tmp_path / "overlap.pth", views, {"0": bytes(320_000)})
    out = tmp_path / "out.safetensors"
    commands: list[list[Any]] = [
        ["inspect", bomb],
        ["inspect", "--stats", bomb],
        ["diff", bomb, bomb],
        ["edit", bomb, "-o", out],
        ["train", TOY, "--out", tmp_path / "run", "--resume", bomb],
        ["inspect", "--stats", overlap],
        ["inspect", "--stats", stride0],
        ["edit", stride0, "-o", out],
        ["edit", stride0, "-o", tmp_path / "cast.pth", "--cast", "float16"],
    ]
    results = run_cli_measured(*commands)
    for command, measured in zip(commands, results, strict=True):
        expected = "zip bomb" if bomb in command else "views that repeat"
        assert_named(measured.code, measured.stderr, expected)
        assert measured.peak_growth < GIB, (command, measured)
        assert measured.seconds < 60, (command, measured)  # a hang, not a timing assertion
    assert not out.exists() and not (tmp_path / "cast.pth").exists()


# --- format by structure ------------------------------------------------------------------------


def test_safetensors_with_a_640_byte_header_in_every_verb(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tensors = {"fc.weight": torch.arange(6.0).reshape(2, 3), "fc.bias": torch.ones(2)}
    path = safetensors_with_header(tmp_path / "h640.safetensors", tensors, 640)
    code, stdout, _ = run_cli(capsys, "inspect", "--stats", path)
    assert code == 0 and "Format:  safetensors" in stdout and "fc.weight" in stdout
    code, stdout, _ = run_cli(capsys, "diff", path, path, "--exit-code")
    assert code == 0 and "Identical" in stdout
    out = tmp_path / "renamed.pth"
    code, stdout, _ = run_cli(capsys, "edit", path, "-o", out, "--rename", "fc=head")
    assert code == 0, stdout
    assert torch.equal(torch.load(out, weights_only=True)["head.weight"], tensors["fc.weight"])


# --- odd tensors in every verb ------------------------------------------------------------------


@pytest.fixture
def odd_file(tmp_path: Path) -> Path:
    path = tmp_path / "odd.pth"
    torch.save(
        {
            "module.fc.weight": torch.empty(2, 3, device="meta"),
            "module.fc.bias": torch.zeros(2).to(torch.float8_e4m3fn),
            "module.sparse": torch.eye(2).to_sparse(),
            "module.q": torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8),
        },
        path,
    )
    return path


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_sparse_meta_quantized_and_float8_in_every_verb(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, odd_file: Path
) -> None:
    code, stdout, _err = run_cli(capsys, "inspect", "--stats", odd_file)
    assert code == 0, _err
    assert "module.sparse: it is a sparse tensor" in stdout
    assert "module.fc.weight: it is a meta tensor" in stdout
    code, stdout, _err = run_cli(capsys, "diff", odd_file, odd_file, "--exit-code")
    assert code == 0 and "Identical: the same 4 keys" in stdout
    out = tmp_path / "cast.safetensors"
    code, _out, stderr = run_cli(capsys, "edit", odd_file, "-o", out, "--cast", "float16")
    assert_named(code, stderr, "cannot write 'module.fc.weight' to .safetensors", "meta tensor")
    code, stdout, stderr = run_cli(
        capsys, "edit", odd_file, "-o", tmp_path / "c.pth", "--cast", "fp16"
    )
    assert code == 0, stderr
    assert "cast module.fc.bias" in stdout
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        '[model]\ninput_shape = [3]\nlayers = [{ type = "Linear", out_features = 2 }]\n'
        '[data]\nname = "moons"\n'
    )
    fits = tmp_path / "fits.pth"
    state = torch.load(odd_file, weights_only=True)
    torch.save({"module.0.weight": state["module.fc.weight"], "module.0.bias": torch.ones(2)}, fits)
    code, _out, stderr = run_cli(
        capsys, "reconcile", fits, experiment, "--apply", "-o", tmp_path / "r.pth"
    )
    assert_named(
        code, stderr, "values cannot be copied in", "'0.weight' is a meta tensor", str(fits)
    )


def test_a_build_opcode_on_a_tensor_is_a_named_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = torch.arange(10.0).numpy().tobytes()
    tensor = View(Storage("0", 10), (10,), (1,), build=("junk",))
    path = write_torch_zip(tmp_path / "build.pth", {"w": tensor}, {"0": raw})
    for verb in (["inspect"], ["inspect", "--stats"], ["diff", path]):
        code, _, stderr = run_cli(capsys, *verb, path)
        assert_named(code, stderr, "cannot follow", "TypeError")


# --- unreadable, special and damaged files ----------------------------------------------------


def test_special_and_unreadable_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, stderr = run_cli(capsys, "inspect", tmp_path)
    assert_named(code, stderr, "is a folder")
    if Path("/dev/zero").exists():
        code, _, stderr = run_cli(capsys, "inspect", "/dev/zero")
        assert_named(code, stderr, "not a regular file")
        assert "empty" not in stderr
    locked = tmp_path / "locked.pth"
    torch.save({"w": torch.ones(1)}, locked)
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # running as root: make open() refuse as it would
        real_open = open

        def denying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(str(file)) == locked:
                raise PermissionError(13, "Permission denied", str(locked))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", denying_open)
    code, _, stderr = run_cli(capsys, "inspect", locked)
    assert_named(code, stderr, "permission denied")
    monkeypatch.undo()
    locked.chmod(stat.S_IRUSR | stat.S_IWUSR)


def write_run_checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "first"
    assert main(["train", str(TOY), "--out", str(out), "--epochs", "1"]) == 0
    return out / "checkpoint.pt"


def test_truncated_and_crafted_resume_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    checkpoint = write_run_checkpoint(tmp_path)
    capsys.readouterr()
    data = checkpoint.read_bytes()
    state = torch.load(checkpoint, weights_only=True)
    crafted = {
        "model_list": {**state, "model": [1, 2]},
        "no_step": {k: v for k, v in state.items() if k != "step"},
        "bad_rng": {**state, "rng": {"torch": 1}},
    }
    cases: list[tuple[Path, str]] = []
    for cut in (100, len(data) // 2, len(data) - 40):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        cases.append((path, "truncated or damaged"))
    for name, value in crafted.items():
        path = tmp_path / f"{name}.pt"
        torch.save(value, path)
        cases.append((path, "cannot resume from it"))
    for path, phrase in cases:
        code, _, stderr = run_cli(
            capsys, "train", TOY, "--out", tmp_path / "again", "--resume", path
        )
        assert_named(code, stderr, phrase, str(path))
        assert "Errno" not in stderr


# --- where the weights are, and text from files -----------------------------------------------


def test_weights_under_model_state_are_found(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "pretrained.pt"
    torch.save({"step": 5, "model_state": nn.Linear(2, 2).state_dict()}, path)
    code, stdout, _ = run_cli(capsys, "inspect", path)
    assert code == 0
    assert "Layout:  state_dict wrapped" not in stdout
    assert "(weights under 'model_state')" in stdout


def test_escape_sequences_in_keys_never_reach_the_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evil = "fc\x1b[2J\x1b]0;owned\x07.weight\u202e"
    path = tmp_path / "evil.pth"
    torch.save({evil: torch.ones(2), "meta\u202e": torch.zeros(1)}, path)
    outputs = []
    for argv in (
        ["inspect", "--stats", path],
        ["diff", path, path],
        ["edit", path, "-o", tmp_path / "o.pth", "--rename", "fc=head", "--drop", "meta\u202e"],
        ["edit", path, "--dry-run", "--drop", "nothing"],
    ):
        code, stdout, stderr = run_cli(capsys, *argv)
        assert code in (0, 2), stderr
        outputs.append(stdout + stderr)
    for text in outputs:
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text, text
    assert "fc\\x1b[2J" in outputs[0] and "head\\x1b[2J" in outputs[2]
