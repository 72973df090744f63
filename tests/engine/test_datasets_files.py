"""Datasets read from files: CSV tables, MNIST-format IDX files, CIFAR-10 batches, image folders."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from workbench.engine.datasets import describe_dataset, load_splits, make_loaders
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

# --------------------------------------------------------------------------- csv


def _csv(tmp_path: Path, text: str, label_column: str = "label") -> DataSpec:
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    return DataSpec(name="csv", path=str(path), label_column=label_column, val_split=0.0)


def test_csv_reads_features_and_string_labels_as_sorted_classes(tmp_path: Path) -> None:
    text = "x1,species,x2\n1.5,setosa,2\n3,virginica,-4.25\n5,setosa,6e1\n"
    spec = _csv(tmp_path, text, label_column="species")
    splits = load_splits(spec, seed=0)
    assert isinstance(splits.train, TensorDataset)
    x, y = splits.train.tensors
    assert torch.equal(x, torch.tensor([[1.5, 2.0], [3.0, -4.25], [5.0, 60.0]]))
    assert torch.equal(y, torch.tensor([0, 1, 0]))
    assert splits.info.class_names == ("setosa", "virginica")
    assert splits.info.input_shape == (2,)
    assert splits.info.kind == "table"


def test_csv_numeric_labels_sort_as_numbers(tmp_path: Path) -> None:
    spec = _csv(tmp_path, "a,label\n0,10\n1,9\n2,2\n")
    splits = load_splits(spec, seed=0)
    assert splits.info.class_names == ("2", "9", "10")
    assert isinstance(splits.train, TensorDataset)
    assert splits.train.tensors[1].tolist() == [2, 1, 0]


def test_csv_label_column_delimiter_and_standardize_options(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("f;target\n1;a\n3;b\n5;a\n7;b\n", encoding="utf-8")
    spec = DataSpec(
        name="csv",
        path=str(path),
        label_column="target",
        val_split=0.0,
        options={"delimiter": ";", "standardize": True},
    )
    x = load_splits(spec, seed=0).train.tensors[0]  # type: ignore[attr-defined]
    assert torch.allclose(x.mean(), torch.tensor(0.0))
    assert torch.allclose(x.std(unbiased=False), torch.tensor(1.0))


def test_csv_split_uses_val_split_and_seed(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i % 2}\n" for i in range(20))
    spec = _csv(tmp_path, "v,label\n" + rows)
    spec = DataSpec(name="csv", path=spec.path, val_split=0.25)
    splits = load_splits(spec, seed=5)
    assert (splits.info.train_size, splits.info.val_size) == (15, 5)
    again = load_splits(spec, seed=5)
    assert torch.equal(splits.val.tensors[0], again.val.tensors[0])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,label\n1,2,x\n3,4\n", "table.csv, line 3: 2 cells, but the header has 3 columns"),
        (
            "a,label\n1,x\n\n2,y\nhello,z\n",
            "table.csv, line 5, column 'a': 'hello' is not a number",
        ),
        ("a,b,label\n1,,x\n", "table.csv, line 2, column 'b': an empty cell is not a number"),
        (
            "a,b,class\n1,2,x\n",
            "table.csv, line 1: no column 'label' in the header (columns: a, b, class)",
        ),
        ("\n\na,b\n1,x\n", "table.csv, line 3: no column 'label' in the header (columns: a, b)"),
        ("", "table.csv: the file is empty"),
        ("\n  \n", "table.csv: the file is empty"),
        ("a,label\n", "table.csv: only a header row"),
        ("a,label\n1,\n", "table.csv, line 2, column 'label': the label is empty"),
        ("a,label\nnan,x\n", "table.csv, line 2, column 'a': 'nan' is not a finite number"),
    ],
)
def test_csv_mistakes_name_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(DatasetError) as caught:
        load_splits(_csv(tmp_path, text), seed=0)
    assert expected in str(caught.value)


def test_csv_missing_file_and_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DatasetError, match=r"data\.path: .*nope\.csv: file not found"):
        describe_dataset(DataSpec(name="csv", path=str(missing)))
    with pytest.raises(DatasetError, match=r"data\.path: the csv dataset needs a file"):
        describe_dataset(DataSpec(name="csv"))


# --------------------------------------------------------------------------- MNIST format


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """IDX files as yann.lecun.com ships them: big-endian header, then uint8 data."""
    folder.mkdir(parents=True, exist_ok=True)
    count, rows, cols = images.shape
    image_bytes = (
        struct.pack(">IIII", 0x0803, count, rows, cols) + images.astype(np.uint8).tobytes()
    )
    label_bytes = struct.pack(">II", 0x0801, count) + labels.astype(np.uint8).tobytes()
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(image_bytes)
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(label_bytes)


def fake_mnist(root: Path, folder: str = "MNIST", train: int = 12, test: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    train_images = rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8)
    write_idx(raw, "train", train_images, np.arange(train) % 10)
    write_idx(raw, "t10k", rng.integers(0, 256, size=(test, 28, 28)), np.arange(test) % 10)
    return train_images


def test_mnist_loads_fake_idx_files_through_torchvision(tmp_path: Path) -> None:
    images = fake_mnist(tmp_path)
    spec = DataSpec(name="mnist", root=str(tmp_path))
    splits = load_splits(spec, seed=0)
    assert isinstance(splits.train, TensorDataset)
    x, y = splits.train.tensors
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist() == [i % 10 for i in range(12)]
    expected = (torch.from_numpy(images).float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(x[:, 0], expected)
    assert (splits.info.train_size, splits.info.val_size) == (12, 5)
    assert describe_dataset(spec) == splits.info  # sizes read from the IDX headers


def test_mnist_in_memory_tensors_equal_torchvision_per_image_transform(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    fast = load_splits(DataSpec(name="mnist", root=str(tmp_path)), seed=0)
    slow = load_splits(DataSpec(name="mnist", root=str(tmp_path), in_memory=False), seed=0)
    assert not isinstance(slow.train, TensorDataset)
    for index in range(12):
        image, label = slow.train[index]
        assert torch.equal(image, fast.train[index][0])
        assert label == int(fast.train[index][1])
    assert slow.info == fast.info


def test_mnist_sample_limits_and_no_normalization(tmp_path: Path) -> None:
    images = fake_mnist(tmp_path)
    options = {"train_samples": 4, "val_samples": 2, "normalize": False}
    for in_memory in (True, False):
        spec = DataSpec(name="mnist", root=str(tmp_path), in_memory=in_memory, options=options)
        splits = load_splits(spec, seed=0)
        assert (len(splits.train), len(splits.val)) == (4, 2)  # type: ignore[arg-type]
        assert torch.equal(splits.train[3][0][0], torch.from_numpy(images[3]).float() / 255)


def test_fashion_mnist_uses_its_own_folder_and_class_names(tmp_path: Path) -> None:
    fake_mnist(tmp_path, folder="FashionMNIST", train=6, test=3)
    splits = load_splits(DataSpec(name="fashion-mnist", root=str(tmp_path)), seed=0)
    assert splits.info.class_names[0] == "T-shirt/top" and splits.info.num_classes == 10
    assert (splits.info.train_size, splits.info.val_size) == (6, 3)
    x = splits.train.tensors[0]  # type: ignore[attr-defined]
    assert x.shape == (6, 1, 28, 28)


def test_gzipped_idx_files_are_unpacked_like_torchvision_does(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    for file in list(raw.iterdir()):
        (raw / f"{file.name}.gz").write_bytes(gzip.compress(file.read_bytes()))
        file.unlink()
    splits = load_splits(DataSpec(name="mnist", root=str(tmp_path)), seed=0)
    assert splits.info.train_size == 12
    assert (raw / "train-images-idx3-ubyte").is_file()


def test_missing_mnist_files_name_the_folder_and_files(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="mnist", root=str(tmp_path)), seed=0)
    message = str(caught.value)
    assert f"files missing in {tmp_path}/MNIST/raw: t10k-labels-idx1-ubyte." in message
    assert "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in message
    assert "data.download = true" in message


def test_missing_fashion_mnist_names_its_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"FashionMNIST/raw: train-images-idx3-ubyte, "):
        make_loaders(DataSpec(name="fashion-mnist", root=str(tmp_path)), seed=0)


def test_failed_download_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets as tv_datasets

    def offline(self: object) -> None:
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://x/, got:\n"
            "<urlopen error [Errno -2] Name or service not known>\n"
        )

    monkeypatch.setattr(tv_datasets.MNIST, "download", offline)
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="mnist", root=str(tmp_path), download=True), seed=0)
    message = str(caught.value)
    assert "mnist: could not download (Error downloading train-images-idx3-ubyte.gz:" in message
    assert "Name or service not known>)" in message
    source = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert f"fetch the files by hand from {source} into {tmp_path}/MNIST/raw" in message


def test_a_broken_idx_file_is_reported_not_raised(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x00")
    with pytest.raises(DatasetError, match=r"train-\*-ubyte: not a valid IDX file"):
        load_splits(DataSpec(name="mnist", root=str(tmp_path)), seed=0)


# --------------------------------------------------------------------------- CIFAR-10


def _fake_cifar(root: Path, per_batch: int = 2) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*(f"data_batch_{n}" for n in range(1, 6)), "test_batch"):
        batch = {
            "data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            "labels": [i % 10 for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def test_missing_cifar_files_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="cifar10", root=str(tmp_path)), seed=0)
    message = str(caught.value)
    assert f"files missing in {tmp_path}/cifar-10-batches-py: data_batch_1," in message
    assert "test_batch, batches.meta" in message
    assert "cifar-10-python.tar.gz" in message and "data.download = true" in message


def test_cifar_files_that_fail_the_checksum_are_reported(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    with pytest.raises(DatasetError, match="do not match the official checksums"):
        load_splits(DataSpec(name="cifar10", root=str(tmp_path)), seed=0)


def test_cifar_batches_load_through_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.cifar as tv_cifar

    # Our fake batches cannot match the real MD5 sums; everything after the check is real.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    _fake_cifar(tmp_path)
    loaders = make_loaders(DataSpec(name="cifar10", root=str(tmp_path), batch_size=4), seed=0)
    assert not loaders.fast_path
    assert (loaders.info.train_size, loaders.info.val_size) == (10, 2)
    assert loaders.info.input_shape == (3, 32, 32) and loaders.info.class_names[-1] == "truck"
    x, y = next(iter(loaders.train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


# --------------------------------------------------------------------------- image folders


def _image_tree(folder: Path, classes: dict[str, int], size: tuple[int, int] = (10, 7)) -> None:
    for name, count in classes.items():
        (folder / name).mkdir(parents=True)
        for index in range(count):
            color = (index * 40 % 256, 100, 200)
            Image.new("RGB", size, color).save(folder / name / f"{index}.png")


def test_image_folder_resizes_and_splits(tmp_path: Path) -> None:
    _image_tree(tmp_path / "pets", {"cat": 3, "dog": 2})
    spec = DataSpec(
        name="image-folder",
        path=str(tmp_path / "pets"),
        val_split=0.2,
        batch_size=8,
        options={"image_size": 12, "grayscale": True},
    )
    loaders = make_loaders(spec, seed=0)
    assert loaders.info.class_names == ("cat", "dog")
    assert loaders.info.input_shape == (1, 12, 12)
    assert (loaders.info.train_size, loaders.info.val_size) == (4, 1)
    x, y = next(iter(loaders.train))
    assert x.shape == (4, 1, 12, 12) and y.dtype == torch.int64
    assert describe_dataset(spec) == loaders.info


def test_image_folder_uses_train_and_val_subfolders(tmp_path: Path) -> None:
    _image_tree(tmp_path / "data" / "train", {"a": 2, "b": 2})
    _image_tree(tmp_path / "data" / "val", {"a": 1, "b": 1})
    info = describe_dataset(DataSpec(name="image-folder", path=str(tmp_path / "data")))
    assert (info.train_size, info.val_size, info.input_shape) == (4, 2, (3, 32, 32))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: None, "data.path: {root}/images: folder not found"),
        (lambda root: (root / "images").mkdir(), "{root}/images: no class subfolders"),
        (
            lambda root: (root / "images" / "cat").mkdir(parents=True),
            "{root}/images: no images in the class folder(s) cat",
        ),
        (lambda root: (root / "images").write_text("x"), "data.path: {root}/images: is a file"),
    ],
)
def test_image_folder_problems_are_explained(tmp_path: Path, make: object, expected: str) -> None:
    make(tmp_path)  # type: ignore[operator]
    with pytest.raises(DatasetError) as caught:
        describe_dataset(DataSpec(name="image-folder", path=str(tmp_path / "images")))
    assert expected.format(root=tmp_path) in str(caught.value)


def test_image_folder_without_a_path_says_what_to_set() -> None:
    with pytest.raises(DatasetError, match=r"data\.path: the image-folder dataset needs a folder"):
        describe_dataset(DataSpec(name="image-folder"))
