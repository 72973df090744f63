"""The pretrained networks on offer, from torchvision's own weights metadata: what the window's
"Start from a pretrained network" page lists and `workbench backbones` prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.engine.backbone_weights import WeightsChoice, check_weights, is_cached, weights_enum
from workbench.engine.backbones import Backbone, arch_facts, arch_names, stages


@dataclass(frozen=True)
class BackboneInfo:
    """One architecture with its default weights, as torchvision describes them."""

    arch: str
    weights: str  # the default weights' name, e.g. IMAGENET1K_V1
    parameters: int  # of the whole published network, its classifier included
    input_size: int  # the crop the weights were evaluated at (224)
    resize_size: int  # the shorter side before that crop (256)
    top1: float | None  # ImageNet-1K accuracy in percent, as published with the weights
    top5: float | None
    gflops: float | None  # at input_size
    file_size_mb: float | None
    file_name: str  # what the hub cache holds, e.g. resnet18-f37072fd.pth
    url: str
    cached: bool  # the file is in the torch hub cache: usable offline


def backbone_info(arch: str) -> BackboneInfo:
    """What torchvision publishes about `arch`'s default weights (no weights are read)."""
    member = weights_enum(arch).DEFAULT
    meta = member.meta
    metrics: dict[str, Any] = next(iter(meta.get("_metrics", {}).values()), {})
    transform = member.transforms()
    choice: WeightsChoice = check_weights(arch, "DEFAULT")
    return BackboneInfo(
        arch=arch,
        weights=member.name,
        parameters=int(meta["num_params"]),
        input_size=int(transform.crop_size[0]),
        resize_size=int(transform.resize_size[0]),
        top1=_number(metrics.get("acc@1")),
        top5=_number(metrics.get("acc@5")),
        gflops=_number(meta.get("_ops")),
        file_size_mb=_number(meta.get("_file_size")),
        file_name=choice.file_name,
        url=choice.url,
        cached=is_cached(choice),
    )


def backbone_catalogue() -> list[BackboneInfo]:
    """Every torchvision classification network, by name."""
    return [backbone_info(arch) for arch in arch_names()]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class StageInfo:
    """One stage of a backbone, as `freeze = "last:N"` counts them (the last is N = 1)."""

    name: str  # module path inside the backbone, e.g. layer4
    parameters: int


def backbone_stages(arch: str) -> list[StageInfo]:
    """The stages of `arch` in order, with their parameter counts (built on the meta device)."""
    import torch

    with torch.device("meta"):
        network = Backbone(arch, "none", False)
    names = arch_facts(arch).stage_names
    found = dict(stages(network))
    return [StageInfo(name, sum(p.numel() for p in found[name].parameters())) for name in names]
