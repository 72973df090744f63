"""`workbench diff A B`: which keys, shapes, dtypes and values differ between two checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.commands._trust import trust_warning
from workbench.engine.errors import CheckpointError

if TYPE_CHECKING:
    from workbench.engine.checkpoints import Checkpoint


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two checkpoints key by key",
        description="Keys only in one file, shape and dtype changes, and for every shared "
        "tensor the max absolute difference and ||a-b||/||a||.",
    )
    parser.add_argument("a", metavar="A", help="first checkpoint")
    parser.add_argument("b", metavar="B", help="second checkpoint")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--exit-code",
        action="store_true",
        help="exit with 1 when the checkpoints differ (as `git diff --exit-code`)",
    )
    parser.add_argument(
        "--trust-this-file",
        action="append",
        default=[],
        metavar="FILE",
        help="open FILE (A or B) even if it needs code to unpickle, in a separate process; "
        "only for files you trust. Repeat for both",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.checkpoints import diff_state_dicts
    from workbench.engine.checkpoints.report import diff_json, diff_text

    trusted = [Path(p).resolve() for p in args.trust_this_file]
    named = {Path(args.a).resolve(), Path(args.b).resolve()}
    stray = [p for p in args.trust_this_file if Path(p).resolve() not in named]
    if stray:
        raise CheckpointError(f"--trust-this-file {stray[0]}: that is neither A nor B.")
    a = _open(args.a, trusted)
    b = _open(args.b, trusted)
    diff = diff_state_dicts(a.state_dict, b.state_dict)
    if args.json:
        print(json.dumps(diff_json(args.a, args.b, diff), indent=2))
    else:
        print(diff_text(args.a, args.b, diff))
    return 1 if args.exit_code and not diff.identical else 0


def _open(path: str, trusted: list[Path]) -> Checkpoint:
    from workbench.engine.checkpoints import open_checkpoint

    if Path(path).resolve() in trusted:
        print(trust_warning(path), file=sys.stderr)
        return open_checkpoint(path, trust_file=path)
    return open_checkpoint(path)
