"""What each kind of layer does to a shape: output shape, MACs and label, with helpful refusals.

A `LayerRules` sits on every catalogue entry (engine/layers.py). Each rule reads a
`PlannedLayer`: the layer's checked arguments (rules fill in the inferred ones) and the shapes
of its inputs, one sample each, without the batch dimension.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.engine.errors import ModelBuildError

if TYPE_CHECKING:
    from workbench.engine.layers import LayerType

Shape = tuple[int, ...]
UNKNOWN = "?"


# --------------------------------------------------------------------------- text


def show(value: Any) -> str:
    """A value as the user wrote it in TOML: lists in brackets, true/false, quoted strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def show_value(value: Any) -> str:
    """A parameter value as the user types it in a field: 3, 3 for a tuple, true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ", ".join(show_value(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------- the layer being planned


@dataclass
class PlannedLayer:
    """A layer being planned: who it is (for messages), its arguments and its inputs."""

    label: str  # "layer 7", "layer 5 'skip'", "layer1.0.skip"
    kind: LayerType
    args: dict[str, Any]
    inputs: tuple[Shape, ...]
    sources: tuple[str, ...] = ()  # the names of the inputs, for messages about several
    index: int | None = None  # the top-level layer the problem belongs to
    where: str | None = None  # its key path in the file
    vocab_size: int | None = None  # tokens in the data's vocabulary, when it has one
    tokens: bool = False  # the model takes token ids: [length, features] values are sequences

    @property
    def input_shape(self) -> Shape:
        return self.inputs[0]

    def error(self, message: str) -> ModelBuildError:
        return ModelBuildError(message, self.index, self.where)

    def bad_param(self, message: str) -> ModelBuildError:
        return self.error(f"{self.label} ({self.kind.name}): {message}")

    def bad_input(self, message: str, separator: str = ": ") -> ModelBuildError:
        return self.error(
            f"{self.label} ({self.kind.name}) receives {self.received()}{separator}{message}"
        )

    def received(self) -> str:
        if len(self.inputs) == 1:
            return show(self.inputs[0])
        parts = [f"{show(shape)} from '{source}'" for shape, source in self._named_inputs()]
        return ", ".join(parts[:-1]) + " and " + parts[-1]

    def _named_inputs(self) -> list[tuple[Shape, str]]:
        sources = self.sources or tuple(str(n) for n in range(len(self.inputs)))
        return list(zip(self.inputs, sources, strict=True))

    def infer(self, name: str, actual: int, noun: str, where: str = "") -> None:
        """Fill an inferred size, or refuse an explicit one the input contradicts."""
        given = self.args[name]
        if given is None:
            self.args[name] = actual
        elif given != actual:
            counted = f"{actual} {noun}{'s' * (actual != 1)}{where}"
            raise self.bad_input(
                f"{name} = {given}, but the input has {counted}; "
                f"remove {name} to infer it from the input"
            )


Describe = Callable[["LayerType", Mapping[str, Any]], str]


def _no_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    return 0


def changed_values(kind: LayerType, values: Mapping[str, Any]) -> str:
    changed = [
        f"{p.name}={show_value(values[p.name])}"
        for p in kind.params
        if values.get(p.name) is not None and values[p.name] != p.default
    ]
    return ", ".join(changed)


@dataclass(frozen=True)
class LayerRules:
    """How one kind of layer plans: its output shape (raising on what it cannot take), its
    multiply-accumulates per sample, and the short label the layer stack shows."""

    output_shape: Callable[[PlannedLayer], Shape]
    macs: Callable[[PlannedLayer, Shape], int] = _no_macs
    label: Describe = field(default=changed_values)


# --------------------------------------------------------------------------- ranks

_FORMS = {1: "[features]", 2: "[channels, length]", 3: "[channels, height, width]"}


def check_rank(layer: PlannedLayer, siblings: Mapping[str, LayerType]) -> None:
    """Refuse an input of the wrong rank, suggesting the 1d/2d sibling or a Flatten."""
    ranks, rank = layer.kind.input_ranks, len(layer.input_shape)
    if not ranks or rank in ranks:
        return
    needs = " or ".join(_FORMS[r] for r in ranks)
    advice = _rank_advice(layer.kind, rank, siblings)
    raise layer.bad_input(f", but {layer.kind.name} needs a {needs} input; {advice}", "")


def _rank_advice(kind: LayerType, rank: int, siblings: Mapping[str, LayerType]) -> str:
    if kind.name[-2:] in ("1d", "2d"):
        for dims in (1, 2):
            sibling = siblings.get(f"{kind.name[:-2]}{dims}d")
            if sibling is not None and rank in sibling.input_ranks:
                return f"use {sibling.name} instead"
    if rank > max(kind.input_ranks):
        return "add a Flatten before it"
    wanted = _FORMS[max(kind.input_ranks)]
    return f"place it before any Flatten, or give the model a {wanted} input_shape"


# --------------------------------------------------------------------------- shape rules


def expand(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,) * max(dims, 1)


def _same(layer: PlannedLayer) -> Shape:
    return layer.input_shape


def _linear(layer: PlannedLayer) -> Shape:
    shape = layer.input_shape
    per_position = layer.tokens and len(shape) == 2  # a sequence: one output per position
    if layer.args["in_features"] is None and len(shape) != 1 and not per_position:
        raise layer.bad_input(
            f"add a Flatten before it, or set in_features = {shape[-1]} "
            "to apply it to the last dimension only",
            separator="; ",
        )
    where = "" if len(shape) == 1 else " in its last dimension"
    layer.infer("in_features", shape[-1], "feature", where)
    if layer.args["out_features"] == VOCAB:
        layer.args["out_features"] = vocabulary_size(layer, "out_features")
    return (*shape[:-1], layer.args["out_features"])


VOCAB = "vocab"  # Linear.out_features: one output per token of the data's vocabulary


def vocabulary_size(layer: PlannedLayer, name: str) -> int:
    """The data's vocabulary size for a size set (or left) to follow it, or a clear refusal."""
    if layer.vocab_size is None:
        raise layer.bad_param(
            f"{name} follows the vocabulary, but the data has none; use text data "
            '(data.name = "text", or csv with data.text_column), or give a number'
        )
    return layer.vocab_size


