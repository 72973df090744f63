"""`workbench train` on hostile outputs and runs: a named error and exit 2, never "unexpected"."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import PRESETS
from workbench.cli import main

TOY = str(PRESETS / "toy-mlp.toml")


def train(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["train", *args])
    out, err = capsys.readouterr()
    assert "unexpected" not in err and "Traceback" not in err
    return code, out, err


def test_bad_out_folders_are_refused_before_the_first_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    (tmp_path / "taken" / "checkpoint.pt").mkdir(parents=True)
    cases = {
        str(blocker / "run"): f"error: {blocker / 'run'}: is under {blocker}, which is a file",
        str(blocker): f"error: {blocker}: is a file; give --out a folder path",
        str(tmp_path / "taken"): f"error: {tmp_path / 'taken' / 'checkpoint.pt'}: is a folder",
    }
    for out_dir, expected in cases.items():
        code, out, err = train(capsys, TOY, "--out", out_dir)
        assert code == 2 and err.startswith(expected), err
        assert "Epoch:" not in out


def test_a_read_only_out_folder_is_refused_before_the_first_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "read-only"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the probe meet what a user would

        def refused(*args: object, **kwargs: object) -> tuple[int, str]:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refused)
    try:
        code, out, err = train(capsys, TOY, "--out", str(out_dir))
    finally:
        out_dir.chmod(0o755)
    assert code == 2 and "Epoch:" not in out
    assert err == f"error: {out_dir}: cannot write in this folder (Permission denied); " + (
        "choose a folder you can write to\n"
    )


def test_an_events_path_that_is_a_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = train(capsys, TOY, "--events", str(tmp_path))
    assert code == 2 and "Epoch:" not in out
    assert err.startswith(f"error: --events {tmp_path}: cannot write it (Is a directory)")


def test_a_full_disk_ends_the_run_with_exit_2_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import workbench.engine.atomic as atomic

    def no_space(*args: object, **kwargs: object) -> object:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "atomic_path", no_space)
    code, out, err = train(capsys, TOY, "--out", str(tmp_path / "run"))
    assert code == 2
    assert (
        f"Training failed: {tmp_path / 'run' / 'checkpoint.pt'}: cannot write it (No space left "
        "on device); free some disk space" in out
    )
    assert "unexpected pos" not in out + err


def test_a_used_out_folder_is_refused_and_resume_continues_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(capsys, TOY, "--out", str(run), "--epochs", "1")[0] == 0
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    code, out, err = train(capsys, TOY, "--out", str(run))
    assert code == 2 and "Epoch:" not in out
    assert err == (
        f"error: --out {run}: already holds another run's files (model.pth, checkpoint.pt, "
        "metrics.csv, summary.json, experiment.toml, run.json); choose a new folder, or continue "
        f"that run with --resume {run / 'checkpoint.pt'}\n"
    )
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    (run / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"left by a kill")
    code, out, _ = train(capsys, TOY, "--out", str(run), "--resume", str(run / "checkpoint.pt"))
    assert code == 0 and "Epoch: 002/003 | Batch 000/002" in out
    assert "Removed temp files an interrupted save left behind: .checkpoint.pt.x1y2z3.tmp" in out
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 3
    assert not list(run.glob(".*.tmp"))


def test_more_classes_in_a_csv_than_outputs_exits_2_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "table.csv"
    table.write_text("x,y,label\n" + "".join(f"{i},{i % 3},{i % 4}\n" for i in range(16)))
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        '[model]\nlayers = [{ type = "Linear", out_features = 2 }]\n'
        f'[data]\nname = "csv"\npath = "{table}"\n'
    )
    code, out, err = train(capsys, str(experiment))
    assert code == 2 and "Epoch:" not in out
    assert "has 4 classes (0, 1, 2, 3), but the model's last layer gives 2 output(s)" in err


@pytest.mark.parametrize("preset", ["digits-mlp", "moons-mlp"])
def test_an_exploded_run_fails_and_the_doctor_says_so(
    tmp_path: Path, preset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """lr = 1e30: digits' loss turns NaN, moons' stays a finite 1e30; neither looks successful."""
    experiment = tmp_path / f"{preset}.toml"
    text = (PRESETS / f"{preset}.toml").read_text()
    experiment.write_text(text.replace("lr = 0.003", "lr = 1e30").replace("lr = 0.01", "lr = 1e30"))
    code, out, _ = train(capsys, str(experiment), "--out", str(tmp_path / "run"))
    assert code == 1
    assert "Training failed: the loss became " in out
    assert "Doctor: Training diverged: the loss became " in out
    assert "Run completed" not in out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
