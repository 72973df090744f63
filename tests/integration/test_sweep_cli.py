"""`workbench sweep` as a user runs it: Ctrl+C after the third trial, then the same command again."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.integration.test_cli import run_cli

SWEEP = (
    "sweep",
    "digits-mlp",
    "--grid",
    "train.lr=0.01,0.003,0.001",
    "--grid",
    "data.batch_size=64,128",
    "--epochs",
    "4",
)


def statuses(folder: Path) -> list[str]:
    with open(folder / "sweep.csv", newline="", encoding="utf-8") as handle:
        return [row["status"] for row in csv.DictReader(handle)]


def interrupt_in_fourth_trial(out: Path) -> tuple[int, str]:
    """Start the sweep, send SIGINT once trial 4 has finished an epoch, return code and output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    with subprocess.Popen(
        [sys.executable, "-m", "workbench", *SWEEP, "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        lines: list[str] = []
        in_fourth = False
        for line in process.stdout:
            lines.append(line)
            in_fourth = in_fourth or line.startswith("Trial 4/6:")
            if in_fourth and line.startswith("  Epoch: 001/004"):
                process.send_signal(signal.SIGINT)
                break
        output = "".join(lines) + process.stdout.read()
        return process.wait(timeout=300), output


def test_sigint_after_the_third_trial_then_the_same_command_runs_only_the_rest(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sweep"
    code, output = interrupt_in_fourth_trial(out)
    assert code == 0, output
    assert "Stopping after this batch" in output
    assert "Sweep stopped: 3 of 6 trials finished; run the same command again" in output
    assert statuses(out) == ["completed"] * 3 + ["stopped", "pending", "pending"]

    again = run_cli(*SWEEP, "--out", str(out))
    assert again.returncode == 0, again.stderr
    text = again.stdout
    for number in (1, 2, 3):
        assert f"Trial {number}/6: " in text and "finished earlier (completed), skipped" in text
        assert not re.search(rf"^Trial {number}/6: \S+ \S+\n  Epoch", text, re.MULTILINE)
    assert re.search(r"^Trial 4/6: train\.lr=0\.003 data\.batch_size=128 \(resuming at epoch [234]\)$", text, re.MULTILINE)  # fmt: skip
    assert text.count("  Epoch: 001/004") == 2  # trials 5 and 6 only
    assert "Sweep finished: 6 of 6 trials" in text
    assert statuses(out) == ["completed"] * 6
    assert sorted(p.name for p in out.glob("trial-*")) == [f"trial-00{n}" for n in range(1, 7)]


def test_a_bad_key_is_a_named_error_and_nothing_runs(tmp_path: Path) -> None:
    result = run_cli("sweep", "digits-mlp", "--grid", "train.lrr=0.1", "--out", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "error: command line: train.lrr: unknown key; did you mean 'lr'?" in result.stderr
    assert not (tmp_path / "s").exists()
