"""`workbench inspect FILE`: keys, shapes, dtypes, sizes, module totals and metadata of a file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from workbench.commands._trust import TRUST_HELP, trust_warning

if TYPE_CHECKING:
    from workbench.engine.checkpoints import Checkpoint


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what is inside a .pth/.pt/.bin/.ckpt/.safetensors file",
        description="List the keys, shapes, dtypes and sizes of a checkpoint, totals per module "
        "with a guessed layer type, and the rest of the file (epoch, optimizer, "
        "hyper-parameters). The file is opened weights-only: nothing in it runs.",
    )
    parser.add_argument("file", metavar="FILE", help="checkpoint file")
    parser.add_argument(
        "--stats", action="store_true", help="also min/max/mean/std, zeros and NaN/Inf per tensor"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--trust-this-file", action="store_true", help=TRUST_HELP)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.checkpoints.report import inspection_json, inspection_text

    checkpoint = open_for_command(args.file, args.trust_this_file)
    if args.json:
        print(json.dumps(inspection_json(checkpoint, with_stats=args.stats), indent=2))
    else:
        print(inspection_text(checkpoint, with_stats=args.stats))
    return 0


def open_for_command(path: str, trusted: bool) -> Checkpoint:
    from workbench.engine.checkpoints import open_checkpoint

    if trusted:
        print(trust_warning(path), file=sys.stderr)
    return open_checkpoint(path, trust_file=path if trusted else None)
