"""The dataset catalogue: every name `data.name` accepts, what it is, its options, how it loads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset, TensorDataset

from workbench.engine.datasets import synthetic, tabular, text, vision
from workbench.engine.datasets.base import (
    DatasetInfo,
    LoadedData,
    OptionSpec,
    Splits,
    resolve_options,
    tensor_splits,
    validation_count,
)
from workbench.engine.datasets.image_transforms import Preprocessing, check_image_settings
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

Options = Mapping[str, Any]
BUNDLED, FILES, YOURS = "bundled", "files", "yours"


@dataclass(frozen=True)
class DatasetEntry:
    """One catalogue entry: how to describe and load it, and whether it can be held in memory."""

    name: str
    kind: str
    description: str
    options: tuple[OptionSpec, ...]
    source: str  # BUNDLED (ships with the app), FILES (under data.root), YOURS (data.path)
    fast_path: bool  # small enough to keep as whole tensors: batches by indexing
    load: Callable[[DataSpec, Options, int], LoadedData]
    describe: Callable[[DataSpec, Options], DatasetInfo] | None = None  # without loading
    # images a pretrained network's preprocessing applies to (image folders)
    load_images: Callable[[DataSpec, Options, int, Preprocessing | None], LoadedData] | None = None


# --------------------------------------------------------------------------- loaders per kind


def _load_toy(spec: DataSpec, options: Options, seed: int) -> LoadedData:
    train, val = synthetic.toy_splits()
    return LoadedData(train, val, ("class 0", "class 1"), (2,))


def _points(name: str) -> Callable[[DataSpec, Options, int], LoadedData]:
    point_set = synthetic.POINT_SETS[name]

    def load(spec: DataSpec, options: Options, seed: int) -> LoadedData:
        x, y = point_set.tensors(options)
        train, val = tensor_splits(x, y, spec.val_split, seed)
        shape, kind = (point_set.features(options),), point_set.kind(options)
        return LoadedData(train, val, point_set.class_names(options), shape, kind=kind)

    return load


def _describe_points(name: str) -> Callable[[DataSpec, Options], DatasetInfo]:
    point_set = synthetic.POINT_SETS[name]

    def describe(spec: DataSpec, options: Options) -> DatasetInfo:
        total = options["n_samples"]
        n_val = validation_count(total, spec.val_split)
        entry = CATALOGUE[name]
        names = point_set.class_names(options)
        shape, kind = (point_set.features(options),), point_set.kind(options)
        return DatasetInfo(name, shape, names, total - n_val, n_val, kind, entry.description)

    return describe


def _load_digits(spec: DataSpec, options: Options, seed: int) -> LoadedData:
    return vision.digits_splits(spec.val_split, seed)


DIGITS_SAMPLES = 1797  # scikit-learn's bundled set; fixed, so describing needs no import of it


def _describe_digits(spec: DataSpec, options: Options) -> DatasetInfo:
    n_val = validation_count(DIGITS_SAMPLES, spec.val_split)
    entry = CATALOGUE["digits"]
    names = tuple(str(digit) for digit in range(10))
    return DatasetInfo(
        "digits", (1, 8, 8), names, DIGITS_SAMPLES - n_val, n_val, entry.kind, entry.description
    )


def _idx(kind: vision.TorchvisionSet) -> Callable[[DataSpec, Options, int], LoadedData]:
    def load(spec: DataSpec, options: Options, seed: int) -> LoadedData:
        return vision.idx_splits(kind, spec.root, spec.download, options, spec.in_memory)

    return load


def _describe_torchvision(
    kind: vision.TorchvisionSet,
) -> Callable[[DataSpec, Options], DatasetInfo]:
    """Shape and classes are fixed; sizes come from the IDX headers when the files are there."""

    def describe(spec: DataSpec, options: Options) -> DatasetInfo:
        counts = None if kind is vision.CIFAR10 else vision.idx_counts(kind, spec.root)
        train_size, val_size = counts or (kind.train_size, kind.val_size)
        limits = options["train_samples"], options["val_samples"]
        train_size = min(train_size, limits[0] or train_size)
        val_size = min(val_size, limits[1] or val_size)
        entry = CATALOGUE[kind.name]
        return DatasetInfo(
            kind.name,
            kind.input_shape,
            kind.class_names,
            train_size,
            val_size,
            entry.kind,
            entry.description,
        )

    return describe


def _load_cifar(spec: DataSpec, options: Options, seed: int) -> LoadedData:
    return vision.cifar_splits(spec.root, spec.download, options)


def _load_csv(spec: DataSpec, options: Options, seed: int) -> LoadedData:
    if spec.text_column is not None:
        return text.csv_text_splits(spec, options, seed)
    table = tabular.read_table(spec.path, spec.label_column, options["delimiter"])
    train, val = tensor_splits(table.features, table.labels, spec.val_split, seed)
    if options["standardize"]:
        mean, std = tabular.standardizer(train.tensors[0])
        train = TensorDataset((train.tensors[0] - mean) / std, train.tensors[1])
        val = TensorDataset((val.tensors[0] - mean) / std, val.tensors[1])
    return LoadedData(train, val, table.class_names, (len(table.feature_names),))


def _load_text(spec: DataSpec, options: Options, seed: int) -> LoadedData:
    return text.text_splits(spec, options)


def _load_image_folder(spec: DataSpec, options: Options, seed: int) -> LoadedData:
    return vision.image_folder_splits(spec, options, seed, None)


# --------------------------------------------------------------------------- the catalogue


def _point_entry(name: str, description: str) -> DatasetEntry:
    return DatasetEntry(
        name=name,
        kind="points2d",
        description=description,
        options=synthetic.POINT_SETS[name].options,
        source=BUNDLED,
        fast_path=True,
        load=_points(name),
        describe=_describe_points(name),
    )


def _torchvision_entry(
    kind: vision.TorchvisionSet,
    description: str,
    fast_path: bool,
    load: Callable[[DataSpec, Options, int], LoadedData],
) -> DatasetEntry:
    return DatasetEntry(
        name=kind.name,
        kind="image",
        description=description,
        options=vision.TORCHVISION_OPTIONS,
        source=FILES,
        fast_path=fast_path,
        load=load,
        describe=_describe_torchvision(kind),
    )


_ENTRIES = (
    DatasetEntry(
        name="toy",
        kind="points2d",
        description="the 5 training / 2 test points of the classic PyTorch intro",
        options=(),
        source=BUNDLED,
        fast_path=True,
        load=_load_toy,
    ),
    _point_entry("moons", "two interleaving half circles"),
    _point_entry("circles", "a small circle inside a large one"),
    _point_entry("xor", "four quadrants; the class is whether the signs differ"),
    _point_entry("spirals", "interleaved spiral arms, one per class"),
    _point_entry("blobs", "Gaussian blobs, one per class"),
    DatasetEntry(
        name="digits",
        kind="image",
        description="1,797 handwritten digits, 8x8 gray (scikit-learn)",
        options=(),
        source=BUNDLED,
        fast_path=True,
        load=_load_digits,
        describe=_describe_digits,
    ),
    _torchvision_entry(
        vision.MNIST,
        "handwritten digits, 28x28 gray, 60,000 train / 10,000 test",
        fast_path=True,
        load=_idx(vision.MNIST),
    ),
    _torchvision_entry(
        vision.FASHION_MNIST,
        "clothing photos, 28x28 gray, 60,000 train / 10,000 test",
        fast_path=True,
        load=_idx(vision.FASHION_MNIST),
    ),
    # 50,000 x 3 x 32 x 32 floats is 600 MB: CIFAR-10 stays uint8 and is transformed per image.
    _torchvision_entry(
        vision.CIFAR10,
        "small color photos, 32x32 RGB, 50,000 train / 10,000 test",
        fast_path=False,
        load=_load_cifar,
    ),
    DatasetEntry(
        name="csv",
        kind="table",
        description="your CSV file: a header, numeric feature columns and a label column",
        options=tabular.CSV_OPTIONS,
        source=YOURS,
        fast_path=True,
        load=_load_csv,
    ),
    DatasetEntry(
        name="image-folder",
        kind="image",
        description="your folder of images, one subfolder per class",
        options=vision.IMAGE_FOLDER_OPTIONS,
        source=YOURS,
        fast_path=False,
        load=_load_image_folder,
        load_images=vision.image_folder_splits,
    ),
    DatasetEntry(
        name="text",
        kind="text",
        description="a UTF-8 text as token ids for next-token training (default: Shakespeare's "
        "Sonnets, bundled)",
        options=text.TEXT_OPTIONS,
        source=BUNDLED,
        fast_path=True,
        load=_load_text,
    ),
)
CATALOGUE: dict[str, DatasetEntry] = {entry.name: entry for entry in _ENTRIES}


def dataset_names() -> tuple[str, ...]:
    return tuple(CATALOGUE)


def dataset_entry(name: str) -> DatasetEntry:
    if name not in CATALOGUE:
        raise DatasetError(
            f"data.name: {name!r} is not a dataset; choose one of {', '.join(CATALOGUE)}"
        )
    return CATALOGUE[name]


def dataset_options(spec: DataSpec) -> dict[str, Any]:
    """The spec's `data.options`, checked against the dataset's knobs, with defaults filled in."""
    entry = dataset_entry(spec.name)
    check_image_settings(spec)
    options = resolve_options(entry.name, spec, entry.options)
    classes = options.get("classes")
    if classes is not None and options["n_samples"] < classes:
        raise DatasetError(
            f"data.options.n_samples: {options['n_samples']} points cannot make {classes} "
            "classes; use at least one point per class"
        )
    return options


def load_splits(spec: DataSpec, seed: int, preprocessing: Preprocessing | None = None) -> Splits:
    """Load both splits (TensorDatasets where the data is held in memory) and describe them.

    `preprocessing` is a pretrained backbone's (image folders resize and normalise for it).
    """
    entry = dataset_entry(spec.name)
    options = dataset_options(spec)
    if entry.load_images is not None:
        loaded = entry.load_images(spec, options, seed, preprocessing)
    else:
        loaded = entry.load(spec, options, seed)
    info = DatasetInfo(
        entry.name,
        loaded.input_shape,
        loaded.class_names,
        len(loaded.train),  # type: ignore[arg-type]
        len(loaded.val),  # type: ignore[arg-type]
        loaded.kind or entry.kind,
        entry.description,
        loaded.input_dtype,
        loaded.vocab_size,
        loaded.baseline_loss,
        skipped=loaded.skipped,
        train_class_counts=_class_counts(loaded.train, len(loaded.class_names)),
        val_class_counts=_class_counts(loaded.val, len(loaded.class_names)),
        preprocessing=loaded.preprocessing,
        augmentation=loaded.augmentation,
    )
    return Splits(loaded.train, loaded.val, info)


def _class_counts(dataset: Dataset[Any], classes: int) -> tuple[int, ...]:
    """Samples per class where the labels are at hand without reading the samples."""
    targets = getattr(dataset, "targets", None)
    if not isinstance(targets, list):
        return ()
    counts = [0] * classes
    for target in targets:
        counts[target] += 1
    return tuple(counts)


def describe_dataset(spec: DataSpec, preprocessing: Preprocessing | None = None) -> DatasetInfo:
    """Input shape, classes and split sizes; reads only what it must (small files, headers)."""
    entry = dataset_entry(spec.name)
    options = dataset_options(spec)
    if entry.describe is not None:
        return entry.describe(spec, options)
    return load_splits(spec, seed=0, preprocessing=preprocessing).info


def holds_tensors(spec: DataSpec, splits: Splits) -> bool:
    """Whether the fast path applies: asked for, offered, and both splits are whole tensors."""
    entry = dataset_entry(spec.name)
    return (
        spec.in_memory
        and entry.fast_path
        and isinstance(splits.train, TensorDataset)
        and isinstance(splits.val, TensorDataset)
    )


def availability(name: str, root: str) -> tuple[bool, str]:
    """Whether the dataset works offline here, and why (for `workbench datasets`)."""
    entry = dataset_entry(name)
    if entry.source == BUNDLED:
        return True, "yes (bundled)"
    if entry.source == YOURS:
        return True, "yes (your own data at data.path)"
    if name == "cifar10":
        folder, missing = vision.cifar_folder(root), vision.missing_cifar_files(root)
        names = vision.CIFAR10_FILES
        archive = vision.dataset_root(root) / vision.CIFAR10_ARCHIVE
        if missing and archive.is_file():
            return True, f"yes ({archive}, unpacked on first use)"
    else:
        kind = vision.MNIST if name == "mnist" else vision.FASHION_MNIST
        folder, missing = vision.idx_folder(kind, root), vision.missing_idx_files(kind, root)
        names = vision.MNIST_FILES
        missing = [file for file in missing if not (folder / f"{file}.gz").is_file()]
    if not missing:
        return True, f"yes (files in {folder})"
    what = "no files" if len(missing) == len(names) else ", ".join(missing) + " missing"
    return False, f"no ({what} in {folder}); set data.download = true or put the files there"
