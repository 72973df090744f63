"""`workbench gui [FILE]`: the desktop window (also what a bare `workbench` runs)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("gui", help="open the desktop window (the default)")
    parser.add_argument("file", nargs="?", help="a project .toml or a checkpoint to open")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from workbench.app import run_app
    except ImportError:
        # Until the window exists, show what the window would: the model summary.
        from workbench.commands.summary import print_summary

        return print_summary(args.file or "resources/presets/digits-mlp.toml")
    return int(run_app(args.file))
