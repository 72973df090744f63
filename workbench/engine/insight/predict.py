"""One prediction, as the classic `torch.softmax(model(X), dim=1)` shows it, and the inputs for it.

Inputs come from a drawing (digit-style image sets), a clicked point (2-D sets) or a table
row; each is turned into exactly what the dataset feeds the model (same size, same scaling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from workbench.engine.datasets import dataset_options
from workbench.engine.datasets.vision import CIFAR10, FASHION_MNIST, MNIST
from workbench.engine.experiment import DataSpec
from workbench.engine.insight.outputs import class_probabilities, mode, model_device, output_kind

Normalization = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True, eq=False)
class Prediction:
    """The raw outputs and the class probabilities for one input."""

    outputs: np.ndarray[Any, np.dtype[np.float32]]  # what model(X) returned, one per class
    probabilities: np.ndarray[Any, np.dtype[np.float32]]  # sums to 1
    class_names: tuple[str, ...]
    output_kind: str  # "logits", "log-probabilities" or "probabilities"

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def predicted_name(self) -> str:
        return self.class_names[self.predicted]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.predicted])

    def ranked(self) -> list[tuple[str, float]]:
        """(class name, probability), the most likely first."""
        order = np.argsort(-self.probabilities, kind="stable")
        return [(self.class_names[i], float(self.probabilities[i])) for i in order]


def predict(model: nn.Module, sample: torch.Tensor, class_names: Sequence[str]) -> Prediction:
    """`torch.softmax(model(X), dim=1)` for one sample (no batch dimension), in eval mode.

    A model that already ends in Softmax or LogSoftmax gives the same probabilities: the
    outputs are read as what they are instead of being squashed twice.
    """
    x = sample.detach().float().unsqueeze(0).to(model_device(model))
    with torch.inference_mode(), mode(model, training=False):
        output = model(x).reshape(1, -1).float().cpu()
    probabilities = class_probabilities(output)[0]
    names = tuple(class_names)
    names += tuple(f"class {i}" for i in range(len(names), len(probabilities)))
    return Prediction(
        outputs=output[0].numpy(),
        probabilities=probabilities.numpy(),
        class_names=names[: len(probabilities)],
        output_kind=output_kind(output) if output.shape[1] > 1 else "logits",
    )


def point_input(x: float, y: float) -> torch.Tensor:
    """A clicked point of a 2-D set, as the model receives it."""
    return torch.tensor([x, y], dtype=torch.float32)


def row_input(values: Sequence[float]) -> torch.Tensor:
    """A table row as the model receives it (the values of the split, already standardised
    when `data.options.standardize` is on)."""
    return torch.tensor([float(value) for value in values], dtype=torch.float32)


# --------------------------------------------------------------------------- drawings

_NORMALIZED_SETS = {kind.name: kind for kind in (MNIST, FASHION_MNIST, CIFAR10)}


def input_normalization(spec: DataSpec) -> Normalization | None:
    """The (mean, std) per channel the dataset applies after scaling pixels to 0..1, if any."""
    kind = _NORMALIZED_SETS.get(spec.name)
    if kind is None or not dataset_options(spec)["normalize"]:
        return None
    return kind.mean, kind.std


def drawing_to_input(
    drawing: np.ndarray[Any, Any],
    input_shape: Sequence[int],
    normalization: Normalization | None = None,
) -> torch.Tensor:
    """A drawing ([H, W], ink 1 on 0 background) as a [C, H, W] sample of the dataset.

    It follows how the datasets were made: MNIST-sized targets get the digit scaled into a
    20x20 box and centred by its centre of mass on a 28x28 field; tiny targets (the 8x8
    digits) get it scaled to the full height and centred. Then pixels are normalised as the
    dataset does it, and gray is repeated for colour inputs.
    """
    channels, height, width = _image_shape(input_shape)
    ink = torch.as_tensor(np.asarray(drawing, dtype=np.float32)).clamp(0, 1)
    canvas = torch.zeros(height, width)
    rows = torch.nonzero(ink.amax(dim=1) > 0.05).view(-1)
    columns = torch.nonzero(ink.amax(dim=0) > 0.05).view(-1)
    if len(rows) and len(columns):
        cropped = ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
        tiny = max(height, width) <= 16
        fill = 1.0 if tiny else 20 / 28
        box = max(1, round(fill * height)), max(1, round(fill * width))
        scale = min(box[0] / cropped.shape[0], box[1] / cropped.shape[1])
        size = (
            max(1, min(height, round(cropped.shape[0] * scale))),
            max(1, min(width, round(cropped.shape[1] * scale))),
        )
        glyph = functional.interpolate(
            cropped[None, None], size=size, mode="bilinear", antialias=True, align_corners=False
        )[0, 0].clamp(0, 1)
        top, left = _placement(glyph, height, width, by_mass=not tiny)
        canvas[top : top + size[0], left : left + size[1]] = glyph
    image = canvas.unsqueeze(0).repeat(channels, 1, 1)
    if normalization is not None:
        mean = torch.tensor(normalization[0]).view(-1, 1, 1)
        std = torch.tensor(normalization[1]).view(-1, 1, 1)
        image = (image - mean) / std
    return image


def _image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(size) for size in input_shape)
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) != 3:
        raise ValueError(f"a drawing needs an image input [channels, height, width], not {shape}")
    return shape[0], shape[1], shape[2]


def _placement(glyph: torch.Tensor, height: int, width: int, by_mass: bool) -> tuple[int, int]:
    """Top-left corner that centres the glyph by its bounding box or its centre of mass."""
    gh, gw = glyph.shape
    top, left = (height - gh) / 2, (width - gw) / 2
    mass = float(glyph.sum())
    if by_mass and mass > 0:
        ys = torch.arange(gh, dtype=torch.float32) + 0.5
        xs = torch.arange(gw, dtype=torch.float32) + 0.5
        centre_y = float((glyph.sum(dim=1) * ys).sum()) / mass
        centre_x = float((glyph.sum(dim=0) * xs).sum()) / mass
        top, left = height / 2 - centre_y, width / 2 - centre_x
    return (
        int(min(max(round(top), 0), height - gh)),
        int(min(max(round(left), 0), width - gw)),
    )
