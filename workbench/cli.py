"""The `workbench` command: no verb opens the window; verbs run headless on the same engine."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

import workbench.commands
from workbench import __version__
from workbench.engine.errors import WorkbenchError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _verb_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(workbench.commands.__path__))


def _verbs() -> set[str]:
    """Verb names as typed: module `export_script` is the verb `export-script`."""
    return {name.replace("_", "-") for name in _verb_modules()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Torch Workbench: train, inspect and quantize PyTorch models. "
        "With no verb (or a file), opens the window.",
    )
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in _verb_modules():
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
    return first not in _verbs()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
    try:
        return int(args.run(args) or EXIT_OK)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc}\n"
            "(set WORKBENCH_DEBUG=1 for the full traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
