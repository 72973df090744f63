"""`workbench devices`: what this machine offers (devices, precisions, DDP backends)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("devices", help="list devices, precisions and DDP backends")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="the full diagnostics for a bug report: versions, CUDA/cuDNN, CPU threads, and why "
        "a precision or DDP backend is not available (the same text as Help > Diagnostics)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.diagnostics import devices_text, diagnostics_text

    print(diagnostics_text() if args.verbose else devices_text())
    return 0
