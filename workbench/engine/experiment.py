"""The experiment file: frozen specs for model, data and training, read from and written to TOML."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from workbench.engine.atomic import atomic_write_text
from workbench.engine.errors import ExperimentError
from workbench.engine.frozen import frozen_mapping as frozen_mapping
from workbench.engine.frozen import thaw as _thaw
from workbench.engine.model_graph import structure_problems
from workbench.engine.model_source import (
    check_code_spec,
    with_module_relative_to,
    with_resolved_module,
)
from workbench.engine.model_spec import BlockSpec as BlockSpec
from workbench.engine.model_spec import LayerSpec as LayerSpec
from workbench.engine.model_spec import ModelSpec as ModelSpec

DATASET_NAMES = (
    "toy",
    "moons",
    "circles",
    "xor",
    "spirals",
    "blobs",
    "digits",
    "mnist",
    "fashion-mnist",
    "cifar10",
    "csv",
    "image-folder",
    "text",
)
TOKENIZERS = ("char", "byte")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
LOSSES = ("cross_entropy", "nll", "mse", "bce_with_logits")
SCHEDULERS = ("step", "multistep", "exponential", "cosine", "onecycle", "reduce_on_plateau")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
DDP_BACKENDS = ("auto", "gloo", "nccl")
MONITORS = ("val_loss", "val_accuracy", "train_loss", "train_accuracy")
MAX_NESTING = 32  # tables and lists in tables: an experiment needs a handful of levels
# OneCycle cycles the optimizer's momentum (or Adam's beta1); these optimizers have neither.
WITHOUT_MOMENTUM = ("adadelta", "adagrad")


def _choices(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


def _range(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"min": low, "max": high}


def _pattern(regex: str, allowed: str) -> dict[str, Any]:
    return {"pattern": regex, "allowed": allowed}


@dataclass(frozen=True)
class AugmentSpec:
    """Random changes to training images (torchvision.transforms.v2); validation images never.

    `random_resized_crop` takes a random part (`scale` of the area, `ratio` of the sides) and
    resizes it to the image size; the flips are probabilities; `rotation` is at most this many
    degrees either way; the colour jitter factors are torchvision's ColorJitter arguments.
    """

    random_resized_crop: bool = False
    scale: tuple[float, ...] = field(default=(0.08, 1.0), metadata=_range(0.0, 1.0))
    ratio: tuple[float, ...] = field(default=(0.75, 4 / 3), metadata=_range(0.0))
    horizontal_flip: float = field(default=0.0, metadata=_range(0.0, 1.0))
    vertical_flip: float = field(default=0.0, metadata=_range(0.0, 1.0))
    rotation: float = field(default=0.0, metadata=_range(0.0, 180.0))
    brightness: float = field(default=0.0, metadata=_range(0.0))
    contrast: float = field(default=0.0, metadata=_range(0.0))
    saturation: float = field(default=0.0, metadata=_range(0.0))
    hue: float = field(default=0.0, metadata=_range(0.0, 0.5))

    @property
    def is_random(self) -> bool:
        """Whether any change is switched on (then every epoch sees different images)."""
        jitter = (self.brightness, self.contrast, self.saturation, self.hue)
        flips = (self.horizontal_flip, self.vertical_flip, self.rotation)
        return self.random_resized_crop or any(value > 0 for value in (*jitter, *flips))


@dataclass(frozen=True)
class DataSpec:
    name: str = field(default="digits", metadata=_choices(*DATASET_NAMES))
    root: str = "~/.cache/workbench/datasets"
    download: bool = False
    path: str | None = None
    label_column: str = "label"
    text_column: str | None = None  # csv: a text column, read as token ids (an Embedding first)
    tokenizer: str = field(default="char", metadata=_choices(*TOKENIZERS))
    block_size: int = field(default=128, metadata=_range(1, 1_000_000))
    val_split: float = field(default=0.2, metadata=_range(0.0, 0.9))
    batch_size: int = field(default=64, metadata=_range(1))
    val_batch_size: int = field(default=1000, metadata=_range(1))
    shuffle: bool = True
    num_workers: int = field(default=0, metadata=_range(0, 256))
    pin_memory: bool = False
    drop_last: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = field(default=None, metadata=_range(1))
    in_memory: bool = True
    options: Mapping[str, Any] = field(default_factory=frozen_mapping)
    image_size: int | None = field(default=None, metadata=_range(1, 4096))  # image folders
    augment: AugmentSpec | None = None  # image folders: training images only

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", frozen_mapping(self.options))


@dataclass(frozen=True)
class SchedulerSpec:
    name: str = field(default="step", metadata=_choices(*SCHEDULERS))
    step_size: int = field(default=1, metadata=_range(1))
    gamma: float = field(default=0.7, metadata=_range(0.0))
    milestones: tuple[int, ...] = ()
    t_max: int | None = field(default=None, metadata=_range(1))
    eta_min: float = field(default=0.0, metadata=_range(0.0))
    max_lr: float | None = field(default=None, metadata=_range(0.0))
    patience: int = field(default=2, metadata=_range(0))
    factor: float = field(default=0.1, metadata=_range(0.0, 1.0))


@dataclass(frozen=True)
class EarlyStoppingSpec:
    monitor: str = field(default="val_loss", metadata=_choices(*MONITORS))
    patience: int = field(default=3, metadata=_range(0))
    min_delta: float = field(default=0.0, metadata=_range(0.0))
    mode: str = field(default="auto", metadata=_choices("auto", "min", "max"))
    restore_best_weights: bool = True


@dataclass(frozen=True)
class DDPSpec:
    enabled: bool = False
    nproc_per_node: int = field(default=2, metadata=_range(1, 1024))
    backend: str = field(default="auto", metadata=_choices(*DDP_BACKENDS))
    timeout_seconds: int = field(default=60, metadata=_range(1))


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = field(default=1, metadata=_range(1, 100_000))
    optimizer: str = field(default="adam", metadata=_choices(*OPTIMIZERS))
    lr: float = field(default=1e-3, metadata=_range(0.0))
    momentum: float = field(default=0.0, metadata=_range(0.0, 1.0))
    nesterov: bool = False
    weight_decay: float = field(default=0.0, metadata=_range(0.0))
    loss: str = field(default="cross_entropy", metadata=_choices(*LOSSES))
    scheduler: SchedulerSpec | None = None
    seed: int = field(default=1, metadata=_range(0, 2**63 - 1))
    device: str = field(
        default="auto",
        metadata=_pattern("auto|cpu|mps|cuda(:[0-9]+)?", "auto, cpu, cuda, cuda:N or mps"),
    )
    precision: str = field(default="32-true", metadata=_choices(*PRECISIONS))
    accumulate_grad_batches: int = field(default=1, metadata=_range(1, 65_536))
    # auto: channels_last for models with 2-D convolutions (faster conv kernels on CPU and GPU)
    memory_format: str = field(
        default="auto", metadata=_choices("auto", "contiguous", "channels_last")
    )
    gradient_clip_val: float | None = field(default=None, metadata=_range(0.0))
    # the learning rate of a Backbone layer's trainable parameters, relative to lr
    backbone_lr_factor: float = field(default=0.1, metadata=_range(0.0))
    early_stopping: EarlyStoppingSpec | None = None
    compile: bool = False  # torch.compile the model for training (slow to start, then faster)
    ddp: DDPSpec = field(default_factory=DDPSpec)


@dataclass(frozen=True)
class Experiment:
    """Everything needed to reproduce a run; the GUI's project file is the same thing."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def to_dict(self) -> dict[str, Any]:
        return experiment_to_dict(self)


