"""Guards before and during a run: the output folder, class counts, exploding and NaN losses."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import PRESETS
from tests.engine.test_trainer import experiment, mlp
from workbench.engine.errors import ExperimentError, OutputError, TrainingError
from workbench.engine.experiment import DataSpec, load_experiment
from workbench.engine.insight.doctor import LOSS_FAILURE, PROBLEM, TrainingDoctor, diagnose
from workbench.engine.reports import FanOutObserver, RecordingObserver
from workbench.engine.trainer import Trainer


class Prepared(RecordingObserver):
    """Fails the test if training starts: every guard here must act before the first batch."""

    def on_started(self, report: object) -> None:
        raise AssertionError("training started")


def refused_before_training(tmp_path: Path, out: Path) -> str:
    with pytest.raises(OutputError) as caught:
        Trainer(experiment(epochs=1), observer=Prepared(), out_dir=out).fit()
    return str(caught.value)


def test_an_out_folder_under_a_file_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    message = refused_before_training(tmp_path, blocker / "run")
    assert (
        message
        == f"{blocker / 'run'}: is under {blocker}, which is a file; give --out a folder path"
    )
    assert refused_before_training(tmp_path, blocker).endswith(
        "notes.txt: is a file; give --out a folder path"
    )
    assert blocker.read_text() == "mine"


def test_a_read_only_out_folder_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the probe meet what a user would

        def refused(*args: object, **kwargs: object) -> tuple[int, str]:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refused)
    try:
        message = refused_before_training(tmp_path, out)
    finally:
        out.chmod(0o755)
    assert message == (
        f"{out}: cannot write in this folder (Permission denied); choose a folder you can write to"
    )
    assert list(out.iterdir()) == []


def test_a_folder_where_a_run_file_goes_is_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "run" / "model.pth").mkdir(parents=True)
    message = refused_before_training(tmp_path, tmp_path / "run")
    assert message.startswith(f"{tmp_path / 'run' / 'model.pth'}: is a folder, where the run")


def test_a_full_disk_is_named_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.engine.atomic as atomic

    real_open = open

    class FullDisk:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self.handle, name)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

    def full_disk_open(path: object, mode: str = "r", *args: object) -> object:
        handle = real_open(path, mode, *args)  # type: ignore[call-overload]
        return FullDisk(handle) if mode == "wb" else handle

    monkeypatch.setattr(atomic, "open", full_disk_open, raising=False)
    observer = RecordingObserver()
    with pytest.raises(OutputError) as caught:
        Trainer(experiment(epochs=2), observer=observer, out_dir=tmp_path).fit()
    assert str(caught.value) == (
        f"{tmp_path / 'checkpoint.pt'}: cannot write it (No space left on device); free some "
        "disk space, or choose a folder on another disk"
    )
    assert observer.failure == str(caught.value)
    assert "unexpected pos" not in str(caught.value)
    assert [path.name for path in tmp_path.iterdir()] == []


def test_temp_files_of_a_killed_save_are_removed_on_the_next_run(tmp_path: Path) -> None:
    stale = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".model.pth.abc.tmp"]
    kept = [tmp_path / "notes.txt", tmp_path / ".other.file.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x" * 100)
    observer = RecordingObserver()
    Trainer(experiment(epochs=1), observer=observer, out_dir=tmp_path).fit()
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)
    assert (
        "Removed temp files an interrupted save left behind: .model.pth.abc.tmp, "
        ".checkpoint.pt.k1ll3d.tmp" in observer.logs
    )
    assert sorted(path.name for path in tmp_path.glob(".*.tmp")) == [".other.file.tmp"]


def test_more_classes_than_outputs_is_refused_before_training(tmp_path: Path) -> None:
    table = tmp_path / "five.csv"
    table.write_text("x,label\n" + "".join(f"{i},{'abcde'[i % 5]}\n" for i in range(20)))
    data = DataSpec(name="csv", path=str(table), batch_size=4)
    with pytest.raises(ExperimentError) as caught:
        Trainer(experiment(mlp(8, classes=3), data), observer=Prepared()).fit()
    assert str(caught.value) == (
        f"data: dataset '{table}' has 5 classes (a, b, c, d, e), but the model's last layer "
        "gives 3 output(s); set its out_features = 5 (the model needs 5 outputs)"
    )
    for loss in ("mse", "bce_with_logits"):
        with pytest.raises(ExperimentError, match="has 5 classes"):
            Trainer(experiment(mlp(8, classes=3), data, loss=loss), observer=Prepared()).fit()
    with pytest.raises(ExperimentError, match=r"gives 1 output\(s\)"):
        one = experiment(mlp(8, classes=1), data, loss="bce_with_logits")
        Trainer(one, observer=Prepared()).fit()


def test_an_exploding_loss_fails_the_run_and_the_doctor_says_why(tmp_path: Path) -> None:
    preset = load_experiment(PRESETS / "moons-mlp.toml")  # its loss stays finite: 2.5e30
    train = dataclasses.replace(preset.train, lr=1e30, epochs=2, device="cpu")
    exp = dataclasses.replace(preset, train=train)
    observer, doctor = RecordingObserver(), TrainingDoctor()
    with pytest.raises(TrainingError) as caught:
        Trainer(exp, observer=FanOutObserver(observer, doctor), out_dir=tmp_path).fit()
    message = str(caught.value)
    assert message.startswith("the loss became ") and ", up from " in message
    assert "lower the learning rate (now 1e+30)" in message
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"
    [finding] = doctor.diagnoses
    assert finding.severity == PROBLEM and finding.title == "Training diverged"
    assert finding.message.startswith(message.split(";")[0])


def test_the_doctor_reads_the_guards_wording() -> None:
    exp = experiment(lr=1e30, loss="mse", epochs=1)
    with pytest.raises(TrainingError) as caught:
        Trainer(exp).fit()
    assert str(caught.value).startswith(LOSS_FAILURE)


def test_a_history_that_exploded_is_a_problem_for_the_doctor() -> None:
    rows = [
        {"epoch": 1, "train_loss": 0.7, "lr": 1e30},
        {"epoch": 2, "train_loss": 3e30, "lr": 1e30},
    ]
    [finding] = diagnose(rows)
    assert finding.code == "divergence" and finding.title == "Training exploded"
    assert finding.message.startswith("the training loss reached 3e+30 at epoch 2")
    assert "learning rate (now 1e+30)" in finding.suggestion


def test_a_non_finite_validation_loss_ends_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(experiment(epochs=2), observer=RecordingObserver())
    monkeypatch.setattr(trainer, "_evaluate", lambda: (float("inf"), 0.0, 16))
    with pytest.raises(TrainingError, match=r"the validation loss became inf at epoch 1; lower"):
        trainer.fit()
