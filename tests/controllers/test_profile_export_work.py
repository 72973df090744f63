"""The window's export job: the exporter's own failure and a bad output file are one message."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from workbench.controllers import profile_export
from workbench.controllers.model_job import EXPORT, PROFILE, ModelJob, Progress
from workbench.controllers.profile_export import ExportProblem, export_work
from workbench.engine.experiment import load_experiment
from workbench.engine.export import ExportError, ExportFailed
from workbench.engine.presets import resolve_experiment_path
from workbench.engine.profiling import ProfileCancelled


def test_an_exporter_failure_becomes_a_named_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise ExportFailed("torch.export could not trace the model: data-dependent branch")

    monkeypatch.setattr(profile_export, "export_state", refuse)
    experiment = load_experiment(resolve_experiment_path("digits-mlp"))
    work = export_work(experiment, "pt2", tmp_path / "m.pt2", weights={})
    with pytest.raises(ExportProblem) as raised:
        work(lambda _text, _fraction: None, threading.Event())
    assert str(raised.value) == (
        "The pt2 export failed: torch.export could not trace the model: data-dependent branch"
    )


def test_the_output_file_is_named_as_the_window_names_it(tmp_path: Path) -> None:
    experiment = load_experiment(resolve_experiment_path("digits-mlp"))
    work = export_work(experiment, "onnx", tmp_path, weights={})
    with pytest.raises(ExportError, match=f"^Output file {re.escape(str(tmp_path))}: is a folder"):
        work(lambda _text, _fraction: None, threading.Event())
    nothing = export_work(experiment, "onnx", tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="No model to export"):
        nothing(lambda _text, _fraction: None, threading.Event())


def test_model_job_reports_an_unexpected_error_as_one_line_and_a_stop_as_cancelled(
    qtbot: QtBot,
) -> None:
    job = ModelJob(name="TestJob")

    def broken(_progress: Progress, _stop: threading.Event) -> object:
        raise KeyError("boom")

    with qtbot.waitSignal(job.failed) as failed:
        job.start(EXPORT, broken, "The export stopped by an unexpected error")
    assert failed.args == [EXPORT, "The export stopped by an unexpected error: KeyError: 'boom'"]
    qtbot.waitUntil(lambda: not job.is_busy)

    started = threading.Event()

    def patient(progress: Progress, stop: threading.Event) -> object:
        progress("waiting", 0.5)
        started.set()
        stop.wait(30)
        raise ProfileCancelled("profiling cancelled")

    with qtbot.waitSignal(job.cancelled) as cancelled:
        job.start(PROFILE, patient, "Profiling stopped")
        qtbot.waitUntil(started.is_set)
        job.cancel()
    assert cancelled.args == [PROFILE]
    assert job.shutdown()
