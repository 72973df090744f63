"""Turns a layer stack into an nn.Sequential, inferring sizes and explaining every shape problem."""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import LayerSpec, ModelSpec, frozen_mapping
from workbench.engine.layers import CATALOGUE, LayerType, ParamSpec, layer_type

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerRow:
    """One layer as the summary table and the GUI show it; shapes are per sample (no batch)."""

    index: int
    type: str
    resolved: Mapping[str, Any]  # every constructor argument, inferred sizes included
    input_shape: Shape
    output_shape: Shape
    parameters: int
    trainable: int
    macs: int  # multiply-accumulates per sample


@dataclass(frozen=True)
class ModelPlan:
    """What a stack would build, computed without raising: the rows up to the first problem,
    then every problem found (later layers' parameter mistakes too, so the GUI can mark them)."""

    input_shape: Shape
    rows: tuple[LayerRow, ...]
    problems: tuple[ModelBuildError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem(self) -> ModelBuildError | None:
        return self.problems[0] if self.problems else None

    @property
    def output_shape(self) -> Shape | None:
        return None if self.problems else self.rows[-1].output_shape

    def problem_at(self, index: int) -> ModelBuildError | None:
        return next((p for p in self.problems if p.layer_index == index), None)


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """A freshly initialised model and the per-layer facts about it."""

    module: nn.Sequential
    rows: tuple[LayerRow, ...]
    input_shape: Shape
    output_shape: Shape
    total_parameters: int
    trainable_parameters: int
    total_macs: int

    def table(self) -> str:
        return summary_table(self.rows, self.input_shape)


def build_model(spec: ModelSpec, input_shape: Sequence[int] | None = None) -> BuiltModel:
    """Build the stack as an nn.Sequential; the first problem is raised as a ModelBuildError.

    `input_shape` (per sample) defaults to `spec.input_shape`. Weights are initialised by torch's
    own constructors in layer order, so seeding torch's global RNG first makes the build
    reproducible and identical to writing the same nn.Sequential by hand.
    """
    plan = plan_model(spec, input_shape)
    if plan.problem is not None:
        raise ModelBuildError(str(plan.problem), plan.problem.layer_index)
    module = nn.Sequential(*(CATALOGUE[row.type].module_class(**row.resolved) for row in plan.rows))
    return BuiltModel(
        module=module,
        rows=plan.rows,
        input_shape=plan.input_shape,
        output_shape=plan.rows[-1].output_shape,
        total_parameters=sum(row.parameters for row in plan.rows),
        trainable_parameters=sum(row.trainable for row in plan.rows),
        total_macs=sum(row.macs for row in plan.rows),
    )


def summary_text(built: BuiltModel) -> str:
    """What `workbench summary` prints and the Model tab shows: print(model), the table, the total."""
    return "\n".join(
        [
            str(built.module),
            "",
            built.table(),
            "",
            f"Total number of trainable model parameters: {built.trainable_parameters}",
        ]
    )


def plan_model(spec: ModelSpec, input_shape: Sequence[int] | None = None) -> ModelPlan:
    """Check the stack layer by layer, never raising: shapes, sizes, parameters and MACs.

    Modules are made on the meta device, so planning allocates no weights and leaves torch's
    RNG untouched; it is cheap enough to run on every edit in the GUI.
    """
    try:
        shape = _input_shape(spec, input_shape)
    except ModelBuildError as problem:
        return ModelPlan((), (), (problem,))
    start = shape
    rows: list[LayerRow] = []
    problems: list[ModelBuildError] = []
    if not spec.layers:
        problems.append(ModelBuildError("the model has no layers; add at least one layer"))
    for index, layer_spec in enumerate(spec.layers):
        try:
            kind, args = _check_params(index, layer_spec)
            if not problems:  # after a failure the input shape of later layers is unknown
                row = _plan_row(_Layer(index, kind, args, shape))
                rows.append(row)
                shape = row.output_shape
        except ModelBuildError as problem:
            problems.append(problem)
    return ModelPlan(start, tuple(rows), tuple(problems))


def summary_table(rows: Sequence[LayerRow], input_shape: Shape) -> str:
    """Aligned text table: #, layer, output shape, params, MACs, with an input and a total row."""
    header = ("#", "layer", "output shape", "params", "MACs")
    body = [("", "input", _show(input_shape), "", "")]
    body += [
        (str(r.index), r.type, _show(r.output_shape), f"{r.parameters:,}", f"{r.macs:,}")
        for r in rows
    ]
    total = (
        "",
        "total",
        "",
        f"{sum(r.parameters for r in rows):,}",
        f"{sum(r.macs for r in rows):,}",
    )
    widths = [max(len(line[c]) for line in (header, *body, total)) for c in range(len(header))]
    right_aligned = (True, False, False, True, True)

    def render(cells: tuple[str, ...]) -> str:
        parts = zip(cells, widths, right_aligned, strict=True)
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *map(render, body), rule, render(total)])


