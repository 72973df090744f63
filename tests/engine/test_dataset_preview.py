"""The data panel's preview: a few samples and class counts that add up to the split sizes."""

from __future__ import annotations

from workbench.engine.dataset_preview import preview_dataset
from workbench.engine.experiment import DataSpec


def test_preview_of_points_and_images_adds_up() -> None:
    moons = preview_dataset(DataSpec(name="moons", options={"n_samples": 200}), seed=1)
    assert moons.info.kind == "points2d" and moons.samples.shape[1] == 2
    assert moons.class_counts.sum() == moons.info.train_size
    assert moons.val_class_counts.sum() == moons.info.val_size
    digits = preview_dataset(DataSpec(name="digits"), seed=1)
    assert digits.samples.shape[1:] == (1, 8, 8) and len(digits.samples) == 48
    assert digits.class_counts.sum() + digits.val_class_counts.sum() == 1797


def test_describing_digits_without_loading_matches_loading() -> None:
    from workbench.engine.datasets import describe_dataset, load_splits

    for split in (0.2, 0.35):
        spec = DataSpec(name="digits", val_split=split)
        assert describe_dataset(spec) == load_splits(spec, seed=3).info
