"""A pretrained torchvision network as one layer: its classifier removed, its early stages frozen.

`{ type = "Backbone", arch = "resnet18", weights = "DEFAULT", freeze = true }` is the network
`torchvision.models.get_model(arch)` with the classifier replaced by `nn.Identity`, so it
outputs the pooled feature vector (512 numbers for resnet18). Its state_dict keys are
torchvision's own (`conv1.weight`, ...), under the layer's name. Building it makes the
architecture only; `engine/backbone_weights.py` loads the pretrained weights when a run starts.

torchvision takes seconds to import, so it is imported only when a backbone is planned or built.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.layer_rules import LayerRules, PlannedLayer, show

Shape = tuple[int, ...]
IMAGENET_CLASSES = 1000  # every torchvision classification model is built with this many
# Classifiers that only exist beside the main one; built without them, their keys are not used.
AUX_HEADS = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}
_LAST = re.compile(r"last:(\d+)")


def torchvision_models() -> Any:
    import torchvision.models

    return torchvision.models


@functools.cache
def arch_names() -> tuple[str, ...]:
    """Every torchvision classification model, as `torchvision.models.list_models` names them."""
    models = torchvision_models()
    return tuple(models.list_models(module=models))


def check_arch(arch: str) -> str:
    """`arch` if torchvision has it, else ValueError with the closest names."""
    names = arch_names()
    if arch in names:
        return arch
    close = difflib.get_close_matches(arch, names, n=3)
    if close:
        hint = f"did you mean {' or '.join(repr(name) for name in close)}?"
    else:
        hint = f"e.g. {', '.join(names[:6])}"
    raise ValueError(
        f"arch = {arch!r} is not a torchvision classification model; {hint} "
        "(`workbench backbones` lists them all)"
    )


# --------------------------------------------------------------------------- the layer


class Backbone(nn.Module):
    """The layer type. Each built backbone is the torchvision network itself, whose class is
    made to derive from this one too (`ResNet` prints as `ResNet`), so its keys, printout and
    traced graph are torchvision's; this class adds the freezing and the feature cache switch.
    """

    arch: str
    weights: str
    freeze: bool | str
    feature_size: int
    stage_names: tuple[str, ...]
    classifier_keys: tuple[str, ...]  # module names whose pretrained keys are not used
    frozen_norms: tuple[str, ...]  # BatchNorm modules of frozen parts, kept in eval mode
    always_eval: bool  # fully frozen: no dropout, no batch statistics, a fixed feature extractor
    takes_features: bool  # the feature cache feeds features instead of images

    def __new__(
        cls, arch: str = "resnet18", weights: str = "DEFAULT", freeze: bool | str = True
    ) -> Backbone:
        if cls is not Backbone:  # a copy of a built backbone (copy.deepcopy)
            made: Backbone = super().__new__(cls)
            return made
        return make_backbone(arch, weights, freeze)

    def __init__(
        self, arch: str = "resnet18", weights: str = "DEFAULT", freeze: bool | str = True
    ) -> None:
        """Nothing to do: `__new__` returned the finished network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.takes_features:
            return x
        output: torch.Tensor = super().forward(x)
        return output

    def train(self, mode: bool = True) -> Backbone:
        """Frozen BatchNorm stays in eval mode, so its statistics never move; a fully frozen
        backbone stays in eval mode as a whole."""
        super().train(mode and not self.always_eval)
        for name in self.frozen_norms:
            self.get_submodule(name).train(False)
        return self

    @property
    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


_CLASSES: dict[type[nn.Module], type[Backbone]] = {}


def _backbone_class(base: type[nn.Module]) -> type[Backbone]:
    if base not in _CLASSES:
        _CLASSES[base] = type(base.__name__, (Backbone, base), {})
    return _CLASSES[base]


