"""`workbench reconcile FILE EXP.toml`: does a checkpoint fit the experiment's model; the fix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.commands._trust import TRUST_HELP, trust_warning
from workbench.engine.errors import CheckpointError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.presets import resolve_experiment_path
from workbench.engine.safe_text import safe_text

if TYPE_CHECKING:
    from torch import nn

    from workbench.engine.checkpoints import Checkpoint


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="check a checkpoint against an experiment's model and suggest renames",
        description="Build the model of EXP.toml, compare its keys and shapes with FILE "
        "(matched, missing, unexpected, wrong shape) and suggest renames that pair leftover "
        "keys by order and shape. With --apply -o OUT, write the renamed file after checking "
        "that a strict load_state_dict passes. Exit status: 0 fits (or fixed), 1 does not "
        "fit, 2 bad input.",
    )
    parser.add_argument("file", metavar="FILE", help="checkpoint")
    parser.add_argument("experiment", metavar="EXP.toml", help="experiment file with [model]")
    parser.add_argument("--apply", action="store_true", help="apply the suggested renames")
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="where --apply writes the fixed checkpoint"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--trust-this-file", action="store_true", help=TRUST_HELP)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.checkpoints import apply_renames, load_strict, reconcile
    from workbench.engine.checkpoints.report import reconciliation_text
    from workbench.engine.checkpoints.saving import save_state_dict

    output = _check_output(args)
    experiment = load_experiment(resolve_experiment_path(args.experiment))
    model = build_experiment_model(experiment, args.experiment)
    checkpoint = _open(args.file, args.trust_this_file)
    result = reconcile(checkpoint.state_dict, model)
    print(reconciliation_text(result, checkpoint.state_dict, model.state_dict()))
    if not result.fits:
        from workbench.engine.backbone_weights import backbone_fit

        fit = backbone_fit(checkpoint.state_dict, model)
        if fit is not None:
            print(f"\n{fit.advice(args.file)}")
    if not args.apply or result.fits:
        if args.apply:
            print("nothing to apply: the file already fits")
        return 0 if result.fits else 1
    if not result.fits_after_renames:
        print("not written: the suggested renames do not make the file fit", file=sys.stderr)
        return 1
    fixed = apply_renames(checkpoint.state_dict, result)
    try:
        load_strict(model, fixed)  # the proof the written file will load
    except CheckpointError as exc:
        raise CheckpointError(f"{safe_text(args.file)}: {exc}") from None
    assert output is not None
    save_state_dict(fixed, output)
    renamed = len(result.suggested_renames)
    print(f"wrote {safe_text(output)}: {renamed} keys renamed; strict load passed")
    return 0


def build_experiment_model(experiment: Experiment, source: str) -> nn.Module:
    """The experiment's model; the input shape comes from the dataset when the file omits it."""
    from workbench.engine.experiment_model import build_experiment_model as build

    module: nn.Module = build(experiment).module
    return module


def _check_output(args: argparse.Namespace) -> Path | None:
    if not args.apply:
        if args.output:
            raise CheckpointError("reconcile: -o OUT is only used with --apply.")
        return None
    if not args.output:
        raise CheckpointError("reconcile --apply: say where to write the result with -o OUT.")
    output = Path(args.output)
    if output.exists() and not args.force:
        raise CheckpointError(f"{output}: exists; pass --force to replace it (written atomically).")
    return output


def _open(path: str, trusted: bool) -> Checkpoint:
    from workbench.engine.checkpoints import open_checkpoint

    if trusted:
        print(trust_warning(path), file=sys.stderr)
    return open_checkpoint(path, trust_file=path if trusted else None)
