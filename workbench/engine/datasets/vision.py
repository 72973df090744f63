"""Image datasets: bundled digits; torchvision MNIST, Fashion-MNIST, CIFAR-10; image folders."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from workbench.engine.datasets.archives import check_md5, extract_folder, gunzip_limited
from workbench.engine.datasets.base import LoadedData, OptionSpec, split_indices, tensor_splits
from workbench.engine.datasets.image_transforms import Preprocessing, Transform, image_pipeline
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

Tensors = tuple[torch.Tensor, torch.Tensor]


# torchvision and scikit-learn take seconds to import: only the code that reads a dataset pays.
def _tv_datasets() -> Any:
    from torchvision import datasets

    return datasets


def _transforms() -> Any:
    from torchvision import transforms

    return transforms


def _lazy_factory(class_name: str) -> Callable[..., Any]:
    def make(*args: Any, **kwargs: Any) -> Any:
        return getattr(_tv_datasets(), class_name)(*args, **kwargs)

    make.__name__ = make.__qualname__ = class_name  # torchvision's folder name, e.g. MNIST/raw
    return make


# --------------------------------------------------------------------------- digits


def digits_splits(val_split: float, seed: int) -> LoadedData:
    """scikit-learn's bundled 8x8 digits as [1, 8, 8] images scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).div(16.0).unsqueeze(1)
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    train, val = tensor_splits(x, y, val_split, seed)
    return LoadedData(train, val, tuple(str(name) for name in digits.target_names), (1, 8, 8))


# --------------------------------------------------------------------------- torchvision sets


def _limit_options() -> tuple[OptionSpec, ...]:
    return (
        OptionSpec("normalize", bool, True, "subtract the dataset mean and divide by its std"),
        OptionSpec("train_samples", int, None, "use only the first N training images", 1),
        OptionSpec("val_samples", int, None, "use only the first N test images", 1),
    )


TORCHVISION_OPTIONS = _limit_options()


