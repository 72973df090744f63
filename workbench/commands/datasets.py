"""`workbench datasets`: each dataset `data.name` accepts: shape, classes, options, offline use."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from workbench.engine.experiment import DataSpec

if TYPE_CHECKING:
    from workbench.engine.datasets.catalogue import DatasetEntry

_SHOWN_CLASSES = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "datasets", help="list the datasets, their shapes, classes and options"
    )
    parser.add_argument("name", nargs="?", help="show one dataset, with help for each option")
    parser.add_argument(
        "--root",
        default=DataSpec().root,
        help="where torchvision datasets live (data.root; default %(default)s)",
    )
    parser.add_argument(
        "--path",
        help="with image-folder: your folder (data.path); shows its classes, their balance and "
        "the files that would be skipped",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.datasets import dataset_entry, dataset_names

    names = [dataset_entry(args.name).name] if args.name else list(dataset_names())
    print(f"Datasets for data.name (data.root = {args.root}):")
    for name in names:
        print()
        print(dataset_text(name, args.root, detailed=bool(args.name)))
    if args.path:
        print()
        print(folder_text(args.name or "image-folder", args.path))
    return 0


def folder_text(name: str, path: str) -> str:
    """Your own data at `path` as a run sees it (the split of the default seed)."""
    from workbench.engine.datasets import load_splits
    from workbench.engine.errors import DatasetError
    from workbench.engine.experiment import TrainSpec
    from workbench.engine.run_notes import data_notes

    if name != "image-folder":
        raise DatasetError(f"--path: describes an image folder, not {name!r}; leave out the name")
    info = load_splits(DataSpec(name=name, path=path), TrainSpec().seed).info
    shape = ", ".join(str(size) for size in info.input_shape)
    lines = [
        f"{path}: {info.num_classes} classes, input shape [{shape}], "
        f"{info.train_size:,} train / {info.val_size:,} validation images",
        *data_notes(info),
    ]
    return "\n".join(lines)


def dataset_text(name: str, root: str, detailed: bool = False) -> str:
    from workbench.engine.datasets import availability, dataset_entry

    entry = dataset_entry(name)
    lines = [f"{entry.name} — {entry.description}"]
    lines.extend(_shape_and_classes(entry, root))
    if not entry.options:
        lines.append("    options: none")
    elif detailed:
        lines.append("    options (data.options):")
        lines.extend(f"      {option.describe():<24} {option.help}" for option in entry.options)
    else:
        lines.append(f"    options: {', '.join(option.describe() for option in entry.options)}")
    offline = availability(name, root)[1]
    lines.append(f"    offline: {offline}")
    return "\n".join(lines)


def _shape_and_classes(entry: DatasetEntry, root: str) -> list[str]:
    from workbench.engine.datasets import describe_dataset
    from workbench.engine.datasets.catalogue import YOURS

    if entry.source == YOURS:
        return [f"    kind: {entry.kind}; input shape, classes and sizes come from data.path"]
    info = describe_dataset(DataSpec(name=entry.name, root=root))
    classes = ", ".join(info.class_names[:_SHOWN_CLASSES])
    if info.num_classes > _SHOWN_CLASSES:
        classes += ", ..."
    shape = ", ".join(str(size) for size in info.input_shape)
    return [
        f"    kind: {entry.kind}, input shape [{shape}], "
        f"{info.train_size:,} train / {info.val_size:,} validation samples",
        f"    classes ({info.num_classes}): {classes}",
    ]