def _conv(layer: PlannedLayer) -> Shape:
    args, dims = layer.args, layer.kind.spatial_dims
    channels, *spatial = layer.input_shape
    layer.infer("in_channels", channels, "channel")
    groups = args["groups"]
    for name in ("in_channels", "out_channels"):
        if args[name] % groups:
            raise layer.bad_param(
                f"groups = {groups} does not divide {name} = {args[name]}; "
                "use a divisor of both, e.g. groups = 1"
            )
    stride = expand(args["stride"], dims)
    if args["padding"] == "same":
        if any(step != 1 for step in stride):
            raise layer.bad_param("padding = 'same' needs stride = 1; give padding as a number")
        return (args["out_channels"], *spatial)
    padding = 0 if args["padding"] == "valid" else args["padding"]
    sizes = _windows(
        layer,
        kernel=expand(args["kernel_size"], dims),
        stride=stride,
        padding=expand(padding, dims),
        dilation=expand(args["dilation"], dims),
        ceil_mode=False,
        advice="use a smaller kernel, add padding, or use fewer pooling layers before it",
    )
    return (args["out_channels"], *sizes)


def _pool(layer: PlannedLayer) -> Shape:
    args, dims = layer.args, layer.kind.spatial_dims
    if args["stride"] is None:
        args["stride"] = args["kernel_size"]
    kernel, padding = expand(args["kernel_size"], dims), expand(args["padding"], dims)
    for size, pad in zip(kernel, padding, strict=True):
        if pad > size // 2:
            raise layer.bad_param(
                f"padding = {show(args['padding'])} is more than half of kernel_size "
                f"{show(args['kernel_size'])}; use a padding of at most {size // 2}"
            )
    sizes = _windows(
        layer,
        kernel=kernel,
        stride=expand(args["stride"], dims),
        padding=padding,
        dilation=expand(args.get("dilation", 1), dims),
        ceil_mode=args["ceil_mode"],
        advice="use a smaller kernel or fewer pooling layers",
    )
    return (layer.input_shape[0], *sizes)


