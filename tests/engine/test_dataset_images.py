"""Image folders with hostile files: a decompression bomb, a corrupt and a truncated image."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from workbench.cli import main
from workbench.engine.datasets import load_splits, make_loaders
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec
from workbench.engine.run_notes import skipped_text


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, side: int = 20_000) -> None:
    """A real side x side grey PNG of zeros: a few hundred KB on disk, 400 MB once decoded."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + one byte per pixel
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def image_tree(root: Path) -> Path:
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (9, 7), (index * 60, 90, 200)).save(root / label / f"{index}.png")
    return root


def spec(root: Path, **changes: object) -> DataSpec:
    return DataSpec(name="image-folder", path=str(root), batch_size=2, **changes)  # type: ignore[arg-type]


def test_a_20000_by_20000_png_is_skipped_and_named_before_any_pixel_is_decoded(
    tmp_path: Path,
) -> None:
    root = image_tree(tmp_path / "pets")
    bomb = root / "cat" / "bomb.png"
    write_bomb_png(bomb)
    assert bomb.stat().st_size < 2_000_000
    info = load_splits(spec(root), seed=0).info
    assert info.skipped == (
        f"{bomb}: 400,000,000 pixels is over the 50-megapixel limit for one image",
    )
    assert info.train_size + info.val_size == 6


def test_corrupt_images_are_skipped_with_their_names(tmp_path: Path) -> None:
    root = image_tree(tmp_path / "pets")
    for index in range(7):
        (root / "dog" / f"broken{index}.jpg").write_bytes(b"not an image at all")
    info = load_splits(spec(root), seed=0).info
    assert len(info.skipped) == 7
    assert info.skipped[0].startswith(f"{root / 'dog' / 'broken0.jpg'}: not a readable image (")
    assert "UnidentifiedImageError" in info.skipped[0]
    assert info.train_size + info.val_size == 6
    lines = skipped_text(info.skipped).splitlines()
    assert lines[0] == "Skipped 7 unreadable image(s):"
    assert lines[1] == f"  {info.skipped[0]}"
    assert lines[-1] == "  ... and 2 more"


def test_a_class_left_empty_by_skipped_files_is_named(tmp_path: Path) -> None:
    root = image_tree(tmp_path / "pets")
    (root / "bird").mkdir()
    (root / "bird" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError) as caught:
        load_splits(spec(root), seed=0)
    assert str(caught.value) == (
        f"{root / 'bird'}: the class 'bird' has no usable image (1 skipped as unreadable); "
        "each class needs at least 2 (one to train on, one to check with); add images or "
        "remove the folder"
    )


def test_a_single_image_class_is_named(tmp_path: Path) -> None:
    root = image_tree(tmp_path / "pets")
    (root / "bird").mkdir()
    Image.new("RGB", (9, 7)).save(root / "bird" / "0.png")
    with pytest.raises(DatasetError, match=r"pets/bird: the class 'bird' has only 1 image; each"):
        load_splits(spec(root), seed=0)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_image_is_named_when_it_is_read(tmp_path: Path, workers: int) -> None:
    root = image_tree(tmp_path / "pets")
    truncated = root / "cat" / "0.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])  # the header survives, the pixels do not
    loaders = make_loaders(spec(root, val_split=0.0, num_workers=workers), seed=0)
    with pytest.raises(DatasetError) as caught:
        for _ in loaders.train:
            pass
    message = str(caught.value)
    assert message.startswith(f"{truncated}: not a readable image (")
    assert message.endswith("; remove or replace the file")
    assert "Traceback" not in message


def test_training_on_an_image_folder_with_a_broken_file_skips_it_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = image_tree(tmp_path / "pets")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    experiment = tmp_path / "pets.toml"
    experiment.write_text(
        '[model]\nlayers = [{ type = "Flatten" }, { type = "Linear", out_features = 2 }]\n'
        f'[data]\nname = "image-folder"\npath = "{root}"\noptions = {{ image_size = 8 }}\n'
    )
    assert main(["train", str(experiment)]) == 0
    out, err = capsys.readouterr()
    assert "Skipped 1 unreadable image(s):\n" in out
    assert f"  {root / 'cat' / 'broken.png'}: not a readable image" in out
    assert "Class balance (training / validation images): cat 3 / 0, dog 2 / 1" in out
    assert "Epoch: 001/001" in out and "error" not in err


def test_an_image_over_the_limit_but_under_pils_own_is_skipped_too(tmp_path: Path) -> None:
    root = image_tree(tmp_path / "pets")
    big = root / "dog" / "big.png"
    write_bomb_png(big, side=7_200)  # 51.8 megapixels: PIL alone would decode it
    (skipped,) = load_splits(spec(root), seed=0).info.skipped
    assert skipped == f"{big}: 7200x7200 pixels is over the 50-megapixel limit for one image"
