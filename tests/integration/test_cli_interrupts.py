"""Ctrl+C from a real terminal: at start-up and twice during a DDP launch, status 130, no traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}

# The console script as pip writes it (`workbench = "workbench.entry:main"`), saying when Python
# is up: the signal then lands in workbench's own start-up (imports of the CLI, torch, Qt).
CONSOLE_SCRIPT = """
import sys
from workbench.entry import main
sys.argv = ["workbench", *sys.argv[1:]]
print("up", flush=True)
sys.exit(main())
"""

# A torchrun that starts "ranks", acknowledges the first Ctrl+C the launcher forwards (as ranks
# finishing their batch would) and ends only when the launcher terminates it.
FAKE_TORCHRUN = """
import signal, sys, time
signal.signal(signal.SIGINT, lambda *a: print("asked to stop", flush=True))
print("ranks started", flush=True)
while True:
    time.sleep(0.05)
"""

DDP_LAUNCH = f"""
import sys
from workbench.engine import ddp_launch
ddp_launch.torchrun_command = lambda argv, nproc: [sys.executable, "-c", {FAKE_TORCHRUN!r}]
from workbench.entry import main
sys.argv = ["workbench", "train", "digits-mlp", "--nproc", "2"]
sys.exit(main())
"""


def start(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_line(process: subprocess.Popen[str], text: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == text:
            return
    raise AssertionError(f"the process ended before printing {text!r}")


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1])
@pytest.mark.parametrize("argv", [["devices"], ["inspect", "missing.pt"], ["--startup-check"]])
def test_ctrl_c_in_the_first_tenth_of_a_second_ends_with_130(argv: list[str], delay: float) -> None:
    assert_quiet_130(interrupted_after(delay, *argv))


@pytest.mark.parametrize("delay", [0.3, 0.5, 0.8])
def test_ctrl_c_while_the_window_loads_pytorch_ends_with_130(delay: float) -> None:
    """The loader thread is joined before the process ends (no "QThread: Destroyed" abort), and
    an interrupt while the GUI thread imports pyqtgraph and a worker imports PyTorch no longer
    leaves the import lock held (the window hung; TerminalInterrupt). The window is ready about
    1.5 s after "up" here: later delays would test the start-up check's own ending."""
    assert_quiet_130(interrupted_after(delay, "--startup-check"))


def interrupted_after(delay: float, *argv: str) -> subprocess.Popen[str]:
    process = start(CONSOLE_SCRIPT, *argv)
    wait_for_line(process, "up")
    time.sleep(delay)  # when the signal lands, not what the test checks
    process.send_signal(signal.SIGINT)
    return process


def assert_quiet_130(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    for sign_of_a_crash in ("Traceback", "Fatal Python error", "QThread"):
        assert sign_of_a_crash not in err


def test_a_second_ctrl_c_during_a_ddp_launch_ends_quietly_with_130() -> None:
    process = start(DDP_LAUNCH)
    wait_for_line(process, "ranks started")
    process.send_signal(signal.SIGINT)  # first: the ranks are asked to stop after this batch
    wait_for_line(process, "asked to stop")
    process.send_signal(signal.SIGINT)  # second: every process ends now
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted"


def test_a_ctrl_c_a_library_swallowed_still_ends_the_command_with_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As when the signal lands inside an import that catches it and the verb then finishes."""
    from workbench.cli import main
    from workbench.commands import devices

    def swallowed(args: object) -> int:
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        return 0

    monkeypatch.setattr(devices, "run", swallowed)
    assert main(["devices"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