def _windows(
    layer: PlannedLayer,
    *,
    kernel: Shape,
    stride: Shape,
    padding: Shape,
    dilation: Shape,
    ceil_mode: bool,
    advice: str,
) -> Shape:
    """Output sizes of a sliding window, with torch's formula (including its ceil_mode rule)."""
    spatial = layer.input_shape[1:]
    sizes = []
    for length, k, step, pad, dil in zip(spatial, kernel, stride, padding, dilation, strict=True):
        span, room = dil * (k - 1) + 1, length + 2 * pad
        if span > room:
            where = f"the {_extent(spatial)} input{_padding_text(layer.args)}"
            raise layer.bad_input(f"{_window_text(layer.args)} is larger than {where}; {advice}")
        steps = -(-(room - span) // step) if ceil_mode else (room - span) // step
        if ceil_mode and steps * step >= length + pad:  # the last window would start in padding
            steps -= 1
        sizes.append(steps + 1)
    return tuple(sizes)


def _window_text(args: Mapping[str, Any]) -> str:
    text = f"kernel_size {show(args['kernel_size'])}"
    if args.get("dilation", 1) not in (1, (1,), (1, 1)):
        text += f" with dilation {show(args['dilation'])}"
    return text


def _padding_text(args: Mapping[str, Any]) -> str:
    padding = args["padding"]
    if padding == "valid" or not any(expand(padding, 1)):
        return ""
    return f" padded by {show(padding)}"


def _extent(spatial: Shape) -> str:
    return f"length-{spatial[0]}" if len(spatial) == 1 else "x".join(map(str, spatial))


def _adaptive_pool(layer: PlannedLayer) -> Shape:
    return (layer.input_shape[0], *expand(layer.args["output_size"], layer.kind.spatial_dims))


def _batch_norm(layer: PlannedLayer) -> Shape:
    noun = "feature" if len(layer.input_shape) == 1 else "channel"
    layer.infer("num_features", layer.input_shape[0], noun)
    return layer.input_shape


def _layer_norm(layer: PlannedLayer) -> Shape:
    shape, given = layer.input_shape, layer.args["normalized_shape"]
    if given is None:
        layer.args["normalized_shape"] = shape[-1]
        return shape
    wanted = expand(given, 1)
    if len(wanted) > len(shape) or shape[-len(wanted) :] != wanted:
        raise layer.bad_input(
            f"normalized_shape = {show(given)} does not match its trailing dimensions; "
            f"remove normalized_shape to normalise over the last dimension ({shape[-1]})"
        )
    return shape


def _batched_dim(layer: PlannedLayer, name: str) -> int:
    """A dim argument as torch counts it (the batch is dim 0), checked and made non-negative."""
    value, rank = layer.args[name], len(layer.input_shape) + 1
    if not -rank <= value < rank:
        raise layer.bad_input(
            f"{name} = {value} is out of range; counting the batch as 0, use 1 to {rank - 1} "
            "or -1 for the last dimension"
        )
    if value % rank == 0:
        raise layer.bad_param(
            f"{name} = {value} is the batch dimension; use 1 (the first dimension of a sample) "
            "or -1 (the last)"
        )
    return int(value % rank)


def _flatten(layer: PlannedLayer) -> Shape:
    shape = layer.input_shape
    start, end = _batched_dim(layer, "start_dim"), _batched_dim(layer, "end_dim")
    if end < start:
        raise layer.bad_param(
            f"end_dim = {layer.args['end_dim']} comes before start_dim = "
            f"{layer.args['start_dim']}; use end_dim = -1 to flatten to the last dimension"
        )
    return (*shape[: start - 1], math.prod(shape[start - 1 : end]), *shape[end:])


def _softmax(layer: PlannedLayer) -> Shape:
    _batched_dim(layer, "dim")
    return layer.input_shape


def _elementwise(layer: PlannedLayer) -> Shape:
    """Add and Mul: equal shapes, or shapes torch broadcasts (a [C, 1, 1] gate on [C, H, W])."""
    shapes = layer.inputs
    try:
        return tuple(_broadcast(shapes))
    except ValueError:
        pass
    sizes = "channels" if all(len(s) == 3 for s in shapes) else "sizes"
    advice = (
        "make the shapes equal, e.g. give the branches the same out_channels, or put a "
        "Conv2d with kernel_size = 1 (and the same stride) on the shortcut"
        if sizes == "channels"
        else "make the shapes equal, e.g. with a Linear on the shorter branch"
    )
    raise layer.bad_input(f"the shapes must match (or broadcast); {advice}")


def _broadcast(shapes: Sequence[Shape]) -> list[int]:
    rank = max(len(shape) for shape in shapes)
    result = [1] * rank
    for shape in shapes:
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        for axis, size in enumerate(padded):
            if size != 1 and result[axis] not in (1, size):
                raise ValueError(shape)
            if size != 1:
                result[axis] = size
    return result


def _concat(layer: PlannedLayer) -> Shape:
    shapes = layer.inputs
    if len({len(shape) for shape in shapes}) != 1:
        raise layer.bad_input(
            "Concat needs inputs of the same rank; add a Flatten to the branches first"
        )
    axis = _batched_dim(layer, "dim") - 1
    others = {shape[:axis] + shape[axis + 1 :] for shape in shapes}
    if len(others) != 1:
        raise layer.bad_input(
            f"apart from dim = {layer.args['dim']}, the shapes must be equal; "
            "make them match, or concatenate along the dimension where they differ"
        )
    first = shapes[0]
    return (*first[:axis], sum(shape[axis] for shape in shapes), *first[axis + 1 :])


# --------------------------------------------------------------------------- MACs


def _linear_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    return math.prod(layer.input_shape) * int(layer.args["out_features"])


def _conv_macs(layer: PlannedLayer, output_shape: Shape) -> int:
    kernel = expand(layer.args["kernel_size"], layer.kind.spatial_dims)
    per_output = layer.args["in_channels"] // layer.args["groups"] * math.prod(kernel)
    return math.prod(output_shape) * int(per_output)


# --------------------------------------------------------------------------- labels


def _size(value: Any) -> str:
    if value is None:
        return UNKNOWN
    if isinstance(value, tuple | list):
        return "×".join(str(item) for item in value)
    return str(value)


def _flags(values: Mapping[str, Any], *pairs: tuple[str, str, Any]) -> list[str]:
    """Short `s2`, `p1` marks for the window arguments that differ from the usual value."""
    marks = []
    for name, mark, usual in pairs:
        value = values.get(name, usual)
        if value not in (usual, None) and _expand_all(value) != _expand_all(usual):
            marks.append(value if isinstance(value, str) else f"{mark}{_size(value)}")
    return marks


def _expand_all(value: Any) -> Any:
    """1 and (1, 1) mean the same window argument."""
    if isinstance(value, tuple | list) and len(set(value)) == 1:
        return value[0]
    return value


def _linear_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    text = f"{_size(values.get('in_features'))} → {_size(values.get('out_features'))}"
    return text + ("" if values.get("bias", True) else ", no bias")


def _conv_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    sizes = f"{_size(values.get('in_channels'))} → {_size(values.get('out_channels'))}"
    marks = [f"k{_size(values.get('kernel_size'))}"]
    marks += _flags(values, ("stride", "s", 1), ("padding", "p", 0), ("dilation", "d", 1))
    marks += _flags(values, ("groups", "g", 1))
    if not values.get("bias", True):
        marks.append("no bias")
    return ", ".join([sizes, *marks])


def _pool_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    kernel = values.get("kernel_size")
    marks = [f"k{_size(kernel)}"]
    marks += _flags(values, ("stride", "s", kernel), ("padding", "p", 0), ("dilation", "d", 1))
    if values.get("ceil_mode"):
        marks.append("ceil")
    return ", ".join(marks)


def _adaptive_pool_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    return f"→ {_size(values.get('output_size'))}"


def _normalisation_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    return _size(values.get(kind.params[0].name))


def _dim_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    return f"dim={values.get('dim')}"


def dropout_label(kind: LayerType, values: Mapping[str, Any]) -> str:
    return f"p={show_value(values.get('p'))}"


# --------------------------------------------------------------------------- the rule sets

SAME = LayerRules(_same)
LINEAR = LayerRules(_linear, _linear_macs, _linear_label)
CONV = LayerRules(_conv, _conv_macs, _conv_label)
POOL = LayerRules(_pool, label=_pool_label)
ADAPTIVE_POOL = LayerRules(_adaptive_pool, label=_adaptive_pool_label)
BATCH_NORM = LayerRules(_batch_norm, label=_normalisation_label)
LAYER_NORM = LayerRules(_layer_norm, label=_normalisation_label)
FLATTEN = LayerRules(_flatten)
SOFTMAX = LayerRules(_softmax, label=_dim_label)
DROPOUT = LayerRules(_same, label=dropout_label)
ELEMENTWISE = LayerRules(_elementwise)
CONCAT = LayerRules(_concat, label=_dim_label)