@dataclass(frozen=True)
class TorchvisionSet:
    """A torchvision dataset class and what we know about it without reading its files."""

    name: str
    factory: Callable[..., Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    train_size: int
    val_size: int
    source: str  # where a person gets the files by hand

    def normalize(self) -> Any:
        return _transforms().Normalize(self.mean, self.std)


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

MNIST = TorchvisionSet(
    "mnist",
    _lazy_factory("MNIST"),
    (0.1307,),
    (0.3081,),
    (1, 28, 28),
    tuple(str(digit) for digit in range(10)),
    60_000,
    10_000,
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
FASHION_MNIST = TorchvisionSet(
    "fashion-mnist",
    _lazy_factory("FashionMNIST"),
    (0.2860,),
    (0.3530,),
    (1, 28, 28),
    # torchvision.datasets.FashionMNIST.classes, spelled out so describing needs no torchvision
    (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    60_000,
    10_000,
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
CIFAR10 = TorchvisionSet(
    "cifar10",
    _lazy_factory("CIFAR10"),
    (0.4914, 0.4822, 0.4465),
    (0.2470, 0.2435, 0.2616),
    (3, 32, 32),
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    50_000,
    10_000,
    "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz)",
)
CIFAR10_FILES = (*(f"data_batch_{n}" for n in range(1, 6)), "test_batch", "batches.meta")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_REFETCH = (
    f"delete it and download it again from {CIFAR10.source}, or set data.download = true "
    "after deleting it"
)


def dataset_root(root: str) -> Path:
    return Path(root).expanduser()


def idx_folder(kind: TorchvisionSet, root: str) -> Path:
    """Where torchvision looks for the IDX files: <root>/MNIST/raw or <root>/FashionMNIST/raw."""
    return dataset_root(root) / kind.factory.__name__ / "raw"


def missing_idx_files(kind: TorchvisionSet, root: str) -> list[str]:
    raw = idx_folder(kind, root)
    return [name for name in MNIST_FILES if not (raw / name).is_file()]


def idx_counts(kind: TorchvisionSet, root: str) -> tuple[int, int] | None:
    """Image counts from the IDX headers (bytes 4..8), without reading the images."""
    raw = idx_folder(kind, root)
    try:
        counts = []
        for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
            with open(raw / name, "rb") as handle:
                header = handle.read(8)
            if len(header) < 8:
                return None
            counts.append(int.from_bytes(header[4:8], "big"))
    except OSError:
        return None
    return counts[0], counts[1]


IDX_SIZE_LIMIT = 64_000_000  # the largest IDX file, train-images, is 47,040,016 bytes


def _unpack_gz_files(raw: Path, missing: Sequence[str]) -> None:
    """Unpack `name.gz` next to a missing `name`, as torchvision's own download step does."""
    for name in missing:
        packed = raw / f"{name}.gz"
        if packed.is_file():
            gunzip_limited(packed, raw / name, IDX_SIZE_LIMIT)


def _ensure_idx_files(kind: TorchvisionSet, root: str, download: bool) -> None:
    raw = idx_folder(kind, root)
    _unpack_gz_files(raw, missing_idx_files(kind, root))
    if missing_idx_files(kind, root) and download:
        _download(kind, raw, partial(kind.factory, str(dataset_root(root)), download=True))
    missing = missing_idx_files(kind, root)
    if missing:
        raise DatasetError(
            f"{kind.name}: files missing in {raw}: {', '.join(missing)}. Put the four files "
            f"{', '.join(MNIST_FILES)} there (from {kind.source}; the .gz files as "
            "downloaded work too), or set data.download = true to fetch them (needs internet)"
        )


def _download(kind: TorchvisionSet, destination: Path, fetch: Callable[[], Any]) -> None:
    try:
        fetch()
    except (RuntimeError, OSError, ValueError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # torchvision's message starts "Error downloading X:" and ends with the real cause.
        reason = " ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else type(exc).__name__
        raise DatasetError(
            f"{kind.name}: could not download ({reason}); check the internet connection, "
            f"or fetch the files by hand from {kind.source} into {destination}"
        ) from None


def _image_transform(kind: TorchvisionSet, normalize: bool) -> Callable[[Any], torch.Tensor]:
    transforms = _transforms()
    steps: list[Any] = [transforms.ToTensor()]
    if normalize:
        steps.append(kind.normalize())
    return transforms.Compose(steps)  # type: ignore[no-any-return]


def _first(dataset: Dataset[Any], limit: int | None) -> Dataset[Any]:
    size = len(dataset)  # type: ignore[arg-type]
    if limit is None or limit >= size:
        return dataset
    return Subset(dataset, range(limit))


def _open_idx(kind: TorchvisionSet, root: str, train: bool, transform: Any) -> Any:
    try:
        return kind.factory(str(dataset_root(root)), train=train, transform=transform)
    except (AssertionError, RuntimeError, TypeError, ValueError, OSError) as exc:
        prefix = "train" if train else "t10k"
        raise DatasetError(
            f"{kind.name}: {idx_folder(kind, root)}/{prefix}-*-ubyte: not a valid IDX file "
            f"({type(exc).__name__}: {exc}); delete the files and download them again"
        ) from None


def idx_splits(
    kind: TorchvisionSet, root: str, download: bool, options: Mapping[str, Any], in_memory: bool
) -> LoadedData:
    """MNIST-format data through torchvision's class; in memory, transformed once as tensors."""
    _ensure_idx_files(kind, root, download)
    limits = options["train_samples"], options["val_samples"]
    if in_memory:
        parts = [
            _idx_tensors(kind, _open_idx(kind, root, train, None), limit, options["normalize"])
            for train, limit in ((True, limits[0]), (False, limits[1]))
        ]
        train_set: Dataset[Any] = TensorDataset(*parts[0])
        val_set: Dataset[Any] = TensorDataset(*parts[1])
    else:
        transform = _image_transform(kind, options["normalize"])
        train_set = _first(_open_idx(kind, root, True, transform), limits[0])
        val_set = _first(_open_idx(kind, root, False, transform), limits[1])
    return LoadedData(train_set, val_set, kind.class_names, kind.input_shape)


def _idx_tensors(kind: TorchvisionSet, dataset: Any, limit: int | None, normalize: bool) -> Tensors:
    """The same numbers ToTensor() + Normalize() give per image, computed once for all of them."""
    images: torch.Tensor = dataset.data[:limit].unsqueeze(1).to(torch.float32).div(255)
    if normalize:
        mean = torch.tensor(kind.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(kind.std, dtype=torch.float32).view(1, -1, 1, 1)
        images = images.sub(mean).div(std)
    return images, dataset.targets[:limit].to(torch.int64)


def cifar_folder(root: str) -> Path:
    return dataset_root(root) / CIFAR10_FOLDER


def missing_cifar_files(root: str) -> list[str]:
    folder = cifar_folder(root)
    return [name for name in CIFAR10_FILES if not (folder / name).is_file()]


def _ensure_cifar_files(root: str, download: bool) -> None:
    """Unpack the archive in `data.root` (downloading it first if asked), checksum first."""
    archive = dataset_root(root) / CIFAR10_ARCHIVE
    if missing_cifar_files(root) and not archive.is_file() and download:
        _download(CIFAR10, dataset_root(root), partial(_fetch_cifar_archive, dataset_root(root)))
    if missing_cifar_files(root) and archive.is_file():
        check_md5(archive, _tv_datasets().CIFAR10.tgz_md5, CIFAR10_REFETCH)
        extract_folder(archive, CIFAR10_FOLDER, CIFAR10_FILES, dataset_root(root))
    missing = missing_cifar_files(root)
    if missing:
        raise DatasetError(
            f"cifar10: files missing in {cifar_folder(root)}: {', '.join(missing)}. Unpack "
            f"{CIFAR10_ARCHIVE} from {CIFAR10.source} into {dataset_root(root)} (or just put "
            "the .tar.gz there), or set data.download = true to fetch it (needs internet)"
        )


def _fetch_cifar_archive(root: Path) -> None:
    """Only the download (torchvision checks its MD5); unpacking is ours, with its filter."""
    from torchvision.datasets.utils import download_url

    kind = _tv_datasets().CIFAR10
    download_url(kind.url, str(root), filename=CIFAR10_ARCHIVE, md5=kind.tgz_md5)


def _open_cifar(root: str, train: bool, transform: Any) -> Any:
    # torchvision unpickles the batches only after their MD5s match its table.
    try:
        return CIFAR10.factory(str(dataset_root(root)), train=train, transform=transform)
    except RuntimeError:
        raise DatasetError(
            f"cifar10: the files in {cifar_folder(root)} do not match the official checksums "
            "(corrupted or incomplete); delete the folder and download them again"
        ) from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"cifar10: cannot read the files in {cifar_folder(root)} ({exc}); "
            "delete the folder and download them again"
        ) from None


def cifar_splits(root: str, download: bool, options: Mapping[str, Any]) -> LoadedData:
    """CIFAR-10 through torchvision, transformed per image (too big to keep as float tensors)."""
    _ensure_cifar_files(root, download)
    transform = _image_transform(CIFAR10, options["normalize"])
    train = _open_cifar(root, True, transform)
    val = _open_cifar(root, False, transform)
    return LoadedData(
        _first(train, options["train_samples"]),
        _first(val, options["val_samples"]),
        tuple(str(name) for name in train.classes),
        CIFAR10.input_shape,
    )


# --------------------------------------------------------------------------- image folders

IMAGE_FOLDER_OPTIONS = (
    OptionSpec("image_size", int, 32, "every image is resized to image_size x image_size", 1, 4096),
    OptionSpec("grayscale", bool, False, "convert to one gray channel instead of RGB"),
)
SPLIT_FOLDERS = ("val", "test")
MIN_CLASS_IMAGES = 2  # one to train on, one to check with


class ImageFiles(Dataset[tuple[torch.Tensor, int]]):
    """Image files and their labels; each image is read and transformed when asked for."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Transform) -> None:
        self.samples = list(samples)
        self.targets = [target for _, target in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, target = self.samples[index]
        return self.transform(load_image(path)), target


@dataclass(frozen=True)
class _Folder:
    """One folder of class subfolders: its usable images, its classes, the files skipped."""

    path: Path
    samples: list[tuple[str, int]]
    classes: list[str]
    skipped: list[str]


def image_folder_splits(
    spec: DataSpec, options: Mapping[str, Any], seed: int, preprocessing: Preprocessing | None
) -> LoadedData:
    """Image files under `data.path`, one subfolder per class; `train/` + `val/` (or `test/`) if
    there. Files that are not readable images are skipped and named; training images get the
    augmentation, validation images only the resize (and a backbone's normalisation)."""
    folder = _existing_folder(spec.path)
    pipeline = image_pipeline(spec, options, preprocessing)
    split_folder = next((folder / n for n in SPLIT_FOLDERS if (folder / n).is_dir()), None)
    if (folder / "train").is_dir() and split_folder is not None:
        train = _read_folder(folder / "train")
        val = _read_folder(split_folder)
        if train.classes != val.classes:
            raise DatasetError(
                f"{split_folder}: its class folders ({', '.join(val.classes)}) differ from "
                f"{folder / 'train'} ({', '.join(train.classes)}); use the same class folders"
            )
        _check_class_sizes(train)
        train_samples, val_samples = train.samples, val.samples
        skipped = train.skipped + val.skipped
    else:
        train = _read_folder(folder)
        _check_class_sizes(train)
        train_idx, val_idx = split_indices(len(train.samples), spec.val_split, seed)
        train_samples = [train.samples[index] for index in train_idx]
        val_samples = [train.samples[index] for index in val_idx]
        skipped = train.skipped
    return LoadedData(
        ImageFiles(train_samples, pipeline.train_transform()),
        ImageFiles(val_samples, pipeline.eval_transform()),
        tuple(train.classes),
        pipeline.shape,
        skipped=tuple(skipped),
        preprocessing=pipeline.describe(),
        augmentation=pipeline.describe_augment(),
    )


def _read_folder(folder: Path) -> _Folder:
    try:
        found = _tv_datasets().ImageFolder(str(folder), loader=load_image)
    except FileNotFoundError:
        raise DatasetError(_no_images_message(folder)) from None
    problems = unreadable_images([path for path, _ in found.samples])
    samples = [(path, label) for path, label in found.samples if path not in problems]
    return _Folder(folder, samples, list(found.classes), list(problems.values()))


def _no_images_message(folder: Path) -> str:
    subfolders = [entry for entry in folder.iterdir() if entry.is_dir()]
    if not subfolders:
        return (
            f"{folder}: no class subfolders; put the images in one subfolder per class "
            f"({folder}/cat/1.png, {folder}/dog/2.png, ...)"
        )
    extensions = _tv_datasets().folder.IMG_EXTENSIONS
    empty = sorted(entry.name for entry in subfolders if not _has_images(entry, extensions))
    return (
        f"{folder}: no images in the class folder(s) {', '.join(empty)}; supported "
        f"extensions: {', '.join(extensions)} (remove empty class folders)"
    )


def _check_class_sizes(folder: _Folder) -> None:
    """A class needs MIN_CLASS_IMAGES usable images: one alone can be trained on or checked with,
    never both."""
    counts = [0] * len(folder.classes)
    for _, label in folder.samples:
        counts[label] += 1
    for name, count in zip(folder.classes, counts, strict=True):
        if count >= MIN_CLASS_IMAGES:
            continue
        skipped = sum(1 for line in folder.skipped if line.startswith(f"{folder.path / name}/"))
        why = f" ({skipped} skipped as unreadable)" if skipped else ""
        have = "no usable image" if count == 0 else "only 1 image"
        raise DatasetError(
            f"{folder.path / name}: the class '{name}' has {have}{why}; each class needs at "
            f"least {MIN_CLASS_IMAGES} (one to train on, one to check with); add images or "
            "remove the folder"
        )


def _existing_folder(path: str | None) -> Path:
    if not path:
        raise DatasetError(
            'data.path: the image-folder dataset needs a folder; set data.path = "images" '
            "with one subfolder per class (images/cat/*.png, images/dog/*.png, ...)"
        )
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DatasetError(f"data.path: {folder}: folder not found; check the path")
    if not folder.is_dir():
        raise DatasetError(
            f"data.path: {folder}: is a file; image-folder needs a folder with one subfolder "
            "per class"
        )
    return folder


MAX_IMAGE_PIXELS = 50_000_000  # e.g. 8000 x 6000; every image is resized to image_size anyway


def load_image(path: str) -> Any:
    """One image as RGB, decoded only when it is readable and within MAX_IMAGE_PIXELS."""
    with _named_image_errors(path, "; remove or replace the file"):
        from PIL import Image

        with Image.open(path) as image:
            _refuse_huge(image.size)
            return image.convert("RGB")


class _TooLarge(Exception):
    """An image over MAX_IMAGE_PIXELS (PIL's own bomb check stops only larger ones)."""


def _refuse_huge(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _TooLarge(f"{size[0]}x{size[1]} pixels")


@contextlib.contextmanager
def _named_image_errors(path: str, advice: str) -> Iterator[None]:
    """Whatever PIL raises for a broken or huge file becomes a DatasetError naming the file."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (_TooLarge, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found[1]):,} pixels" if found else str(exc)
        raise DatasetError(
            f"{path}: {size} is over the {MAX_IMAGE_PIXELS // 1_000_000}-megapixel limit for one "
            f"image{advice}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for a broken file
        raise DatasetError(
            f"{path}: not a readable image ({type(exc).__name__}: {exc}){advice}"
        ) from None


def unreadable_images(paths: Sequence[str]) -> dict[str, str]:
    """Each path whose header cannot be read, or that is over MAX_IMAGE_PIXELS, with the reason
    (`path: not a readable image (...)`); cheap: no pixels are decoded."""
    from PIL import Image

    problems: dict[str, str] = {}
    for path in paths:
        try:
            with _named_image_errors(path, ""), Image.open(path) as image:
                _refuse_huge(image.size)
        except DatasetError as exc:
            problems[path] = str(exc)
    return problems


def _has_images(folder: Path, extensions: tuple[str, ...]) -> bool:
    return any(
        file.is_file() and file.name.lower().endswith(extensions) for file in folder.rglob("*")
    )
