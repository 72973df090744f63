"""Transfer learning through the whole command line: DDP on two processes, static int8
quantization of a resnet18 backbone, and the exported script run on its own (slow: each
starts fresh Python processes that import torch and torchvision)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.transfer_helpers import (
    RESNET18_FILE,
    experiment_text,
    save_random_resnet18,
    write_image_folder,
)

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_image_folder(root / "photos")
    save_random_resnet18(root / RESNET18_FILE)
    (root / "frozen.toml").write_text(
        experiment_text(root / "photos", str(root / RESNET18_FILE), epochs=2, batch_size=4)
    )
    (root / "last1.toml").write_text(
        experiment_text(root / "photos", str(root / RESNET18_FILE), '"last:1"', batch_size=5)
    )
    return root


def workbench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["frozen", "last1"])
def test_ddp_on_two_processes_trains_a_backbone(place: Path, name: str) -> None:
    out = place / f"ddp-{name}"
    result = workbench("train", str(place / f"{name}.toml"), "--nproc", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    if name == "frozen":
        assert "Feature cache: resnet18 features of 26 training" in result.stdout


def test_static_quantization_of_a_trained_backbone_reports(place: Path) -> None:
    run = place / "single"
    assert workbench("train", str(place / "frozen.toml"), "--out", str(run)).returncode == 0
    result = workbench(
        *("quantize", str(place / "frozen.toml"), "--weights", str(run / "model.pth")),
        *("--method", "static", "-o", str(place / "int8"), "--repeats", "2"),
    )
    assert result.returncode == 0, result.stderr
    assert "path: torchao PT2E export flow" in result.stdout
    assert "size on disk" in result.stdout and "(reloaded, same predictions)" in result.stdout
    report = json.loads((place / "int8" / "model-static-int8.report.json").read_text())
    assert report["method"] == "static"


def test_the_exported_script_trains_like_the_engine(place: Path, tmp_path: Path) -> None:
    engine = workbench("train", str(place / "last1.toml"))
    assert engine.returncode == 0, engine.stderr
    script = tmp_path / "train.py"
    assert workbench("export-script", str(place / "last1.toml"), "-o", str(script)).returncode == 0
    ran = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert ran.returncode == 0, ran.stderr
    final = [line for line in engine.stdout.splitlines() if "| Train Acc" in line][-1]
    ours = [line for line in ran.stdout.splitlines() if "| Train Acc" in line][-1]
    assert ours.split(" | LR")[0] == final.split(" | LR")[0]
