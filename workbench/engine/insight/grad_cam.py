"""Grad-CAM: where in an image the evidence for a class lies ("why did it say cat").

Selvaraju et al.: the gradients of the class score with respect to the last convolutional
feature map, averaged over its positions, weight that map's channels; their ReLU'd sum,
upsampled to the image, is the heatmap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from workbench.engine.errors import WorkbenchError
from workbench.engine.insight.outputs import class_probabilities, mode, model_device


class GradCamError(WorkbenchError):
    """The model has no layer Grad-CAM can look at (no feature map larger than 1x1)."""


@dataclass(frozen=True, eq=False)
class GradCam:
    """A heatmap over one image and what it explains."""

    heatmap: np.ndarray[Any, np.dtype[np.float32]]  # [height, width] of the image, in [0, 1]
    target: int  # the class whose evidence it shows
    probabilities: np.ndarray[Any, np.dtype[np.float32]]  # the model's prediction
    layer: str  # the module whose feature map was used, e.g. backbone.layer4

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))


def grad_cam(
    model: nn.Module, image: torch.Tensor, target: int | None = None, layer: str | None = None
) -> GradCam:
    """The Grad-CAM heatmap of `image` ([C, H, W], as the model is fed) for class `target`
    (default: the predicted class), from `layer` (default: the last module whose output is a
    feature map larger than 1x1). The model runs in eval mode; its weights are not changed."""
    names = {module: name for name, module in model.named_modules()}
    maps: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, args: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            return None
        name = names[module]
        if layer is not None and name != layer:
            return None
        if output.shape[2] * output.shape[3] < 2 and layer is None:
            return None
        if not output.requires_grad:  # a frozen part: let the gradient reach this map anyway
            output = output.detach().requires_grad_()
        maps.pop(name, None)
        maps[name] = output  # insertion order: the last one written is the last computed
        return output

    handles = [module.register_forward_hook(keep) for module in model.modules()]
    try:
        with mode(model, training=False), torch.enable_grad():
            batch = image.unsqueeze(0).to(model_device(model))
            scores = model(batch)
            probabilities = class_probabilities(scores)[0]
            chosen = int(probabilities.argmax()) if target is None else target
            if not maps:
                raise GradCamError(_no_map_message(layer))
            name, feature_map = list(maps.items())[-1]
            # autograd.grad, not backward: no parameter's .grad is touched
            (gradient,) = torch.autograd.grad(scores.reshape(1, -1)[0, chosen], feature_map)
    finally:
        for handle in handles:
            handle.remove()
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = functional.relu((weights * feature_map).sum(dim=1, keepdim=True)).detach().float()
    cam = functional.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)
    heat = cam[0, 0]
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else torch.zeros_like(heat)
    return GradCam(
        heat.cpu().numpy().astype(np.float32),
        chosen,
        probabilities.detach().cpu().numpy().astype(np.float32),
        name,
    )


def _no_map_message(layer: str | None) -> str:
    if layer is not None:
        return f"Grad-CAM: layer {layer!r} gives no feature map [channels, height, width]"
    return (
        "Grad-CAM needs a convolutional feature map larger than 1x1, and this model has none "
        "(a vision transformer, or images so small that the map shrinks to 1x1); use larger "
        "images or a convolutional network"
    )


def overlay(rgb: np.ndarray[Any, Any], heatmap: np.ndarray[Any, Any], alpha: float = 0.5) -> Any:
    """The image ([H, W, 3] uint8) with the heatmap laid over it in red, as uint8."""
    heat = np.clip(heatmap, 0.0, 1.0)[..., None]
    red = np.zeros_like(rgb, dtype=np.float32)
    red[..., 0] = 255.0
    blended = rgb.astype(np.float32) * (1 - alpha * heat) + red * (alpha * heat)
    return np.clip(blended, 0, 255).astype(np.uint8)
