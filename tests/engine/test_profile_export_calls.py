"""The engine calls behind the window's Profile tab and Export Model dialog, headless:
what-ifs on their own, torch.compile's availability, and exporting weights held in memory."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import pytest
import torch

from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.export import ExportError, export_state
from workbench.engine.profiling import (
    ProfileCancelled,
    ProfileOptions,
    WhatIfSettings,
    compile_problem,
    experiment_what_ifs,
)
from workbench.engine.profiling.report import MEASURED, NOT_AVAILABLE, SKIPPED

ROOT = Path(__file__).resolve().parents[2]
FAST = WhatIfSettings(rounds=2, warmup=1)


def mnist_cnn(tmp_path: Path) -> Experiment:
    experiment = load_experiment(ROOT / "resources" / "presets" / "mnist-cnn.toml")
    data = dataclasses.replace(experiment.data, root=str(tmp_path), batch_size=8)
    return dataclasses.replace(experiment, data=data)


def test_experiment_what_ifs_measure_each_change_against_the_step(tmp_path: Path) -> None:
    experiment = mnist_cnn(tmp_path)
    what_ifs = experiment_what_ifs(experiment, ProfileOptions(what_if_settings=FAST))
    by_name = {what_if.name: what_if for what_if in what_ifs}
    assert list(by_name) == ["contiguous (NCHW)", "bf16-mixed", "torch.compile", "batch 16"]
    for name in ("contiguous (NCHW)", "bf16-mixed", "batch 16"):
        ratio = by_name[name].speed_ratio
        assert by_name[name].status == MEASURED and ratio is not None and ratio > 0
    assert by_name["torch.compile"].status == SKIPPED


def test_experiment_what_ifs_use_the_weights_given_and_stop_when_asked(tmp_path: Path) -> None:
    experiment = mnist_cnn(tmp_path)
    state = build_experiment_model(experiment).module.state_dict()
    stop = threading.Event()
    stop.set()
    with pytest.raises(ProfileCancelled):
        experiment_what_ifs(
            experiment, ProfileOptions(what_if_settings=FAST), weights=state, stop=stop
        )
    del state["conv1.weight"]
    with pytest.raises(RuntimeError, match=r"conv1\.weight"):
        experiment_what_ifs(experiment, ProfileOptions(what_if_settings=FAST), weights=state)


def test_torch_compile_without_a_compiler_is_not_available_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    problem = compile_problem("cpu")
    assert problem == (
        "torch.compile needs a C++ compiler (g++ or clang++) on PATH for a CPU; none found"
    )
    settings = dataclasses.replace(FAST, compile=True)
    what_ifs = experiment_what_ifs(mnist_cnn(tmp_path), ProfileOptions(what_if_settings=settings))
    compiled = next(what_if for what_if in what_ifs if what_if.name == "torch.compile")
    assert compiled.status == NOT_AVAILABLE and compiled.detail == problem
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert compile_problem("cpu") is None


def test_export_state_writes_weights_held_in_memory_and_checks_them(tmp_path: Path) -> None:
    experiment = mnist_cnn(tmp_path)
    torch.manual_seed(3)
    state = build_experiment_model(experiment).module.state_dict()
    stages: list[str] = []
    result = export_state(
        experiment,
        state,
        "onnx",
        tmp_path / "m.onnx",
        progress=lambda text, _f: stages.append(text),
    )
    assert result.passed and result.max_abs_diff < 1e-4
    assert result.path.is_file() and result.size_bytes == result.path.stat().st_size
    assert [check.batch_size for check in result.checks] == [8, 1]
    assert stages[0] == "building the model" and stages[-1] == "done"
    with pytest.raises(ExportError, match="exists; pass --force"):
        export_state(experiment, state, "pt2", tmp_path / "m.onnx")
