"""The command line's edges: --help without PyTorch, unknown verbs, closed pipes and Ctrl+C."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from workbench.cli import EXIT_INTERRUPTED, main, verb_modules

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_verb_module_imports_without_torch() -> None:
    """A verb added later keeps its PyTorch imports inside `run`, or this test names it."""
    code = (
        "import importlib, sys\n"
        "from workbench.cli import verb_modules\n"
        "heavy = []\n"
        "for name in verb_modules():\n"
        "    importlib.import_module(f'workbench.commands.{name}')\n"
        "    if 'torch' in sys.modules and not heavy:\n"
        "        heavy.append(name)\n"
        "print('torch imported by:', heavy)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch imported by: []"
    assert {"train", "datasets", "inspect", "gui"} <= set(verb_modules())


def test_help_of_workbench_and_of_every_verb_answers_without_torch() -> None:
    code = (
        "import sys\n"
        "from workbench.cli import main, _verbs\n"
        "for argv in [['--help'], *[[verb, '--help'] for verb in sorted(_verbs())]]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit_info:\n"
        "        assert exit_info.code == 0, argv\n"
        "    else:\n"
        "        raise AssertionError(argv)\n"
        "print('torch' in sys.modules, 'PySide6' in sys.modules, file=sys.stderr)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "False False"
    assert "usage: workbench train" in result.stdout and "--resume" in result.stdout


@pytest.mark.parametrize("argv", [["trian"], ["trian", "exp.toml"]])
def test_a_mistyped_verb_gets_a_suggestion_and_opens_no_window(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.commands import gui

    opened: list[object] = []
    monkeypatch.setattr(gui, "run", lambda args: opened.append(args) or 0)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown verb 'trian' (did you mean 'train'?)")
    assert "unexpected" not in err and opened == []


def test_a_missing_file_or_unknown_word_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nothing-here.toml"]) == 2
    assert "error: nothing-here.toml: no such file" in capsys.readouterr().err
    assert main(["zzzz"]) == 2
    err = capsys.readouterr().err
    assert "unknown verb 'zzzz'; the verbs are " in err and "train" in err


def test_an_existing_file_still_opens_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.commands import gui

    project = tmp_path / "some.toml"
    project.write_text("[train]\nepochs = 1\n")
    opened: list[str] = []
    monkeypatch.setattr(gui, "run", lambda args: opened.append(args.file) or 0)
    assert main([str(project)]) == 0
    assert main(["--startup-check"]) == 0
    assert opened == [str(project), None]


def test_mistyped_verb_in_a_fresh_process_exits_2_quickly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "trian"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown verb 'trian' (did you mean 'train'?)")
    assert result.stdout == ""


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_quietly_with_status_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["datasets"]) == 0
    assert capsys.readouterr().err == ""


def test_datasets_into_a_pipe_closed_at_once_exits_0_without_error_text() -> None:
    """As `workbench datasets | head -1`: the reader is gone before the first line is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "datasets"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0
    assert err == ""


def test_datasets_piped_into_head_exits_0_without_error_text() -> None:
    result = subprocess.run(
        f"'{sys.executable}' -m workbench datasets | head -1; echo \"status ${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        "Datasets for data.name (data.root = ~/.cache/workbench/datasets):",
        "status 0",
    ]
    assert result.stderr == ""


def test_ctrl_c_in_a_verb_ends_quietly_with_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.commands import devices

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(devices, "run", interrupted)
    assert main(["devices"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_an_error_that_follows_a_swallowed_ctrl_c_is_reported_as_the_interrupt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl+C that cuts an import short (and is swallowed there) surfaces as another error."""
    from workbench.commands import devices

    def import_cut_short(args: object) -> int:
        # as a library's broad `except BaseException` around an import would swallow it
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        raise ImportError("cannot load module more than once per process")

    monkeypatch.setattr(devices, "run", import_cut_short)
    previous = signal.getsignal(signal.SIGINT)
    assert main(["devices"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"
    assert signal.getsignal(signal.SIGINT) is previous


# Raises KeyboardInterrupt (as a Ctrl+C would) when the named module is first imported.
INTERRUPT_AT_IMPORT = """
import runpy, sys
interrupted_at = sys.argv[1]
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == interrupted_at:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["workbench", *sys.argv[2:]]
runpy.run_module("workbench", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("module", "argv"),
    [("workbench.cli", ["devices"]), ("torch", ["devices"]), ("PySide6", ["--startup-check"])],
)
def test_ctrl_c_while_importing_ends_quietly(module: str, argv: list[str]) -> None:
    result = python(INTERRUPT_AT_IMPORT, module, *argv)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr


def test_a_real_ctrl_c_during_start_up_prints_no_traceback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "devices"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)  # within PyTorch's import, which takes seconds
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