# --------------------------------------------------------------------------- reading


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file; every problem is an ExperimentError naming it.

    A model file (`[model] module`) is relative to the experiment file; the experiment holds
    it as an absolute path. Nothing is imported: building the model does that.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(f"{path}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path}: cannot read the file ({exc})") from None
    experiment = parse_experiment(text, source=str(path))
    model = with_resolved_module(experiment.model, path.parent)
    return dataclasses.replace(experiment, model=model)


def parse_experiment(text: str, source: str = "<experiment>") -> Experiment:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ExperimentError(_too_deep(source, "the file")) from None
    return experiment_from_dict(raw, source=source)


def experiment_from_dict(raw: Mapping[str, Any], source: str = "<experiment>") -> Experiment:
    check_plain_values(raw, source)
    try:
        experiment = typing.cast(Experiment, _build(Experiment, raw, path="", source=source))
    except RecursionError:
        raise ExperimentError(_too_deep(source, "a value")) from None
    check_code_spec(experiment.model, source)
    problems = structure_problems(experiment.model)
    if problems:
        raise ExperimentError(f"{source}: {problems[0].located()}")
    problem = training_problem(experiment.train)
    if problem is not None:
        raise ExperimentError(f"{source}: {problem}")
    return experiment


def _too_deep(source: str, where: str) -> str:
    return (
        f"{source}: {where} nests tables or lists too deeply for Python to read; "
        f"an experiment needs at most {MAX_NESTING} levels"
    )