def make_backbone(arch: str, weights: str, freeze: bool | str) -> Backbone:
    """The torchvision network `arch` without its classifier, with `freeze` applied.

    The weights are torch's random initialisation here (from the global RNG, like any layer);
    `load_pretrained_backbones` puts the pretrained ones in.
    """
    net = construct(arch, pretrained=weights.lower() != "none")
    classifier, feature_size = _remove_classifier(net)
    net.__class__ = _backbone_class(type(net))
    backbone: Backbone = net  # type: ignore[assignment]
    backbone.arch, backbone.weights, backbone.freeze = arch, weights, freeze
    backbone.feature_size = feature_size
    backbone.classifier_keys = (classifier, *AUX_HEADS.get(arch, ()))
    backbone.stage_names = tuple(name for name, _ in stages(backbone))
    backbone.takes_features = False
    apply_freeze(backbone, trainable_stages(freeze, len(backbone.stage_names)))
    return backbone


def construct(arch: str, pretrained: bool) -> nn.Module:
    """`torchvision.models.get_model(arch)` as torchvision builds it for pretrained weights
    (Inception's input transform, ViT's image size), without auxiliary classifiers."""
    models = torchvision_models()
    kwargs = arch_arguments(arch, pretrained)
    try:
        net: nn.Module = models.get_model(arch, weights=None, **kwargs)
    except NotImplementedError:
        # RegNet computes its widths with tensors, which the meta device cannot read: build it
        # on the CPU and move it over.
        if torch.get_default_device().type != "meta":
            raise
        with torch.device("cpu"):
            net = models.get_model(arch, weights=None, **kwargs)
        net = net.to("meta")
    return net


def arch_arguments(arch: str, pretrained: bool) -> dict[str, Any]:
    if arch in AUX_HEADS:
        return {"aux_logits": False, "init_weights": not pretrained, "transform_input": pretrained}
    if not pretrained:
        return {}
    meta = torchvision_models().get_model_weights(arch).DEFAULT.meta
    if arch.startswith("vit_"):
        return {"image_size": meta["min_size"][0]}
    if arch.startswith("maxvit"):
        return {"input_size": meta["min_size"]}
    return {}


def _remove_classifier(net: nn.Module) -> tuple[str, int]:
    """Replace the last layer that gives the 1000 ImageNet scores with nn.Identity; its name and
    how many features it took (the size of what the network now outputs)."""
    found: tuple[str, int] | None = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES:
            found = (name, module.in_features)
        elif isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES:
            found = (name, module.in_channels)  # SqueezeNet's classifier is a 1x1 convolution
    if found is None:
        raise ValueError(f"{type(net).__name__} has no 1000-class classifier to remove")
    parent, _, leaf = found[0].rpartition(".")
    setattr(net.get_submodule(parent), leaf, nn.Identity())
    return found


