"""`workbench devices`: what this machine offers (devices, precisions, DDP backends)."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.engine.diagnostics import devices_text, version_text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("devices", help="list devices, precisions and DDP backends")
    parser.add_argument("--verbose", action="store_true", help="also print versions")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.verbose:
        print(version_text())
        print()
    print(devices_text())
    return 0