# --------------------------------------------------------------------------- one layer


@dataclass
class _Layer:
    """A layer being planned: its checked arguments (rules fill in inferred ones) and input."""

    index: int
    kind: LayerType
    args: dict[str, Any]
    input_shape: Shape

    def bad_param(self, message: str) -> ModelBuildError:
        return ModelBuildError(f"layer {self.index} ({self.kind.name}): {message}", self.index)

    def bad_input(self, message: str, separator: str = ": ") -> ModelBuildError:
        received = f"receives {_show(self.input_shape)}"
        return ModelBuildError(
            f"layer {self.index} ({self.kind.name}) {received}{separator}{message}", self.index
        )

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


def _plan_row(layer: _Layer) -> LayerRow:
    _check_rank(layer)
    output_shape = _RULES[layer.kind.shape_rule](layer)
    resolved = frozen_mapping(layer.args)
    module = _meta_module(layer, resolved)
    _cross_check(layer, module, output_shape)
    return LayerRow(
        index=layer.index,
        type=layer.kind.name,
        resolved=resolved,
        input_shape=layer.input_shape,
        output_shape=output_shape,
        parameters=sum(p.numel() for p in module.parameters()),
        trainable=sum(p.numel() for p in module.parameters() if p.requires_grad),
        macs=_MACS.get(layer.kind.shape_rule, _no_macs)(layer, output_shape),
    )


def _meta_module(layer: _Layer, resolved: Mapping[str, Any]) -> nn.Module:
    try:
        with torch.device("meta"):
            return layer.kind.module_class(**resolved)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise layer.bad_param(f"torch refuses these parameters: {_first_line(exc)}") from None


CPU_CHECK_ELEMENTS = 16_000_000  # larger layers are checked on the meta device instead


def _check_sample(layer: _Layer, module: nn.Module) -> torch.Tensor:
    """A batch of 2 (BatchNorm needs > 1) on the CPU when small, else on the meta device.

    The first meta-device forward imports torch's reference kernels (seconds), which would make
    every start of the window slow; `to_empty` gives real but uninitialised memory instead, so
    no weights are initialised and no random numbers are drawn.
    """
    shape = (2, *layer.input_shape)
    tensors = [*module.parameters(), *module.buffers()]
    elements = sum(t.numel() for t in tensors) + math.prod(shape)
    if elements <= CPU_CHECK_ELEMENTS:
        module.to_empty(device="cpu").eval()  # eval: Dropout would draw random numbers
        return torch.zeros(shape)
    return torch.empty(shape, device="meta")


def _cross_check(layer: _Layer, module: nn.Module, expected: Shape) -> None:
    """Run the layer on a sample batch, so the rules can never silently disagree with torch."""
    sample = _check_sample(layer, module)
    try:
        # Warnings here are about speed (e.g. 'same' padding with an even kernel), not shapes.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            actual = tuple(module(sample).shape[1:])
    except Exception as exc:  # noqa: BLE001 - torch raises many types; any refusal is the user's to fix
        raise layer.bad_input(f"torch refuses it: {_first_line(exc)}") from None
    if actual != expected:
        raise layer.bad_input(
            f"workbench computed the output {_show(expected)} but torch gives {_show(actual)}; "
            "this is a workbench bug, please report it"
        )


# --------------------------------------------------------------------------- parameters


def _input_shape(spec: ModelSpec, input_shape: Sequence[int] | None) -> Shape:
    shape = input_shape if input_shape is not None else spec.input_shape
    if shape is None:
        raise ModelBuildError(
            "the model's input shape is unknown; set model.input_shape, "
            "e.g. [1, 28, 28] for MNIST images or [2] for points in the plane"
        )
    values = tuple(shape)
    if not values or not all(_is_int(value) and value >= 1 for value in values):
        raise ModelBuildError(
            f"input shape {_show(values)} is not valid; give the positive size of each "
            "dimension of one sample, without the batch dimension, e.g. [1, 28, 28]"
        )
    return values


def _check_params(index: int, spec: LayerSpec) -> tuple[LayerType, dict[str, Any]]:
    """Look up the type and check every parameter; None counts as not set."""
    try:
        kind = layer_type(spec.type)
    except ModelBuildError as exc:
        raise ModelBuildError(f"layer {index}: {exc}", index) from None
    prefix = f"layer {index} ({kind.name})"
    for name in spec.params:
        if name not in kind.param_names:
            raise ModelBuildError(f"{prefix}: {_unknown_param(kind, name)}", index)
    args: dict[str, Any] = {}
    for param in kind.params:
        value = spec.params.get(param.name)
        if value is None and param.required:
            example = f"{param.name} = {_show(param.suggested)}"
            raise ModelBuildError(f"{prefix}: {param.name} is required; e.g. {example}", index)
        try:
            args[param.name] = param.default if value is None else _checked(param, value, kind)
        except ValueError as exc:
            raise ModelBuildError(f"{prefix}: {exc}", index) from None
    return kind, args


