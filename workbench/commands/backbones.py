"""`workbench backbones`: the pretrained torchvision networks a Backbone layer can start from."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backbones",
        help="list the pretrained networks a Backbone layer takes (arch), with their accuracy",
        description="Every torchvision classification network, with its default weights: "
        "parameters, the image size they were evaluated at, the published ImageNet top-1 "
        "accuracy, GFLOPS, and whether the weights file is in the torch hub cache (offline use).",
    )
    parser.add_argument("--cached", action="store_true", help="only those whose file is cached")
    parser.add_argument("arch", nargs="?", help="show one network with its stages")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.backbone_catalogue import backbone_catalogue, backbone_info
    from workbench.engine.backbone_weights import hub_checkpoints
    from workbench.engine.backbones import check_arch
    from workbench.engine.errors import ModelBuildError

    if args.arch:
        try:
            arch = check_arch(args.arch)
        except ValueError as exc:
            raise ModelBuildError(str(exc)) from None
        print(_details(backbone_info(arch)))
        return 0
    infos = [info for info in backbone_catalogue() if info.cached or not args.cached]
    print(_table(infos))
    print(f"\nweights cache: {hub_checkpoints()} (TORCH_HOME moves it)")
    return 0


def _table(infos: list[Any]) -> str:
    from workbench.engine.checkpoints.report import table

    rows = [
        [
            info.arch,
            f"{info.parameters / 1e6:.1f} M",
            f"{info.input_size}",
            "-" if info.top1 is None else f"{info.top1:.1f}%",
            "-" if info.gflops is None else f"{info.gflops:.2f}",
            "yes" if info.cached else "no",
        ]
        for info in infos
    ]
    headers = ["arch", "parameters", "input", "top-1", "GFLOPS", "cached"]
    return table(headers, rows, right=(1, 2, 3, 4))


def _details(info: Any) -> str:
    from workbench.engine.backbone_catalogue import backbone_stages

    stages = backbone_stages(info.arch)
    top1 = "-" if info.top1 is None else f"{info.top1:.2f}%"
    lines = [
        f"{info.arch}: weights {info.weights}, {info.parameters:,} parameters, "
        f"ImageNet top-1 {top1}",
        f"  images: resize {info.resize_size}, crop {info.input_size}",
        f"  file: {info.file_name} ({'cached' if info.cached else 'not cached'}; {info.url})",
        '  stages (freeze = "last:N" trains the last N): '
        + ", ".join(f"{stage.name} {stage.parameters:,}" for stage in stages),
    ]
    return "\n".join(lines)