def check_plain_values(raw: Mapping[str, Any], source: str) -> None:
    """Refuse NaN and infinity in any number, and nesting deeper than MAX_NESTING, by key path.

    Iterative, so that a hostile file cannot exhaust the stack while it is being checked.
    """
    pending: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ExperimentError(
                f"{source}: {path}: {value!r} is not a finite number; use an ordinary number "
                "(nan and inf are not allowed)"
            )
        if isinstance(value, Mapping):
            children = [(item, _join(path, str(key))) for key, item in value.items()]
        elif isinstance(value, list | tuple):
            children = [(item, f"{path}[{index}]") for index, item in enumerate(value)]
        else:
            continue
        if children and depth >= MAX_NESTING:
            raise ExperimentError(
                f"{source}: {path}: nested more than {MAX_NESTING} levels deep; an experiment "
                "needs only a few levels of tables and lists"
            )
        pending.extend((item, where, depth + 1) for item, where in reversed(children))


def training_problem(train: TrainSpec) -> str | None:
    """Training settings that are each valid but that torch refuses together, or None."""
    scheduler = train.scheduler
    if (
        scheduler is not None
        and scheduler.name == "onecycle"
        and train.optimizer in WITHOUT_MOMENTUM
    ):
        usable = ", ".join(name for name in OPTIMIZERS if name not in WITHOUT_MOMENTUM)
        return (
            f"train.scheduler: onecycle cycles the optimizer's momentum, which {train.optimizer} "
            f"does not have; choose another scheduler, or one of the optimizers {usable}"
        )
    return None


def _build(cls: type, raw: Any, path: str, source: str) -> Any:
    if not isinstance(raw, Mapping):
        where = path or "the top level"
        raise ExperimentError(f"{source}: {where}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(fields)}"
        raise ExperimentError(f"{source}: {_join(path, key)}: unknown key{hint}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], fields[name], value, _join(path, name), source)
    return cls(**values)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(
    hint: Any, spec_field: dataclasses.Field[Any], value: Any, path: str, source: str
) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [arg for arg in args if arg is not type(None)]
        return _convert(inner[0], spec_field, value, path, source)
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type, hint), value, path, source)
    if origin is tuple:
        return _convert_tuple(args[0], spec_field, value, path, source)
    if origin is Mapping and dataclasses.is_dataclass(args[1]):
        return _convert_tables(typing.cast(type, args[1]), value, path, source)
    if hint is Mapping[str, Any] or origin is Mapping:
        if not isinstance(value, Mapping):
            raise ExperimentError(f"{source}: {path}: expected a table, got {value!r}")
        return frozen_mapping(value)
    return _check_scalar(hint, spec_field, value, path, source)


