"""Datasets and batches for training: the catalogue behind `data.name` and its two loader paths."""

from workbench.engine.datasets.base import DatasetInfo, OptionSpec, Splits
from workbench.engine.datasets.catalogue import (
    CATALOGUE,
    DatasetEntry,
    availability,
    dataset_entry,
    dataset_names,
    dataset_options,
    describe_dataset,
    load_splits,
)
from workbench.engine.datasets.loaders import (
    BatchSource,
    EpochBatchSampler,
    LoaderBatchSource,
    Loaders,
    TensorBatchSource,
    make_loaders,
)

__all__ = [
    "CATALOGUE",
    "BatchSource",
    "DatasetEntry",
    "DatasetInfo",
    "EpochBatchSampler",
    "LoaderBatchSource",
    "Loaders",
    "OptionSpec",
    "Splits",
    "TensorBatchSource",
    "availability",
    "dataset_entry",
    "dataset_names",
    "dataset_options",
    "describe_dataset",
    "load_splits",
    "make_loaders",
]
