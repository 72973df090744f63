"""The torchrun launch without launching: command, environment, output filter, outcome rules."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from workbench.engine.ddp_launch import (
    RUN_DIR_VARIABLE,
    RankReport,
    RunOutcome,
    TorchrunOutput,
    WorkerFailure,
    child_environment,
    is_terminal_event,
    read_rank_reports,
    run_outcome,
    torchrun_command,
    train_arguments,
    write_rank_report,
)

# What torchrun printed when rank 1 met a missing CSV file (rank 0 said the error itself).
RANK_ONE_FAILED = """\
error: data.path: /tmp/x/nope.csv: file not found; check the path
[E1123 00:39:39.280205746 ProcessGroupGloo.cpp:68] Gloo connectFullMesh failed with [pair.cc:561] Connection closed by peer [127.0.0.1]:13011. GLHF!
W1123 00:40:26.413000 22170 torch/distributed/elastic/multiprocessing/api.py:1028] Sending process 22177 closing signal SIGTERM
E1123 00:40:26.445000 22170 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 2) local_rank: 1 (pid: 22178) of binary: /usr/bin/python
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/venv/lib/python3.11/site-packages/torch/distributed/run.py", line 1142, in <module>
    main()
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
workbench FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : 2 (pid: 22178)
============================================================
"""


def test_each_rank_gets_the_same_arguments_but_nproc() -> None:
    args = argparse.Namespace(
        experiment="exp.toml",
        out="runs/a",
        epochs=3,
        device=None,
        precision="bf16-mixed",
        accumulate=None,
        nproc=2,
        resume=None,
        events="-",
    )
    assert train_arguments(args) == [
        "exp.toml",
        "--out=runs/a",
        "--epochs=3",
        "--precision=bf16-mixed",
        "--events=-",
    ]


def test_torchrun_runs_standalone_on_loopback_with_this_python() -> None:
    command = torchrun_command(["exp.toml"], 3)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in command and "--nproc-per-node=3" in command
    assert "--local-addr=127.0.0.1" in command
    assert command[-4:] == ["-m", "workbench", "train", "exp.toml"]


def test_the_environment_keeps_user_settings_and_finds_this_workbench(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "3", "PYTHONPATH": "/elsewhere"}
    env = child_environment(tmp_path, 2, base=base)
    assert env[RUN_DIR_VARIABLE] == str(tmp_path)
    assert env["OMP_NUM_THREADS"] == "3"
    source_root = str(Path(__file__).resolve().parents[2])
    assert env["PYTHONPATH"].split(os.pathsep) == [source_root, "/elsewhere"]
    assert int(child_environment(tmp_path, 2, base={})["OMP_NUM_THREADS"]) >= 1
    if Path("/sys/class/net/lo").exists():
        assert env["GLOO_SOCKET_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "lo"


def test_torchruns_own_lines_and_failure_dump_are_hidden_and_read() -> None:
    output = TorchrunOutput()
    shown = [line for raw in RANK_ONE_FAILED.splitlines() for line in output.feed(raw)]
    shown += output.finish()
    assert shown == ["error: data.path: /tmp/x/nope.csv: file not found; check the path"]
    assert output.first_failure == WorkerFailure(local_rank=1, exitcode=2)
    assert any("ChildFailedError" in line for line in output.hidden)


def test_a_ranks_own_traceback_is_shown() -> None:
    output = TorchrunOutput()
    lines = [
        "Traceback (most recent call last):",
        '  File "/src/workbench/engine/trainer.py", line 10, in fit',
        "    boom()",
        "ZeroDivisionError: division by zero",
        "after",
    ]
    shown = [line for raw in lines for line in output.feed(raw)]
    assert shown == lines


def test_rank_zeros_ending_decides_when_it_had_one() -> None:
    printed = {0: RankReport(0, 1, "the loss became nan", shown=True)}
    assert run_outcome(printed, None, 1) == RunOutcome(1, None)
    unsaid = {0: RankReport(0, 2, "data.path: missing"), 1: RankReport(1, 2, "data.path: missing")}
    assert run_outcome(unsaid, WorkerFailure(1, 2), 1) == RunOutcome(2, "data.path: missing")
    assert run_outcome({0: RankReport(0, 0, shown=True)}, None, 0) == RunOutcome(0, None)


def test_without_rank_zero_the_root_cause_is_named() -> None:
    killed = run_outcome({}, WorkerFailure(local_rank=1, exitcode=-9), 1)
    assert killed == RunOutcome(
        1, "training process rank 1 was killed by SIGKILL; the other ranks were stopped"
    )
    lost = RankReport(0, 1, "lost contact with another training process (x)", lost_peer=True)
    cause = RankReport(1, 1, "the loss became inf at epoch 2, batch 3")
    assert run_outcome({0: lost, 1: cause}, WorkerFailure(0, 1), 1) == RunOutcome(
        1, "rank 1: the loss became inf at epoch 2, batch 3"
    )
    assert run_outcome({0: lost}, WorkerFailure(0, 1), 1) == RunOutcome(
        1, "rank 0: lost contact with another training process (x)"
    )
    bad_input = {1: RankReport(1, 2, "data.path: missing")}
    assert run_outcome(bad_input, WorkerFailure(1, 2), 1) == RunOutcome(2, "data.path: missing")
    assert run_outcome({}, None, 7).message == "the training processes ended with exit code 7"


def test_rank_reports_round_trip_and_need_a_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RUN_DIR_VARIABLE, raising=False)
    write_rank_report(RankReport(0, 0))  # nobody listens: nothing is written anywhere
    monkeypatch.setenv(RUN_DIR_VARIABLE, str(tmp_path))
    write_rank_report(RankReport(1, 2, "bad", shown=False))
    write_rank_report(RankReport(0, 1, "lost", lost_peer=True))
    (tmp_path / "rank7.json").write_text("{not json", encoding="utf-8")
    assert read_rank_reports(tmp_path) == {
        0: RankReport(0, 1, "lost", lost_peer=True),
        1: RankReport(1, 2, "bad"),
    }


def test_terminal_events_are_recognised() -> None:
    assert is_terminal_event('{"event":"finished","summary":{}}')
    assert is_terminal_event('{"event":"failed","message":"x"}')
    assert not is_terminal_event('{"event":"batch_end","epoch":1}')
    assert not is_terminal_event("Epoch: 001/001 | Batch 000/004")
