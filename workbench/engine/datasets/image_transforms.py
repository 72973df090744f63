"""How image files become tensors: size, channels, a network's normalisation, training augmentation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workbench.engine.errors import DatasetError
from workbench.engine.experiment import AugmentSpec, DataSpec

DEFAULT_IMAGE_SIZE = 32  # image-folder's data.options.image_size default
Transform = Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class Preprocessing:
    """A pretrained network's own preprocessing, as its weights' `transforms()` give it."""

    crop_size: int
    resize_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str  # "bilinear", "bicubic" or "nearest"
    source: str  # e.g. "resnet18 weights IMAGENET1K_V1"


@dataclass(frozen=True)
class ImagePipeline:
    """What every image goes through: resized (and centre-cropped) to `size`, made `channels`
    deep, scaled to [0, 1], normalised with `mean`/`std` when given; training images first get
    the `augment` changes."""

    size: int
    channels: int
    grayscale: bool = False  # gray content (repeated over three channels when channels is 3)
    resize: int | None = None  # the shorter side before a centre crop; None: squash to size
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    augment: AugmentSpec | None = None
    source: str = ""  # where the numbers come from, for the log

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    @property
    def is_random(self) -> bool:
        return self.augment is not None and self.augment.is_random

    def eval_transform(self) -> Transform:
        """Validation (and, without augmentation, training) images."""
        return compose(self.steps(train=False))

    def train_transform(self) -> Transform:
        return compose(self.steps(train=True))

    def display_transform(self) -> Transform:
        """Training images as a person sees them: augmented, in [0, 1], not normalised."""
        return compose(self.steps(train=True, normalize=False))

    def describe(self) -> str:
        """`Resize(256, bilinear) → CenterCrop(224) → Normalize(...)`, for summaries and logs."""
        steps = [step for step in self.steps(train=False) if step.name not in _CONVERSIONS]
        text = " → ".join(step.text() for step in steps)
        return f"{text} ({self.source})" if self.source else text

    def describe_augment(self) -> str:
        """The training-only changes, or "none"."""
        if not self.is_random:
            return "none"
        return " → ".join(step.text() for step in self._size_and_augment_steps(train=True))

    def steps(self, train: bool, normalize: bool = True) -> list[Step]:
        """The torchvision.transforms.v2 steps, in order; the exported script writes the same."""
        steps = self._size_and_augment_steps(train)
        if self.grayscale:
            steps.append(Step("Grayscale", {"num_output_channels": self.channels}))
        steps += [Step("ToImage", {}), Step("ToDtype", {"dtype": "float32", "scale": True})]
        if normalize and self.mean is not None and self.std is not None:
            steps.append(Step("Normalize", {"mean": list(self.mean), "std": list(self.std)}))
        return steps

    def _size_and_augment_steps(self, train: bool) -> list[Step]:
        augment = self.augment
        mode = {"interpolation": self.interpolation}
        if not train or augment is None or not augment.is_random:
            return self._resize_steps()
        steps: list[Step] = []
        if augment.random_resized_crop:
            crop = {"size": self.size, "scale": list(augment.scale), "ratio": list(augment.ratio)}
            steps.append(Step("RandomResizedCrop", {**crop, **mode, "antialias": True}))
        else:
            steps += self._resize_steps()
        if augment.horizontal_flip > 0:
            steps.append(Step("RandomHorizontalFlip", {"p": augment.horizontal_flip}))
        if augment.vertical_flip > 0:
            steps.append(Step("RandomVerticalFlip", {"p": augment.vertical_flip}))
        if augment.rotation > 0:
            steps.append(Step("RandomRotation", {"degrees": augment.rotation, **mode}))
        names = ("brightness", "contrast", "saturation", "hue")
        jitter = {name: getattr(augment, name) for name in names if getattr(augment, name) > 0}
        if jitter:
            steps.append(Step("ColorJitter", jitter))
        return steps

    def _resize_steps(self) -> list[Step]:
        mode = {"interpolation": self.interpolation, "antialias": True}
        if self.resize is None:
            return [Step("Resize", {"size": [self.size, self.size], **mode})]
        return [
            Step("Resize", {"size": self.resize, **mode}),
            Step("CenterCrop", {"size": self.size}),
        ]


_CONVERSIONS = ("ToImage", "ToDtype")


@dataclass(frozen=True)
class Step:
    """One torchvision.transforms.v2 class by name and its keyword arguments, as plain values
    (`interpolation` by name, `dtype` as "float32"), so the engine and a script build the same."""

    name: str
    arguments: Mapping[str, Any]

    def build(self) -> Any:
        from torchvision.transforms import InterpolationMode, v2

        values = dict(self.arguments)
        if "interpolation" in values:
            values["interpolation"] = InterpolationMode(values["interpolation"])
        if "dtype" in values:
            values["dtype"] = getattr(torch, values["dtype"])
        return getattr(v2, self.name)(**values)

    def text(self) -> str:
        """`Resize(256, bilinear)`, `RandomHorizontalFlip(p=0.5)`: short, for people."""
        values = dict(self.arguments)
        mode = values.pop("interpolation", None)
        values.pop("antialias", None)
        parts = [_value_text(values.pop("size"))] if "size" in values else []
        if self.name == "RandomRotation":
            parts = [f"±{values.pop('degrees'):g}°"]
        parts += [f"{key}={_value_text(value)}" for key, value in values.items()]
        if mode is not None and self.name == "Resize":
            parts.append(str(mode))
        return f"{self.name}({', '.join(parts)})"


def compose(steps: list[Step]) -> Transform:
    from torchvision.transforms import v2

    transform: Transform = v2.Compose([step.build() for step in steps])
    return transform


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return (
            "x".join(str(item) for item in value)
            if all(isinstance(item, int) for item in value)
            else _numbers(tuple(value))
        )
    return f"{value:g}" if isinstance(value, float) else str(value)


def _numbers(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values) + "]"


# --------------------------------------------------------------------------- from the experiment


def image_pipeline(
    spec: DataSpec, options: Mapping[str, Any], preprocessing: Preprocessing | None = None
) -> ImagePipeline:
    """The pipeline an image folder's images go through, checked; `preprocessing` comes from a
    pretrained backbone (its normalisation, and its crop size unless data.image_size is set)."""
    size = _image_size(spec, preprocessing)
    augment = _checked_augment(spec.augment)
    grayscale = bool(options.get("grayscale", False))
    if preprocessing is None:
        return ImagePipeline(size, 1 if grayscale else 3, grayscale, augment=augment)
    resize = max(size, round(size * preprocessing.resize_size / preprocessing.crop_size))
    return ImagePipeline(
        size=size,
        channels=3,  # the network needs RGB: gray images are repeated over three channels
        grayscale=grayscale,
        resize=resize,
        mean=preprocessing.mean,
        std=preprocessing.std,
        interpolation=preprocessing.interpolation,
        augment=augment,
        source=preprocessing.source,
    )


def _image_size(spec: DataSpec, preprocessing: Preprocessing | None) -> int:
    option = spec.options.get("image_size")
    if spec.image_size is not None and option is not None and option != spec.image_size:
        raise DatasetError(
            f"data.image_size = {spec.image_size} and data.options.image_size = {option} "
            "disagree; set only data.image_size"
        )
    given = spec.image_size if spec.image_size is not None else option
    if given is not None:
        return int(given)
    return preprocessing.crop_size if preprocessing is not None else DEFAULT_IMAGE_SIZE


def _checked_augment(augment: AugmentSpec | None) -> AugmentSpec | None:
    if augment is None:
        return None
    for name, low_is_positive in (("scale", True), ("ratio", True)):
        pair = getattr(augment, name)
        if len(pair) != 2 or pair[0] > pair[1] or (low_is_positive and pair[0] <= 0):
            shown = "[" + ", ".join(f"{value:g}" for value in pair) + "]"
            raise DatasetError(
                f"data.augment.{name}: {shown} is not a range; give [low, high] with "
                f"0 < low <= high, e.g. {name} = {_numbers(getattr(AugmentSpec(), name))}"
            )
    return augment


def check_image_settings(spec: DataSpec) -> None:
    """data.image_size and data.augment apply to image folders; elsewhere they are a mistake."""
    if spec.name == "image-folder":
        return
    for key in ("image_size", "augment"):
        if getattr(spec, key) is not None:
            raise DatasetError(
                f'data.{key}: applies to image folders only (data.name = "image-folder"), '
                f"not to {spec.name!r}; remove it"
            )
