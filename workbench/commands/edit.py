"""`workbench edit FILE -o OUT`: rename, strip/add prefixes, delete, cast; written atomically."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.commands._trust import TRUST_HELP, trust_warning
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

if TYPE_CHECKING:
    from workbench.engine.checkpoints import Checkpoint

_SHOWN_CHANGES = 12


class _EditAction(argparse.Action):
    """Collect every edit flag into one list, so edits apply in the order they were typed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from workbench.engine.checkpoints import Edit

        edits = list(getattr(namespace, "edits", None) or [])
        edits.append(Edit(self.const, "" if values is None else str(values)))
        namespace.edits = edits


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "edit",
        help="rename, strip/add prefixes, delete or cast checkpoint keys",
        description="Apply edits in the order given and write the result (a plain state_dict) "
        "to OUT: .safetensors, or torch.save for .pth/.pt/.bin/.ckpt. With no edit, converts.",
        epilog="example: workbench edit model.pth -o fixed.pth --strip-prefix module. "
        "--rename conv1=embed_1 --cast bfloat16",
    )
    parser.add_argument(
        "file", metavar="FILE", help="checkpoint to edit (never modified unless OUT is FILE)"
    )
    parser.add_argument("-o", "--output", metavar="OUT", help="where to write the result")
    edit = parser.add_argument_group("edits (applied in the order given)")
    flags = [
        ("--rename", "rename", "OLD=NEW", "replace OLD by NEW in every key (substring)"),
        ("--regex", "regex", "PAT=REPL", "re.sub(PAT, REPL, key) on every key; \\1 groups work"),
        ("--strip-prefix", "strip_prefix", "P", "remove prefix P (e.g. module.) where present"),
        ("--add-prefix", "add_prefix", "P", "put P in front of every key"),
        ("--drop", "drop", "KEY", "delete a key, or every key below a module path"),
        ("--cast", "cast", "DTYPE", "float32 | float16 | bfloat16 (floating tensors only)"),
    ]
    for flag, kind, metavar, text in flags:
        edit.add_argument(flag, action=_EditAction, const=kind, metavar=metavar, help=text)
    edit.add_argument(
        "--strip-wrappers",
        action=_EditAction,
        nargs=0,
        const="strip_wrappers",
        help="strip whatever of module. / _orig_mod. / model. every key starts with",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--trust-this-file", action="store_true", help=TRUST_HELP)
    parser.set_defaults(run=run, edits=[])


def run(args: argparse.Namespace) -> int:
    from workbench.engine.checkpoints import apply_edits
    from workbench.engine.checkpoints.report import format_bytes
    from workbench.engine.checkpoints.saving import save_state_dict

    output = _check_output(args)
    checkpoint = _open(args.file, args.trust_this_file)
    edited, outcomes = apply_edits(checkpoint.state_dict, args.edits)
    for outcome in outcomes:
        print(outcome.summary())
        changes = [f"  {safe_text(old)} -> {safe_text(new)}" for old, new in outcome.renamed]
        changes += [f"  deleted {safe_text(key)}" for key in outcome.dropped]
        changes += [f"  cast {safe_text(key)}" for key in outcome.cast]
        print("\n".join(changes[:_SHOWN_CHANGES]))
        if len(changes) > _SHOWN_CHANGES:
            print(f"  ... {len(changes) - _SHOWN_CHANGES} more")
    if not outcomes:
        print(f"no edits: converting {len(edited)} keys as they are")
    if output is None:
        print("dry run: nothing written")
        return 0
    save_state_dict(edited, output)
    size = format_bytes(output.stat().st_size)
    print(f"wrote {safe_text(output)} ({len(edited)} keys, {size})")
    _note_dropped_metadata(checkpoint)
    return 0


def _check_output(args: argparse.Namespace) -> Path | None:
    if args.output is None:
        if args.dry_run:
            return None
        raise CheckpointError("edit: say where to write the result with -o OUT (or --dry-run).")
    output = Path(args.output)
    if args.dry_run:
        return None
    if output.exists() and not args.force:
        same = output.resolve() == Path(args.file).resolve()
        what = "is the input file" if same else "exists"
        raise CheckpointError(f"{output}: {what}; pass --force to replace it (written atomically).")
    return output


def _open(path: str, trusted: bool) -> Checkpoint:
    from workbench.engine.checkpoints import open_checkpoint

    if trusted:
        print(trust_warning(path), file=sys.stderr)
    return open_checkpoint(path, trust_file=path if trusted else None)


def _note_dropped_metadata(checkpoint: Checkpoint) -> None:
    extra = [key for key in checkpoint.metadata if key != "safetensors_metadata"]
    if extra:
        print(
            f"note: only the state_dict was written; {safe_text(checkpoint.path)} also held "
            f"{safe_text(', '.join(extra[:6]))}{' ...' if len(extra) > 6 else ''}, which OUT "
            "does not."
        )
