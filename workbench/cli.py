"""The `workbench` command: no verb opens the window; verbs run headless on the same engine.

Verb modules in workbench/commands/ are found automatically. Each keeps PyTorch imports inside
its `run` (tests/integration/test_cli_help.py holds them to it), so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import pkgutil
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import workbench.commands
from workbench import __version__
from workbench.engine.errors import WorkbenchError
from workbench.engine.safe_text import safe_text
from workbench.interrupts import may_handle_interrupts

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl+C


def verb_modules() -> list[str]:
    """Module names of the verbs (`_private` helpers in workbench/commands/ are not verbs)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(workbench.commands.__path__)
        if not info.name.startswith("_")
    )


def _verbs() -> set[str]:
    """Verb names as typed: module `export_script` is the verb `export-script`."""
    return {name.replace("_", "-") for name in verb_modules()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Torch Workbench: train, inspect and quantize PyTorch models. "
        "With no verb (or a file), opens the window.",
    )
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in verb_modules():
        module = importlib.import_module(f"workbench.commands.{name}")
        module.register(subparsers)
    return parser


def _wants_window(argv: Sequence[str]) -> bool:
    """`workbench`, `workbench FILE` and `workbench --startup-check` open the window."""
    if not argv:
        return True
    first = argv[0]
    if first in ("-h", "--help", "--version"):
        return False
    if first.startswith("-"):
        return True  # the window's own options, e.g. --startup-check
    if first in _verbs():
        return False
    if not Path(first).expanduser().exists():
        raise WorkbenchError(_unknown_word_message(first))
    return True


def _unknown_word_message(word: str) -> str:
    verbs = sorted(_verbs())
    close = difflib.get_close_matches(word, verbs, n=1)
    if close:
        return f"unknown verb {word!r} (did you mean {close[0]!r}?); see workbench --help"
    looks_like_a_file = Path(word).suffix != "" or os.sep in word
    if looks_like_a_file:
        return f"{word}: no such file; check the path (to open the window on a file, it must exist)"
    return f"unknown verb {word!r}; the verbs are {', '.join(verbs)} (see workbench --help)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; every ending is an exit status, never a traceback (WORKBENCH_DEBUG aside)."""
    with _remembering_interrupts() as interrupted:
        return _main(list(sys.argv[1:] if argv is None else argv), interrupted)


@contextlib.contextmanager
def _remembering_interrupts() -> Iterator[list[bool]]:
    """Ctrl+C raises KeyboardInterrupt as usual, and is remembered: one that cuts an import
    short can surface later as another error (numpy's "cannot load module more than once")."""
    seen: list[bool] = []
    if not may_handle_interrupts():
        yield seen  # started with Ctrl+C ignored (e.g. in the background): leave it so
        return

    def on_interrupt(signum: int, frame: object) -> None:
        seen.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _main(argv: list[str], interrupted: list[bool]) -> int:
    code = _ended(argv, interrupted)
    if interrupted and code != EXIT_INTERRUPTED:
        # A Ctrl+C that a library swallowed (an import cut short) still ends the command so.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def _ended(argv: list[str], interrupted: list[bool]) -> int:
    try:
        return _run(argv)
    except WorkbenchError as exc:
        print(f"error: {safe_text(str(exc), multiline=True)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        _silence_stdout()  # `workbench datasets | head -1`: the reader has all it wanted
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if interrupted:  # the error is the interrupt's doing
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {safe_text(str(exc), multiline=True)}\n"
            "(set WORKBENCH_DEBUG=1 for the full traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _run(argv: list[str]) -> int:
    if _wants_window(argv):
        argv = ["gui", *argv]
    if argv[0] == "gui" and not {"-h", "--help"} & set(argv):
        # Straight to the window: importing every other verb would only slow the start.
        from workbench.commands import gui

        return int(gui.run(gui.parse(argv[1:])))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from workbench.engine.diagnostics import version_text

        print(f"workbench {__version__}")
        print(version_text())
        return EXIT_OK
    if args.verb is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    return int(args.run(args) or EXIT_OK)


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush meets no closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is no real file (a test's capture): nothing will flush into a pipe