def _unknown_param(kind: LayerType, name: str) -> str:
    if not kind.params:
        return f"{kind.name} takes no parameters; remove {name!r}"
    close = difflib.get_close_matches(name, kind.param_names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown parameter {name!r}{hint}; {kind.name} takes: {', '.join(kind.param_names)}"


def _checked(param: ParamSpec, value: Any, kind: LayerType) -> Any:
    """The value as the constructor wants it, or ValueError with the reason and the fix."""
    shown = f"{param.name} = {_show(value)}"
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{shown} is not true or false")
        return value
    if param.kind == "choice" or (isinstance(value, str) and param.choices):
        if value not in param.choices:
            close = difflib.get_close_matches(str(value), param.choices, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(
                f"{shown} is not allowed{hint}; choose one of {', '.join(param.choices)}"
            )
        return value
    if param.kind == "float":
        if not _is_int(value) and not isinstance(value, float):
            raise ValueError(f"{shown} is not a number")
        value = float(value)
        numbers: tuple[float, ...] = (value,)
    elif _is_int(value):
        numbers = (value,)
    elif param.kind == "int_or_tuple" and _is_int_tuple(value, kind.spatial_dims):
        value = numbers = tuple(value)
    else:
        raise ValueError(f"{shown} is not {_int_kind_text(param, kind.spatial_dims)}")
    _check_range(param, shown, numbers)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int_tuple(value: Any, length: int) -> bool:
    if not isinstance(value, tuple | list) or not value:
        return False
    return all(_is_int(item) for item in value) and length in (0, len(value))


def _int_kind_text(param: ParamSpec, length: int) -> str:
    if param.kind == "int":
        return "a whole number"
    count = "whole numbers" if length == 0 else f"{length} whole number{'s' * (length != 1)}"
    return f"a whole number or a list of {count}"


def _check_range(param: ParamSpec, shown: str, numbers: tuple[float, ...]) -> None:
    low, high = param.minimum, param.maximum
    if all((low is None or n >= low) and (high is None or n <= high) for n in numbers):
        return
    if high is None:
        bound = f"of at least {low:g}"
    elif low is None:
        bound = f"of at most {high:g}"
    else:
        bound = f"between {low:g} and {high:g}"
    raise ValueError(f"{shown} is out of range; use a value {bound}")


# --------------------------------------------------------------------------- shape rules

_FORMS = {1: "[features]", 2: "[channels, length]", 3: "[channels, height, width]"}


def _check_rank(layer: _Layer) -> None:
    ranks, rank = layer.kind.input_ranks, len(layer.input_shape)
    if not ranks or rank in ranks:
        return
    needs = " or ".join(_FORMS[r] for r in ranks)
    advice = _rank_advice(layer.kind, rank)
    raise layer.bad_input(f", but {layer.kind.name} needs a {needs} input; {advice}", "")


def _rank_advice(kind: LayerType, rank: int) -> str:
    if kind.name[-2:] in ("1d", "2d"):
        for dims in (1, 2):
            sibling = CATALOGUE.get(f"{kind.name[:-2]}{dims}d")
            if sibling is not None and rank in sibling.input_ranks:
                return f"use {sibling.name} instead"
    if rank > max(kind.input_ranks):
        return "add a Flatten before it"
    wanted = _FORMS[max(kind.input_ranks)]
    return f"place it before any Flatten, or give the model a {wanted} input_shape"


def _expand(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,) * max(dims, 1)


def _same(layer: _Layer) -> Shape:
    return layer.input_shape


def _linear(layer: _Layer) -> Shape:
    shape = layer.input_shape
    if layer.args["in_features"] is None and len(shape) != 1:
        raise layer.bad_input(
            f"add a Flatten before it, or set in_features = {shape[-1]} "
            "to apply it to the last dimension only",
            separator="; ",
        )
    where = "" if len(shape) == 1 else " in its last dimension"
    layer.infer("in_features", shape[-1], "feature", where)
    return (*shape[:-1], layer.args["out_features"])


def _conv(layer: _Layer) -> Shape:
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
    stride = _expand(args["stride"], dims)
    if args["padding"] == "same":
        if any(step != 1 for step in stride):
            raise layer.bad_param("padding = 'same' needs stride = 1; give padding as a number")
        return (args["out_channels"], *spatial)
    padding = 0 if args["padding"] == "valid" else args["padding"]
    sizes = _windows(
        layer,
        kernel=_expand(args["kernel_size"], dims),
        stride=stride,
        padding=_expand(padding, dims),
        dilation=_expand(args["dilation"], dims),
        ceil_mode=False,
        advice="use a smaller kernel, add padding, or use fewer pooling layers before it",
    )
    return (args["out_channels"], *sizes)


def _pool(layer: _Layer) -> Shape:
    args, dims = layer.args, layer.kind.spatial_dims
    if args["stride"] is None:
        args["stride"] = args["kernel_size"]
    kernel, padding = _expand(args["kernel_size"], dims), _expand(args["padding"], dims)
    for size, pad in zip(kernel, padding, strict=True):
        if pad > size // 2:
            raise layer.bad_param(
                f"padding = {_show(args['padding'])} is more than half of kernel_size "
                f"{_show(args['kernel_size'])}; use a padding of at most {size // 2}"
            )
    sizes = _windows(
        layer,
        kernel=kernel,
        stride=_expand(args["stride"], dims),
        padding=padding,
        dilation=_expand(args.get("dilation", 1), dims),
        ceil_mode=args["ceil_mode"],
        advice="use a smaller kernel or fewer pooling layers",
    )
    return (layer.input_shape[0], *sizes)


def _windows(
    layer: _Layer,
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
    text = f"kernel_size {_show(args['kernel_size'])}"
    if args.get("dilation", 1) not in (1, (1,), (1, 1)):
        text += f" with dilation {_show(args['dilation'])}"
    return text


def _padding_text(args: Mapping[str, Any]) -> str:
    padding = args["padding"]
    if padding == "valid" or not any(_expand(padding, 1)):
        return ""
    return f" padded by {_show(padding)}"


def _extent(spatial: Shape) -> str:
    return f"length-{spatial[0]}" if len(spatial) == 1 else "x".join(map(str, spatial))


def _adaptive_pool(layer: _Layer) -> Shape:
    return (layer.input_shape[0], *_expand(layer.args["output_size"], layer.kind.spatial_dims))


def _batch_norm(layer: _Layer) -> Shape:
    noun = "feature" if len(layer.input_shape) == 1 else "channel"
    layer.infer("num_features", layer.input_shape[0], noun)
    return layer.input_shape


def _layer_norm(layer: _Layer) -> Shape:
    shape, given = layer.input_shape, layer.args["normalized_shape"]
    if given is None:
        layer.args["normalized_shape"] = shape[-1]
        return shape
    wanted = _expand(given, 1)
    if len(wanted) > len(shape) or shape[-len(wanted) :] != wanted:
        raise layer.bad_input(
            f"normalized_shape = {_show(given)} does not match its trailing dimensions; "
            f"remove normalized_shape to normalise over the last dimension ({shape[-1]})"
        )
    return shape


def _batched_dim(layer: _Layer, name: str) -> int:
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


def _flatten(layer: _Layer) -> Shape:
    shape = layer.input_shape
    start, end = _batched_dim(layer, "start_dim"), _batched_dim(layer, "end_dim")
    if end < start:
        raise layer.bad_param(
            f"end_dim = {layer.args['end_dim']} comes before start_dim = "
            f"{layer.args['start_dim']}; use end_dim = -1 to flatten to the last dimension"
        )
    return (*shape[: start - 1], math.prod(shape[start - 1 : end]), *shape[end:])


def _softmax(layer: _Layer) -> Shape:
    _batched_dim(layer, "dim")
    return layer.input_shape


_RULES: dict[str, Callable[[_Layer], Shape]] = {
    "same": _same,
    "linear": _linear,
    "conv": _conv,
    "pool": _pool,
    "adaptive_pool": _adaptive_pool,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "flatten": _flatten,
    "softmax": _softmax,
}


# --------------------------------------------------------------------------- MACs


def _no_macs(layer: _Layer, output_shape: Shape) -> int:
    return 0


def _linear_macs(layer: _Layer, output_shape: Shape) -> int:
    return math.prod(layer.input_shape) * int(layer.args["out_features"])


def _conv_macs(layer: _Layer, output_shape: Shape) -> int:
    kernel = _expand(layer.args["kernel_size"], layer.kind.spatial_dims)
    per_output = layer.args["in_channels"] // layer.args["groups"] * math.prod(kernel)
    return math.prod(output_shape) * int(per_output)


_MACS: dict[str, Callable[[_Layer, Shape], int]] = {"linear": _linear_macs, "conv": _conv_macs}


# --------------------------------------------------------------------------- text


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML: lists in brackets, true/false, quoted strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
