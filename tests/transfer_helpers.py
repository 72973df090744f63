"""Offline stand-ins for transfer learning tests: small image folders, torchvision networks with
random weights saved as weights files, and experiment files that use them."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from PIL import Image

RESNET18_FILE = "resnet18-f37072fd.pth"  # the name torchvision's IMAGENET1K_V1 file has
CLASSES = ("ant", "bee", "cat", "dog", "eel")


def write_image_folder(
    root: Path, per_class: int = 6, size: tuple[int, int] = (40, 30), odd_files: bool = True
) -> Path:
    """Five classes of small coloured PNGs; with `odd_files`, a grayscale and an RGBA image and
    one corrupt file among them."""
    for number, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            color = (number * 50, (index * 37) % 256, 255 - number * 40)
            Image.new("RGB", size, color).save(root / name / f"{index}.png")
    if odd_files:
        Image.new("L", size, 90).save(root / "ant" / "gray.png")
        Image.new("RGBA", size, (10, 200, 30, 128)).save(root / "bee" / "clear.png")
        (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def save_random_resnet18(path: Path, seed: int = 0) -> Path:
    """A torchvision resnet18 state_dict with random weights, saved as torchvision saves it."""
    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def experiment_text(
    folder: Path,
    weights: str,
    freeze: str = "true",
    *,
    image_size: int = 32,
    epochs: int = 1,
    batch_size: int = 5,
    extra_data: str = "",
    extra_train: str = "",
) -> str:
    """The issue's resnet18 example for five classes, on `folder`."""
    return (
        "[model]\nlayers = [\n"
        f'  {{ name = "backbone", type = "Backbone", arch = "resnet18", weights = "{weights}", '
        f"freeze = {freeze} }},\n"
        '  { name = "fc", type = "Linear", out_features = 5 },\n]\n'
        f'[data]\nname = "image-folder"\npath = "{folder}"\nimage_size = {image_size}\n'
        f"batch_size = {batch_size}\nval_split = 0.2\n{extra_data}"
        f'[train]\nepochs = {epochs}\noptimizer = "sgd"\nlr = 0.05\nbackbone_lr_factor = 0.1\n'
        f"{extra_train}"
    )
