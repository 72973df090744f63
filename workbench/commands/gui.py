"""`workbench gui [FILE]`: the desktop window (also what a bare `workbench` or `workbench FILE` runs)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("gui", help="open the desktop window (the default)")
    parser.add_argument("file", nargs="?", help="a project .toml or a checkpoint to open")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.app import run_app

    return run_app(args.file)
