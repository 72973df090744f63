"""Augmented samples from the user's own image folder, for the window's live preview grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.engine.datasets import dataset_options, load_splits
from workbench.engine.datasets.image_transforms import Preprocessing, image_pipeline
from workbench.engine.datasets.vision import ImageFiles, load_image
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec


@dataclass(frozen=True, eq=False)
class AugmentedSamples:
    """Training images as the augmentation makes them, ready to draw."""

    images: np.ndarray[Any, np.dtype[np.uint8]]  # [n, height, width, 3 or 1]
    labels: tuple[int, ...]
    paths: tuple[str, ...]
    class_names: tuple[str, ...]
    augmentation: str  # the steps, e.g. "RandomResizedCrop(...) → RandomHorizontalFlip(p=0.5)"


def augmented_samples(
    spec: DataSpec,
    count: int = 16,
    *,
    seed: int = 0,
    preprocessing: Preprocessing | None = None,
    same_image: bool = False,
) -> AugmentedSamples:
    """`count` training images of the folder at `spec.path` through `spec.augment` (or `count`
    versions of one image with `same_image`), in [0, 255], not normalised. The same seed
    gives the same pictures; torch's global random state is left as it was."""
    if spec.name != "image-folder":
        raise DatasetError(
            'the augmentation preview shows image folders; set data.name = "image-folder"'
        )
    splits = load_splits(spec, 0, preprocessing)
    train = splits.train
    assert isinstance(train, ImageFiles)
    if not len(train):
        raise DatasetError(f"{spec.path}: no training images to preview")
    pipeline = image_pipeline(spec, dataset_options(spec), preprocessing)
    transform = pipeline.display_transform()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order = torch.randperm(len(train)).tolist()
        picks = [order[0]] * count if same_image else [order[i % len(order)] for i in range(count)]
        tensors = [transform(load_image(train.samples[index][0])) for index in picks]
    images = (torch.stack(tensors).clamp(0, 1) * 255).round().to(torch.uint8)
    return AugmentedSamples(
        images.permute(0, 2, 3, 1).numpy(),
        tuple(train.samples[index][1] for index in picks),
        tuple(train.samples[index][0] for index in picks),
        splits.info.class_names,
        pipeline.describe_augment(),
    )
