"""Image folders for transfer learning: image size, a backbone's preprocessing, augmentation of
training images only, mixed modes, class balance and the augmentation preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.transfer_helpers import CLASSES, write_image_folder
from workbench.cli import main
from workbench.engine.augment_preview import augmented_samples
from workbench.engine.datasets import load_splits, make_loaders
from workbench.engine.datasets.image_transforms import Preprocessing
from workbench.engine.datasets.vision import ImageFiles
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import AugmentSpec, DataSpec
from workbench.engine.run_notes import class_balance_text

IMAGENET = Preprocessing(224, 256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear", "x")
AUGMENT = AugmentSpec(random_resized_crop=True, horizontal_flip=0.5, rotation=10, brightness=0.3)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("data") / "photos")


def folder(path: Path, **changes: object) -> DataSpec:
    return DataSpec(name="image-folder", path=str(path), **changes)  # type: ignore[arg-type]


def test_a_backbones_preprocessing_resizes_crops_and_normalises(photos: Path) -> None:
    splits = load_splits(folder(photos, image_size=48), seed=1, preprocessing=IMAGENET)
    assert splits.info.input_shape == (3, 48, 48)
    assert splits.info.preprocessing == (
        "Resize(55, bilinear) → CenterCrop(48) → Normalize(mean=[0.485, 0.456, 0.406], "
        "std=[0.229, 0.224, 0.225]) (x)"
    )
    assert isinstance(splits.val, ImageFiles)
    path, label = next((p, t) for p, t in splits.val.samples if p.endswith("/0.png"))
    image, _ = splits.val[splits.val.samples.index((path, label))]
    number = CLASSES.index(Path(path).parent.name)
    red = (number * 50 / 255 - 0.485) / 0.229  # a solid colour stays that colour, normalised
    assert image.shape == (3, 48, 48)
    assert image[0].mean().item() == pytest.approx(red, abs=1e-5)
    default = load_splits(folder(photos), seed=1, preprocessing=IMAGENET).info
    assert default.input_shape == (3, 224, 224)  # the weights' own crop without image_size


def test_gray_and_rgba_images_become_rgb(photos: Path) -> None:
    splits = load_splits(folder(photos, image_size=16), seed=1)
    for dataset in (splits.train, splits.val):
        assert isinstance(dataset, ImageFiles)
        for index, (path, _) in enumerate(dataset.samples):
            if path.endswith(("gray.png", "clear.png")):
                image, _ = dataset[index]
                assert image.shape == (3, 16, 16)
    gray = load_splits(folder(photos, options={"grayscale": True}), seed=1, preprocessing=IMAGENET)
    image, _ = gray.train[0]
    assert image.shape == (3, 224, 224)  # gray content, three channels for the network
    assert torch.allclose(image[0] * 0.229 + 0.485, image[1] * 0.224 + 0.456, atol=1e-5)


def test_augmentation_changes_training_images_only(photos: Path) -> None:
    loaders = make_loaders(folder(photos, image_size=24, augment=AUGMENT, batch_size=64), seed=1)
    assert loaders.info.augmentation == (
        "RandomResizedCrop(24, scale=[0.08, 1], ratio=[0.75, 1.33333]) → "
        "RandomHorizontalFlip(p=0.5) → RandomRotation(±10°) → ColorJitter(brightness=0.3)"
    )
    train = loaders.train.loader.dataset  # type: ignore[attr-defined]
    val = loaders.val.loader.dataset  # type: ignore[attr-defined]
    assert not torch.equal(train[0][0], train[0][0])  # random every time
    assert torch.equal(val[0][0], val[0][0])
    x, _ = next(iter(loaders.train))
    assert x.shape == (26, 3, 24, 24)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            DataSpec(name="image-folder", path="x", image_size=32, options={"image_size": 64}),
            "data.image_size = 32 and data.options.image_size = 64 disagree; set only "
            "data.image_size",
        ),
        (
            DataSpec(name="digits", augment=AugmentSpec(horizontal_flip=0.5)),
            'data.augment: applies to image folders only (data.name = "image-folder"), not to '
            "'digits'; remove it",
        ),
        (
            DataSpec(name="image-folder", path="x", augment=AugmentSpec(scale=(0.9, 0.2))),
            "data.augment.scale: [0.9, 0.2] is not a range; give [low, high] with 0 < low <= "
            "high, e.g. scale = [0.08, 1]",
        ),
    ],
)
def test_image_settings_that_cannot_work_are_named(
    spec: DataSpec, message: str, photos: Path
) -> None:
    if spec.path == "x":
        spec = DataSpec(**{**spec.__dict__, "path": str(photos)})
    with pytest.raises(DatasetError) as caught:
        load_splits(spec, seed=1)
    assert str(caught.value) == message


def test_class_balance_is_counted_and_remarked(photos: Path, tmp_path: Path) -> None:
    info = load_splits(folder(photos), seed=1).info
    assert sum(info.train_class_counts) == info.train_size == 26
    assert sum(info.val_class_counts) == info.val_size == 6
    lopsided = write_image_folder(tmp_path / "lopsided", per_class=2, odd_files=False)
    for index in range(8):
        (lopsided / "ant" / f"copy{index}.png").hardlink_to(lopsided / "ant" / "0.png")
    text = class_balance_text(load_splits(folder(lopsided, val_split=0.0), seed=1).info)
    assert text == (
        "Class balance (training / validation images): ant 10 / 0, bee 2 / 0, cat 2 / 0, "
        "dog 2 / 0, eel 2 / 0; the largest class has 5.0x the images of the smallest"
    )


def test_workbench_datasets_shows_a_folders_classes_and_skipped_files(
    photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "image-folder", "--path", str(photos)]) == 0
    out = capsys.readouterr().out
    assert f"{photos}: 5 classes, input shape [3, 32, 32], 26 train / 6 validation images" in out
    assert f"Skipped 1 unreadable image(s):\n  {photos / 'cat' / 'broken.png'}: not a" in out
    assert "Class balance (training / validation images): ant " in out
    assert "Images: Resize(32x32, bilinear)" in out


def test_augmented_samples_for_the_preview_grid(photos: Path) -> None:
    spec = folder(photos, image_size=40, augment=AUGMENT)
    state = torch.random.get_rng_state()
    samples = augmented_samples(spec, 6, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator untouched
    assert samples.images.shape == (6, 40, 40, 3) and samples.images.dtype == np.uint8
    assert len(samples.labels) == len(samples.paths) == 6
    assert samples.class_names == CLASSES
    assert samples.augmentation.startswith("RandomResizedCrop(40")
    again = augmented_samples(spec, 6, seed=3)
    assert np.array_equal(samples.images, again.images)
    one = augmented_samples(spec, 4, seed=3, same_image=True)
    assert len(set(one.paths)) == 1 and not np.array_equal(one.images[0], one.images[1])
    with pytest.raises(DatasetError, match="the augmentation preview shows image folders"):
        augmented_samples(DataSpec(name="digits"), 4)
