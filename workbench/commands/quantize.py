"""`workbench quantize EXP.toml --weights W.pth --method M -o OUT`: an int8 model and its report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.commands._trust import TRUST_HELP, trust_warning
from workbench.engine.errors import CheckpointError
from workbench.engine.experiment import load_experiment
from workbench.engine.presets import resolve_experiment_path
from workbench.engine.quantization_choices import METHODS, OBSERVERS, PATHS

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantize a trained model to int8 and report what it gained and cost",
        description="Build the model of EXP.toml, load the trained float weights, quantize it "
        "(dynamic: int8 Linear/LSTM/GRU weights; static: int8 weights and activations "
        "calibrated on training samples; qat: fine-tuned with fake quantization), save it to "
        "OUT (a file, or a folder) and print a report card measured on the validation data: "
        "accuracy, per-class accuracy, size on disk, CPU latency at batch 1 and 64, "
        "throughput, and the float model under inference options (inference_mode, "
        "channels_last, torch.export, torch.compile with --compile). The card is also "
        "written as JSON next to the model. Exit status: 0 done, 1 quantization failed, "
        "2 bad input.",
    )
    parser.add_argument("experiment", metavar="EXP.toml", help="experiment file")
    parser.add_argument("--weights", required=True, metavar="W.pth", help="trained float weights")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="model file or folder")
    parser.add_argument(
        "--calibration", type=int, default=256, metavar="N", help="static: calibration samples"
    )
    parser.add_argument("--qat-epochs", type=int, default=1, metavar="N", help="qat: epochs")
    parser.add_argument(
        "--qat-lr-scale",
        type=float,
        default=0.1,
        metavar="F",
        help="qat: fine-tune at train.lr times F (default 0.1)",
    )
    parser.add_argument("--observer", choices=OBSERVERS, default="histogram", help="static")
    parser.add_argument(
        "--path",
        choices=PATHS,
        default="auto",
        help="implementation: eager (torch.ao.quantization), torchao (dynamic), pt2e "
        "(static/qat), or auto (the fastest measured on this kind of CPU)",
    )
    parser.add_argument("--backend", help="quantized engine (x86, fbgemm, qnnpack); default: auto")
    parser.add_argument(
        "--repeats", type=int, default=30, metavar="N", help="timed runs per median"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads while timing (default: torch's)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time the float model under torch.compile"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT's model if it exists")
    parser.add_argument("--trust-this-file", action="store_true", help=TRUST_HELP)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.checkpoints import open_checkpoint
    from workbench.engine.quantization import (
        MeasureSettings,
        QuantizationError,
        QuantizationOptions,
        choose_path,
        quantize_experiment,
        report_path_for,
        resolve_output,
    )
    from workbench.engine.quantization.recipe import check_backend

    experiment = load_experiment(resolve_experiment_path(args.experiment))
    options = QuantizationOptions(
        method=args.method,
        calibration_samples=args.calibration,
        qat_epochs=args.qat_epochs,
        qat_lr_scale=args.qat_lr_scale,
        observer=args.observer,
        path=args.path,
        backend=args.backend,
    )
    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        raise QuantizationError("--repeats and --threads take a whole number of at least 1")
    if options.backend is not None:
        check_backend(options.backend)
    path, _reason = choose_path(options.method, options.path)
    target = resolve_output(args.output, options.method, path)
    if target.exists() and not args.force:
        raise CheckpointError(f"{target}: exists; pass --force to replace it (written atomically)")
    if args.trust_this_file:
        print(trust_warning(args.weights), file=sys.stderr)
    weights = open_checkpoint(
        args.weights, trust_file=args.weights if args.trust_this_file else None
    )
    measure = MeasureSettings(repeats=args.repeats, threads=args.threads, compile=args.compile)
    try:
        outcome = quantize_experiment(
            experiment, weights.state_dict, options, target, measure=measure, progress=_StageLog()
        )
    except QuantizationError as exc:
        print(f"\nquantization failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(outcome.report.text())
    print(f"Report: {report_path_for(outcome.model_path)}")
    if outcome.report.reload_identical is False:
        print("error: the reloaded model predicts differently from the one saved", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


class _StageLog:
    """Progress on stderr, one line per stage (the engine reports within stages too)."""

    def __init__(self) -> None:
        self.stage = ""

    def __call__(self, text: str, fraction: float) -> None:
        if text != self.stage:
            self.stage = text
            print(f"[{fraction:4.0%}] {text}", file=sys.stderr, flush=True)
