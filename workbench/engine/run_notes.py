"""What a run says about its data and its backbone before the first epoch; the summary too."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from workbench.engine.backbones import backbones_in
from workbench.engine.datasets import DatasetInfo, describe_dataset, load_splits
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_data_model, experiment_preprocessing
from workbench.engine.model_builder import build_model, summary_text

SHOWN_SKIPPED = 5
IMBALANCE_NOTED = 2.0  # the largest class this many times the smallest is worth a remark


def data_notes(info: DatasetInfo) -> list[str]:
    """Skipped files, class balance, the images' preprocessing and augmentation."""
    lines = []
    if info.skipped:
        lines.append(skipped_text(info.skipped))
    if info.train_class_counts:
        lines.append(class_balance_text(info))
    if info.preprocessing:
        lines.append(f"Images: {info.preprocessing}")
    if info.augmentation and info.augmentation != "none":
        lines.append(f"Augmentation (training images only): {info.augmentation}")
    return lines


def skipped_text(skipped: Sequence[str]) -> str:
    """`Skipped 2 unreadable image(s):` and the first few, each `path: why`."""
    shown = [f"  {line}" for line in skipped[:SHOWN_SKIPPED]]
    more = len(skipped) - SHOWN_SKIPPED
    if more > 0:
        shown.append(f"  ... and {more} more")
    return "\n".join([f"Skipped {len(skipped)} unreadable image(s):", *shown])


def class_balance_text(info: DatasetInfo) -> str:
    """`Class balance (training / validation images): cat 40 / 10, dog 12 / 3; ...`."""
    train, val = info.train_class_counts, info.val_class_counts or (0,) * info.num_classes
    pairs = ", ".join(
        f"{name} {count} / {held}"
        for name, count, held in zip(info.class_names, train, val, strict=True)
    )
    text = f"Class balance (training / validation images): {pairs}"
    smallest, largest = min(train), max(train)
    if smallest and largest >= IMBALANCE_NOTED * smallest:
        text += f"; the largest class has {largest / smallest:.1f}x the images of the smallest"
    return text


def backbone_notes(model: nn.Module, lr_factor: float | None = None) -> list[str]:
    """Per backbone: its parameters, how many train, and at which learning rate."""
    lines = []
    for name, backbone in backbones_in(model):
        total = sum(p.numel() for p in backbone.parameters())
        trainable = backbone.trainable_parameters
        if trainable == 0:
            state = "all frozen (eval mode: BatchNorm statistics stay fixed)"
        else:
            state = f"{trainable:,} trainable"
            if lr_factor is not None:
                state += f" at lr x {lr_factor:g}"
            if backbone.frozen_norms:
                state += (
                    f"; frozen BatchNorm layers stay in eval mode ({len(backbone.frozen_norms)})"
                )
        lines.append(f"Backbone '{name}': {backbone.arch}, {total:,} parameters, {state}")
    return lines


def experiment_summary(experiment: Experiment) -> str:
    """What `workbench summary` prints: the model, its table and totals, then (for image
    folders and backbones) the data's skipped files, class balance and preprocessing, and
    each backbone's frozen and trainable parameters."""
    info, data = None, experiment.data
    preprocessing = experiment_preprocessing(experiment)
    try:
        if data.name == "image-folder":  # the split the run will use, for its class balance
            info = load_splits(data, experiment.train.seed, preprocessing).info
        elif experiment.model.input_shape is None:
            info = describe_dataset(data, preprocessing)
    except DatasetError:
        if experiment.model.input_shape is None:
            raise
    if info is not None:
        built = build_data_model(experiment.model, info)
    else:
        built = build_model(experiment.model, tuple(experiment.model.input_shape or ()))
    notes = data_notes(info) if info is not None else []
    notes += backbone_notes(built.module, experiment.train.backbone_lr_factor)
    return "\n".join([summary_text(built), *notes])