# --------------------------------------------------------------------------- stages and freezing


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's stages in order, as `freeze = "last:N"` counts them: the children that hold
    weights (resnet: conv1, bn1, layer1 ... layer4), or the blocks of the one container that
    holds most of them (mobilenet's `features`, ViT's `encoder.layers`). Whatever comes after
    the stages (a final norm) trains with the last one; what comes before counts as frozen."""
    prefix, root = "", net
    while True:
        children = _weighted_children(root)
        inner = _dominant_container(children, _weights(root))
        if inner is None:
            return [(prefix + name, child) for name, child in children]
        prefix, root = f"{prefix}{inner[0]}.", inner[1]


def _weighted_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, child) for name, child in module.named_children() if _weights(child)]


def _dominant_container(
    children: list[tuple[str, nn.Module]], total: int
) -> tuple[str, nn.Module] | None:
    """The child to look inside: a container of blocks holding most of the weights, unless a
    sibling is a container of blocks of the same kind (resnet's layer4 is one of four)."""
    if not children or total == 0:
        return None
    name, largest = max(children, key=lambda item: _weights(item[1]))
    if len(_weighted_children(largest)) < 2 or _weights(largest) < total / 2:
        return None
    for other_name, other in children:
        alike = type(other) is type(largest) and len(_weighted_children(other)) >= 2
        if other_name != name and alike:
            return None
    return name, largest


def trainable_stages(freeze: bool | str, count: int) -> int:
    """How many of the last stages train: all (false), none (true) or N ("last:N")."""
    if isinstance(freeze, bool):
        return 0 if freeze else count
    found = _LAST.fullmatch(freeze.strip())
    if found is None:
        raise ValueError(
            f"freeze = {show(freeze)} is not allowed; use true (train only the layers after "
            'it), false (train it all) or "last:N" (train its last N stages), e.g. "last:1"'
        )
    number = int(found[1])
    if not 1 <= number <= count:
        raise ValueError(
            f'freeze = {show(freeze)}: the network has {count} stages; use "last:1" to '
            f'"last:{count}"'
        )
    return number


def apply_freeze(backbone: Backbone, trainable: int) -> None:
    """Freeze all but the last `trainable` stages (and what comes after them, e.g. a final
    norm); frozen BatchNorm layers are remembered so that `train()` keeps them in eval mode."""
    names = [name for name, _ in backbone.named_modules()]
    count = len(backbone.stage_names)
    if trainable >= count:
        start = 0
    elif trainable == 0:
        start = len(names)
    else:
        start = names.index(backbone.stage_names[count - trainable])
    training = set(names[start:])
    for name, parameter in backbone.named_parameters():
        parameter.requires_grad_(name.rpartition(".")[0] in training)
    backbone.frozen_norms = tuple(
        name
        for name, module in backbone.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and name not in training
    )
    backbone.always_eval = trainable == 0
    backbone.train(backbone.training)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class ArchFacts:
    """What planning needs to know about an architecture, measured once on the meta device."""

    feature_size: int
    stage_names: tuple[str, ...]
    min_size: tuple[int, int]


@functools.cache
def arch_facts(arch: str, weights: str = "none") -> ArchFacts:
    """Feature size, stages and the smallest input, for `weights` (pretrained ViTs are built
    for their weights' image size)."""
    with torch.device("meta"):
        backbone = make_backbone(arch, _pretrained_or_none(weights), False)
    meta = torchvision_models().get_model_weights(arch).DEFAULT.meta
    low = meta.get("min_size", (1, 1))
    return ArchFacts(backbone.feature_size, backbone.stage_names, (int(low[0]), int(low[1])))


def _output_shape(layer: PlannedLayer) -> Shape:
    from workbench.engine.backbone_weights import check_weights

    args = layer.args
    try:
        arch = check_arch(args["arch"])
        check_weights(arch, args["weights"])
        facts = arch_facts(arch, _pretrained_or_none(args["weights"]))
        trainable_stages(args["freeze"], len(facts.stage_names))
    except ValueError as exc:
        raise layer.bad_param(str(exc)) from None
    shape = layer.input_shape
    if len(shape) != 3 or shape[0] != 3:
        raise layer.bad_input(
            f"but {arch} takes RGB images [3, height, width]; use an image folder "
            '(data.name = "image-folder": its images are converted to RGB) or cifar10',
            separator=", ",
        )
    low = facts.min_size
    if shape[1] < low[0] or shape[2] < low[1]:
        raise layer.bad_input(
            f"but {arch} needs images of at least {low[0]}x{low[1]}; set data.image_size = "
            f"{max(low)} or more",
            separator=", ",
        )
    return (facts.feature_size,)


def _pretrained_or_none(weights: str) -> str:
    """What changes the architecture is only whether weights are loaded, not which."""
    return "none" if weights.lower() == "none" else "DEFAULT"


@functools.lru_cache(maxsize=64)
def _arch_macs(arch: str, weights: str, input_shape: Shape) -> int:
    """Multiply-accumulates of one forward pass, counted by torch on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        backbone = make_backbone(arch, weights, True)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        backbone(torch.empty((1, *input_shape), device="meta"))
    return int(counter.get_total_flops()) // 2


def _macs(layer: PlannedLayer, output_shape: Shape) -> int:
    weights = _pretrained_or_none(layer.args["weights"])
    return _arch_macs(layer.args["arch"], weights, tuple(layer.input_shape))


def _label(kind: Any, values: Mapping[str, Any]) -> str:
    freeze = values.get("freeze", True)
    frozen = {True: "frozen", False: "trainable"}.get(freeze, f"{freeze} trainable")
    weights = values.get("weights", "DEFAULT")
    shown = "" if weights == "DEFAULT" else f", weights {weights}"
    return f"{values.get('arch', '?')}, {frozen}{shown}"


BACKBONE_RULES = LayerRules(_output_shape, _macs, _label)


def backbones_in(model: nn.Module) -> list[tuple[str, Backbone]]:
    """The model's backbone layers, by module path."""
    return [
        (name, module) for name, module in model.named_modules() if isinstance(module, Backbone)
    ]
