"""`workbench train --nproc 2` as a user runs it: two gloo ranks on the CPU behave like one run.

Each torchrun start costs seconds on a small machine, so this file launches four times.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench.cli import main
from workbench.engine.experiment import load_experiment
from workbench.engine.model_builder import build_model
from workbench.engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
MARKER = "WORKBENCH_TEST_MARKER"
TIMEOUT = 180  # a generous bound for a loaded machine; a hang fails instead of blocking


def moons_toml(path: Path, batch_size: int, n_samples: int = 80, epochs: int = 1) -> Path:
    path.write_text(
        f"""
[model]
layers = [
  {{ type = "Linear", out_features = 16 }},
  {{ type = "ReLU" }},
  {{ type = "Linear", out_features = 2 }},
]
[data]
name = "moons"
batch_size = {batch_size}
val_batch_size = 64
shuffle = false
options = {{ n_samples = {n_samples}, noise = 0.1, seed = 0 }}
[train]
epochs = {epochs}
optimizer = "sgd"
lr = 0.1
device = "cpu"
seed = 3
""",
        encoding="utf-8",
    )
    return path


def environment(marker: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env[MARKER] = marker
    return env


def workbench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *argv],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )


def processes_with_marker(marker: str) -> dict[int, str]:
    """Live processes started with our marker, by pid, with their RANK (or "" for launchers)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{MARKER}={marker}".encode() in environ and state != "Z":
            ranks = [item[5:].decode() for item in environ if item.startswith(b"RANK=")]
            found[int(entry.name)] = ranks[0] if ranks else ""
    return found


def test_two_processes_train_like_one_with_twice_the_batch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    ddp = moons_toml(tmp_path / "ddp.toml", batch_size=4)
    single = load_experiment(moons_toml(tmp_path / "single.toml", batch_size=8))
    result = workbench("train", str(ddp), "--nproc", "2", "--accumulate", "2", "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # neither torchrun's chatter nor a second rank's voice
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "Training 82 parameters on cpu (32-true, world size 2, effective batch 16); "
        "64 training and 16 validation samples"
    )
    assert sum(" | Batch " in line for line in lines) == 8  # rank 0's 8 batches, said once
    assert lines[-2].startswith("Run completed after 1 epoch(s)")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    assert sorted(path.name for path in out.iterdir()) == [
        "checkpoint.pt",
        "experiment.toml",
        "metrics.csv",
        "model.pth",
        "run.json",
        "summary.json",
    ]

    weights = torch.load(out / "model.pth", weights_only=True)
    assert not [key for key in weights if key.startswith("module.")]
    build_model(single.model, (2,)).module.load_state_dict(weights, strict=True)
    accumulating = dataclasses.replace(single.train, accumulate_grad_batches=2)
    reference = Trainer(dataclasses.replace(single, train=accumulating))
    reference.fit()
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(weights[key], value)


def test_under_the_users_own_torchrun_with_mixed_precision(tmp_path: Path) -> None:
    out, events = tmp_path / "run", tmp_path / "events.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "workbench",
            "train",
            str(PRESETS / "toy-mlp.toml"),
            "--epochs=2",
            "--precision=bf16-mixed",
            f"--events={events}",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Training 752 parameters on cpu (bf16-mixed, world size 2") == 1
    decoded = [json.loads(line) for line in events.read_text().splitlines()]
    assert decoded[0]["event"] == "started" and decoded[0]["world_size"] == 2
    assert decoded[-1]["event"] == "finished"
    assert [event["epoch"] for event in decoded if event["event"] == "epoch_end"] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["precision"], summary["world_size"]) == ("bf16-mixed", 2)


def test_bad_input_met_by_the_ranks_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    exp = tmp_path / "csv.toml"
    exp.write_text(
        f'[model]\nlayers = [{{ type = "Linear", out_features = 2 }}]\n'
        f'[data]\nname = "csv"\npath = "{missing}"\n[train]\ndevice = "cpu"\n',
        encoding="utf-8",
    )
    result = workbench("train", str(exp), "--nproc", "2", "--events", "-")

    assert result.returncode == 2
    message = f"data.path: {missing}: file not found; check the path"
    assert result.stderr.strip() == f"error: {message}"
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"event": "failed", "message": message}
    ]


def test_impossible_device_is_refused_before_any_process_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "Popen", None)  # starting a process would fail loudly
    exp = moons_toml(tmp_path / "exp.toml", batch_size=4)
    assert main(["train", str(exp), "--nproc", "2", "--device", "mps"]) == 2
    assert capsys.readouterr().err.startswith("error: device 'mps' cannot train with DDP")


def test_ddp_enabled_in_the_file_launches_its_process_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.engine.ddp_launch as ddp_launch

    launched: list[int] = []
    monkeypatch.setattr(ddp_launch, "launch_torchrun", lambda args, n, exp: launched.append(n))
    exp = moons_toml(tmp_path / "exp.toml", batch_size=4)
    exp.write_text(exp.read_text() + "[train.ddp]\nenabled = true\nnproc_per_node = 3\n")
    for name in ("RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    main(["train", str(exp)])
    main(["train", str(exp), "--nproc", "2"])
    assert launched == [3, 2]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds ranks through /proc")
def test_a_killed_rank_fails_the_run_with_a_message_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    marker = uuid.uuid4().hex
    exp = moons_toml(tmp_path / "long.toml", batch_size=2, n_samples=4000, epochs=50)
    with subprocess.Popen(
        [sys.executable, "-m", "workbench", "train", str(exp), "--nproc", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(marker),
        cwd=ROOT,
    ) as launcher:
        try:
            assert launcher.stdout is not None
            batches = 0
            for line in launcher.stdout:
                batches += " | Batch " in line
                if batches == 3:
                    break
            ranks = {rank: pid for pid, rank in processes_with_marker(marker).items() if rank}
            assert set(ranks) == {"0", "1"}
            os.kill(ranks["1"], signal.SIGKILL)
            _, stderr = launcher.communicate(timeout=30)
        finally:
            if launcher.poll() is None:
                launcher.kill()
    assert launcher.returncode == 1
    assert stderr.strip().splitlines()[-1] == (
        "error: training process rank 1 was killed by SIGKILL; the other ranks were stopped"
    )
    assert processes_with_marker(marker) == {}


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_nccl_ranks_train_on_separate_gpus(tmp_path: Path) -> None:
    out = tmp_path / "run"
    exp = moons_toml(tmp_path / "exp.toml", batch_size=4)
    result = workbench("train", str(exp), "--nproc", "2", "--device", "cuda", "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert "on cuda:0 (32-true, world size 2" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["device"], summary["world_size"]) == ("cuda:0", 2)
    weights = torch.load(out / "model.pth", weights_only=True, map_location="cpu")
    assert not [key for key in weights if key.startswith("module.")]
