"""`workbench export EXP.toml --weights W --format F -o OUT`: a deployment file, checked."""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK, EXIT_FAILED = 0, 1
FORMAT_NAMES = "onnx, pt2, torchscript"  # engine.export.FORMATS, kept here so --help needs no torch


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX, .pt2 or TorchScript, checked against PyTorch",
        description="Build the model of EXP.toml with the weights W (a float checkpoint, or a "
        "model written by `workbench quantize`), write it as ONNX (torch.onnx.export; run "
        "with onnxruntime), a .pt2 exported program (torch.export) or TorchScript "
        "(torch.jit.trace), with a dynamic batch dimension; then load the file back and "
        "print the largest absolute difference from PyTorch on a batch of 8 and a batch of 1 "
        "of the experiment's data (random samples of its shape where the data is not here). "
        "Exit status: 0 done and within --atol, 1 over --atol, 2 bad input or a model the "
        "format's exporter refuses (including a quantized model a format cannot take).",
    )
    parser.add_argument("experiment", metavar="EXP.toml", help="experiment file or preset name")
    parser.add_argument("--weights", required=True, metavar="W", help="trained weights")
    parser.add_argument("--format", required=True, metavar="F", help=f"one of {FORMAT_NAMES}")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    parser.add_argument(
        "--opset", type=int, metavar="N", help="ONNX opset (default: the exporter's)"
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        metavar="X",
        help="largest absolute difference allowed (default 1e-4)",
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.experiment import load_experiment
    from workbench.engine.export import export_experiment
    from workbench.engine.presets import resolve_experiment_path
    from workbench.engine.progress_log import StageLog

    experiment = load_experiment(resolve_experiment_path(args.experiment))
    result = export_experiment(  # ExportFailed, like any bad input, is a WorkbenchError: exit 2
        experiment,
        args.weights,
        args.format,
        args.output,
        opset=args.opset,
        atol=args.atol,
        force=args.force,
        progress=StageLog(),
    )
    print(result.text())
    return EXIT_OK if result.passed else EXIT_FAILED
