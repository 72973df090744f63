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
        return self._compose(self._resize_steps(), normalize=True)

    def train_transform(self) -> Transform:
        return self._compose(self._augment_steps(), normalize=True)

    def display_transform(self) -> Transform:
        """Training images as a person sees them: augmented, in [0, 1], not normalised."""
        return self._compose(self._augment_steps(), normalize=False)

    def describe(self) -> str:
        """`Resize(256, bilinear) → CenterCrop(224) → Normalize(...)`, for summaries and logs."""
        steps = [_step_text(step) for step in self._resize_steps()]
        if self.grayscale:
            steps.append(f"Grayscale({self.channels})")
        if self.mean is not None and self.std is not None:
            steps.append(f"Normalize(mean={_numbers(self.mean)}, std={_numbers(self.std)})")
        text = " → ".join(steps)
        return f"{text} ({self.source})" if self.source else text

    def describe_augment(self) -> str:
        """The training-only changes, or "none"."""
        if not self.is_random:
            return "none"
        return " → ".join(_step_text(step) for step in self._augment_steps())

    # ------------------------------------------------------------------ the steps

    def _v2(self) -> Any:
        from torchvision.transforms import v2

        return v2

    def _mode(self) -> Any:
        from torchvision.transforms import InterpolationMode

        return InterpolationMode(self.interpolation)

    def _resize_steps(self) -> list[Any]:
        v2 = self._v2()
        if self.resize is None:
            return [v2.Resize((self.size, self.size), self._mode(), antialias=True)]
        return [v2.Resize(self.resize, self._mode(), antialias=True), v2.CenterCrop(self.size)]

    def _augment_steps(self) -> list[Any]:
        augment = self.augment
        if augment is None or not augment.is_random:
            return self._resize_steps()
        v2 = self._v2()
        steps: list[Any] = []
        if augment.random_resized_crop:
            steps.append(
                v2.RandomResizedCrop(
                    self.size, augment.scale, augment.ratio, self._mode(), antialias=True
                )
            )
        else:
            steps += self._resize_steps()
        if augment.horizontal_flip > 0:
            steps.append(v2.RandomHorizontalFlip(augment.horizontal_flip))
        if augment.vertical_flip > 0:
            steps.append(v2.RandomVerticalFlip(augment.vertical_flip))
        if augment.rotation > 0:
            steps.append(v2.RandomRotation(augment.rotation, self._mode()))
        jitter = (augment.brightness, augment.contrast, augment.saturation, augment.hue)
        if any(value > 0 for value in jitter):
            steps.append(v2.ColorJitter(*jitter))
        return steps

    def _compose(self, steps: list[Any], normalize: bool) -> Transform:
        v2 = self._v2()
        steps = list(steps)
        if self.grayscale:
            steps.append(v2.Grayscale(num_output_channels=self.channels))
        steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        if normalize and self.mean is not None and self.std is not None:
            steps.append(v2.Normalize(list(self.mean), list(self.std)))
        transform: Transform = v2.Compose(steps)
        return transform


def _numbers(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values) + "]"


def _step_text(step: Any) -> str:
    """A transform as a short line: `Resize(256, bilinear)`, `RandomHorizontalFlip(p=0.5)`."""
    name = type(step).__name__
    if name == "Resize":  # [256]: the shorter side; [32, 32]: squashed to that size
        size = "x".join(str(value) for value in step.size)
        return f"Resize({size}, {step.interpolation.value})"
    if name == "CenterCrop":
        return f"CenterCrop({_size_text(step.size)})"
    if name == "RandomResizedCrop":
        return (
            f"RandomResizedCrop({_size_text(step.size)}, scale={_numbers(step.scale)}, "
            f"ratio={_numbers(step.ratio)})"
        )
    if name in ("RandomHorizontalFlip", "RandomVerticalFlip"):
        return f"{name}(p={step.p:g})"
    if name == "RandomRotation":
        return f"RandomRotation(±{step.degrees[1]:g}°)"
    if name == "ColorJitter":
        parts = [
            f"{key}={getattr(step, key)[1] - 1 if key != 'hue' else getattr(step, key)[1]:g}"
            for key in ("brightness", "contrast", "saturation", "hue")
            if getattr(step, key) is not None
        ]
        return f"ColorJitter({', '.join(parts)})"
    return name


def _size_text(size: Any) -> str:
    values = list(size) if isinstance(size, list | tuple) else [size]
    if len(values) == 2 and values[0] == values[1]:
        values = values[:1]
    return "x".join(str(value) for value in values)


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
