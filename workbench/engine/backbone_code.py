"""A Backbone layer in an exported script: torchvision's own network, its classifier replaced by
nn.Identity, frozen as the engine freezes it, with the same pretrained weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from workbench.engine.backbones import AUX_HEADS, Backbone, arch_arguments, make_backbone
from workbench.engine.layer_export import LayerCode

MAKE_BACKBONE = '''
def make_backbone(arch, weights, classifier, trainable, weights_file=None, unused=(), **arguments):
    """torchvision's `arch` with its classifier replaced by nn.Identity, so that it gives the
    pooled features. Only the modules in `trainable` train ("" is all of them); the rest is
    frozen, and its BatchNorm layers stay in eval mode (the whole network when all is frozen)."""
    net = torchvision.models.get_model(arch, weights=weights, **arguments)
    parent, _, name = classifier.rpartition(".")
    setattr(net.get_submodule(parent), name, nn.Identity())
    if weights_file is not None:  # a state_dict as torchvision saves it; its classifier unused
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        prefixes = tuple(f"{name}." for name in (classifier, *unused))
        net.load_state_dict(
            {key: value for key, value in state.items() if not key.startswith(prefixes)}
        )

    def trains(module_name):
        return any(
            root == "" or module_name == root or module_name.startswith(root + ".")
            for root in trainable
        )

    for parameter_name, parameter in net.named_parameters():
        parameter.requires_grad_(trains(parameter_name.rpartition(".")[0]))
    frozen = [
        module
        for module_name, module in net.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not trains(module_name)
    ]
    train = net.train

    def train_keeping_frozen_in_eval(mode=True):
        train(mode and bool(trainable))
        for module in frozen:
            module.train(False)
        return net

    net.train = train_keeping_frozen_in_eval
    net.is_backbone = True
    return net.train()
'''

PARAMETER_GROUPS = '''
def parameter_groups(model, backbone_lr):
    """The trainable parameters; those of backbones learn at `backbone_lr`."""
    in_backbones = {
        id(parameter)
        for module in model.modules()
        if getattr(module, "is_backbone", False)
        for parameter in module.parameters()
    }
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in in_backbones]},
        {"params": [p for p in trainable if id(p) in in_backbones], "lr": backbone_lr},
    ]
    return [group for group in groups if group["params"]]
'''


def backbone_code(resolved: Mapping[str, Any]) -> LayerCode:
    """`make_backbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "fc", [])` and its helper."""
    from workbench.engine.backbone_weights import check_weights
    from workbench.engine.script_export.text import literal

    arch, weights, freeze = resolved["arch"], resolved["weights"], resolved["freeze"]
    choice = check_weights(arch, weights)
    with torch.device("meta"):
        backbone = make_backbone(arch, weights, freeze)
    arguments = dict(arch_arguments(arch, choice.kind != "none"))
    if choice.kind == "torchvision":  # torchvision sets the rest itself for its weights
        arguments = {key: value for key, value in arguments.items() if key == "aux_logits"}
    args = [
        literal(arch),
        literal(choice.name if choice.kind == "torchvision" else None),
        literal(backbone.classifier_keys[0]),
        literal(list(trainable_roots(backbone))),
    ]
    definitions = [MAKE_BACKBONE.strip("\n"), PARAMETER_GROUPS.strip("\n")]
    if choice.kind == "file":  # a constant: a long path would not fit in the call's line
        constant = f"{arch.upper()}_WEIGHTS_FILE"
        definitions.insert(0, f"{constant} = {literal(choice.name)}")
        args.append(f"weights_file={constant}")
        if arch in AUX_HEADS:
            args.append(f"unused={literal(tuple(AUX_HEADS[arch]))}")
    args += [f"{key}={literal(value)}" for key, value in arguments.items()]
    return LayerCode(
        "make_backbone",
        tuple(args),
        tuple(definitions),
        frozenset({"import torch", "import torchvision", "from torch import nn"}),
    )


def trainable_roots(backbone: Backbone) -> tuple[str, ...]:
    """The fewest module names whose parameters are exactly the trainable ones ("" for all)."""
    trainable = {name for name, p in backbone.named_parameters() if p.requires_grad}
    if not trainable:
        return ()
    roots: list[str] = []
    for name, module in backbone.named_modules():
        if any(name == root or name.startswith(f"{root}.") or root == "" for root in roots):
            continue
        owned = [f"{name}.{key}" if name else key for key, _ in module.named_parameters()]
        if owned and all(key in trainable for key in owned):
            roots.append(name)
    return tuple(roots)