def _convert_tuple(
    item: Any, spec_field: dataclasses.Field[Any], value: Any, path: str, source: str
) -> Any:
    if not isinstance(value, list):
        raise ExperimentError(f"{source}: {path}: expected a list, got {value!r}")
    if item is LayerSpec:
        return tuple(_layer(entry, f"{path}[{index}]", source) for index, entry in enumerate(value))
    return tuple(
        _check_scalar(item, spec_field, entry, f"{path}[{index}]", source)
        for index, entry in enumerate(value)
    )


def _convert_tables(item: type, value: Any, path: str, source: str) -> Any:
    """A table of named tables (`[model.blocks.NAME]`), each read as an `item` dataclass."""
    if not isinstance(value, Mapping):
        raise ExperimentError(f"{source}: {path}: expected a table of tables, got {value!r}")
    return frozen_mapping(
        {key: _build(item, entry, _join(path, key), source) for key, entry in value.items()}
    )


def _layer(entry: Any, path: str, source: str) -> LayerSpec:
    if not isinstance(entry, Mapping) or "type" not in entry:
        raise ExperimentError(
            f'{source}: {path}: each layer is a table with a type, like {{ type = "ReLU" }}'
        )
    if not isinstance(entry["type"], str):
        raise ExperimentError(
            f"{source}: {path}.type: expected a layer name, got {entry['type']!r}"
        )
    if "name" in entry and not isinstance(entry["name"], str):
        raise ExperimentError(
            f'{source}: {path}.name: expected a name in quotes, like "conv1", got {entry["name"]!r}'
        )
    inputs = entry.get("inputs", "")
    names = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ExperimentError(
            f"{source}: {path}.inputs: expected a layer name or a list of names, like "
            f'["bn2", "relu1"], got {inputs!r}'
        )
    return LayerSpec.from_dict(entry)


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _check_scalar(
    hint: Any, spec_field: dataclasses.Field[Any], value: Any, path: str, source: str
) -> Any:
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ExperimentError(
            f"{source}: {path}: {value!r} is not {_TYPE_NAMES.get(hint, hint.__name__)}"
        )
    meta = spec_field.metadata
    if "choices" in meta and value not in meta["choices"]:
        close = difflib.get_close_matches(str(value), meta["choices"], n=1)
        hint_text = f" (did you mean '{close[0]}'?)" if close else ""
        raise ExperimentError(
            f"{source}: {path}: {value!r} is not allowed{hint_text}; "
            f"choose one of {', '.join(meta['choices'])}"
        )
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise ExperimentError(f"{source}: {path}: {value!r} is not allowed; use {meta['allowed']}")
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ExperimentError(f"{source}: {path}: {value!r} is out of range; use a value {bounds}")
    return value


# --------------------------------------------------------------------------- writing


def experiment_to_dict(experiment: Experiment) -> dict[str, Any]:
    """Plain dict of the experiment, leaving out unset optional values (TOML has no null)."""
    return {
        "model": experiment.model.to_dict(),
        "data": _thaw(dataclasses.asdict(experiment.data)),
        "train": _thaw(dataclasses.asdict(experiment.train)),
    }


def dump_experiment(experiment: Experiment) -> str:
    return tomli_w.dumps(experiment_to_dict(experiment), multiline_strings=False)


def save_experiment(experiment: Experiment, path: str | Path) -> None:
    """Write the experiment as TOML, atomically; a model file in the experiment's folder (or
    below it) is written relative to it, as `load_experiment` reads it."""
    path = Path(path)
    model = with_module_relative_to(experiment.model, path.parent)
    atomic_write_text(path, dump_experiment(dataclasses.replace(experiment, model=model)))
