"""`workbench gui [FILE]`: the desktop window (also what a bare `workbench` or `workbench FILE` runs)."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="a project .toml or a checkpoint to open")
    parser.add_argument(
        "--startup-check",
        action="store_true",
        help="open the window, print how long that took, and quit (for install checks)",
    )
    parser.set_defaults(run=run)


def register(subparsers: Any) -> None:
    add_arguments(subparsers.add_parser("gui", help="open the desktop window (the default)"))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="workbench gui", description="Open the desktop window.")
    add_arguments(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from workbench.interrupts import deferred_interrupts

    # Ctrl+C is held back from the start: one while Qt's bindings load aborts the process, and
    # one raised mid-import can leave the import lock held (the loader thread then hangs).
    # During the event loop the window takes it (TerminalInterrupt); at the end it is raised.
    with deferred_interrupts() as interrupted:
        from workbench.app import run_app

        return run_app(args.file, startup_check=args.startup_check, interrupted=interrupted)
