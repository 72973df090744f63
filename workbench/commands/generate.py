"""`workbench generate EXP.toml --weights model.pth --prompt "..."`: text from a trained model."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write text with a trained next-token model, token by token",
        description='Load the model of EXP.toml (trained on text, data.name = "text") with '
        "the weights of model.pth and continue the prompt, printing each token as it comes. "
        "The same --seed gives the same text. Exit status: 0 done, 2 bad input (e.g. a prompt "
        "with characters the training text never had).",
    )
    parser.add_argument("experiment", metavar="EXP.toml", help="experiment file or preset name")
    parser.add_argument("--weights", required=True, metavar="model.pth", help="trained weights")
    parser.add_argument("--prompt", default="", help="text to continue (default: a new line)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens to generate (200)")
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="0 takes the most likely token; higher is more adventurous (0.8)",
    )
    parser.add_argument(
        "--top-k", type=int, default=40, help="sample among the k likeliest tokens; 0: all (40)"
    )
    parser.add_argument("--seed", type=int, help="seed of the sampling (default: random)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.checkpoints import open_checkpoint
    from workbench.engine.experiment import load_experiment
    from workbench.engine.generation import (
        SamplingSettings,
        open_text_model,
        require_text_model,
    )
    from workbench.engine.presets import resolve_experiment_path

    experiment = load_experiment(resolve_experiment_path(args.experiment))
    require_text_model(experiment)
    settings = SamplingSettings(
        tokens=args.tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
        seed=args.seed,
    )
    weights = open_checkpoint(args.weights)
    text_model = open_text_model(experiment, weights.state_dict, args.device)
    pieces = text_model.stream(args.prompt, settings)  # the prompt is checked here
    sys.stdout.write(args.prompt)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
