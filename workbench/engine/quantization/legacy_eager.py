"""The one module that uses torch's deprecated eager quantization API, with its warnings handled.

`torch.ao.quantization` (quantize_dynamic, prepare/convert, prepare_qat, QuantStub, fusion) is
deprecated in favour of torchao, yet on x86 CPUs it is what runs int8 fastest without a compiler:
its fbgemm/onednn kernels beat torchao's eager and compiled paths in our measurements (see
docs/quantization.md). Everything here is called inside `quiet()`, which silences exactly the
deprecation notices this API raises, so callers (and pytest, which turns warnings into errors)
never see them. Quantized tensors are the old API's too: their codec for saving lives here.
"""

from __future__ import annotations

import contextlib
import copy
import typing
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.engine.quantization.recipe import QuantizationError, Recipe

# What the eager API says when used: its own deprecation, that of quantized tensors, and the
# notes its observers give when asked for ranges they have not seen (we replace those ranges).
_NOTICES = (
    r"torch\.ao\.quantization is deprecated",
    r"quantized tensor creation functions",
    r"Please use quant_min and quant_max",
    r"must run observer before calling calculate_qparams",
    r"TypedStorage is deprecated",
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the eager API's deprecation notices, and only those."""
    with warnings.catch_warnings():
        for notice in _NOTICES:
            warnings.filterwarnings("ignore", message=f"(?s).*{notice}")
        yield


def _tq() -> Any:
    """The deprecated package, imported quietly (its import itself warns in some versions)."""
    with quiet():
        import torch.ao.quantization as tq

    return tq


def eager_api_available() -> bool:
    """Whether this torch still ships the eager API and a quantized CPU engine to run it."""
    try:
        tq = _tq()
    except ImportError:
        return False
    needed = ("quantize_dynamic", "prepare", "convert", "prepare_qat", "QuantStub")
    engines = [name for name in torch.backends.quantized.supported_engines if name != "none"]
    return all(hasattr(tq, name) for name in needed) and bool(engines)


def use_backend(backend: str) -> None:
    """Select the quantized engine; packed int8 weights are laid out for the engine in use."""
    torch.backends.quantized.engine = backend


# --------------------------------------------------------------------------- dynamic

DYNAMIC_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.LSTM,
    nn.GRU,
    nn.LSTMCell,
    nn.GRUCell,
    nn.RNNCell,
)


def quantize_dynamic(model: nn.Module, backend: str) -> nn.Module:
    """Linear and LSTM/GRU layers with int8 weights; activations are quantized per batch."""
    tq = _tq()
    use_backend(backend)
    # Per-channel weights keep accuracy; qnnpack's dynamic kernels want per-tensor ones.
    with quiet():
        qconfig = (
            tq.default_dynamic_qconfig if backend == "qnnpack" else tq.per_channel_dynamic_qconfig
        )
        qconfig_spec = {kind: qconfig for kind in DYNAMIC_TYPES}
        # LSTM/GRU have no per-channel dynamic kernel: they take the default qconfig.
        for kind in (nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell):
            qconfig_spec[kind] = tq.default_dynamic_qconfig
        quantized: nn.Module = tq.quantize_dynamic(
            model.eval(), qconfig_spec=qconfig_spec, dtype=torch.qint8
        )
    return quantized


# --------------------------------------------------------------------------- static and QAT plan

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}
_NO_COMPUTE = (nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@dataclass
class LayerPlan:
    """Which children fuse, which stay float and why, for a flat nn.Sequential."""

    fused: list[list[str]] = field(default_factory=list)
    float_layers: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def fusion_groups(model: nn.Sequential) -> list[list[str]]:
    """Conv+BatchNorm(+ReLU), Conv+ReLU, Linear+ReLU and BatchNorm2d/3d+ReLU runs, in order."""
    children = list(model.named_children())
    groups: list[list[str]] = []
    index = 0
    while index < len(children):
        length = _fusable_length([module for _, module in children[index : index + 3]])
        if length > 1:
            groups.append([name for name, _ in children[index : index + length]])
        index += max(length, 1)
    return groups


def _fusable_length(window: list[nn.Module]) -> int:
    """How many of the modules at the start of `window` fuse into one kernel (1: none)."""
    first = window[0]
    second = window[1] if len(window) > 1 else None
    third = window[2] if len(window) > 2 else None
    if isinstance(first, _CONVS):
        norm = _BATCH_NORMS[type(first)]
        if isinstance(second, norm) and _foldable(second):
            return 3 if isinstance(third, nn.ReLU) else 2
        return 2 if isinstance(second, nn.ReLU) else 1
    if isinstance(first, nn.Linear) and isinstance(second, nn.ReLU):
        return 2
    if isinstance(first, nn.BatchNorm2d | nn.BatchNorm3d) and isinstance(second, nn.ReLU):
        return 2 if _foldable(first) else 1
    return 1


def _foldable(norm: nn.Module) -> bool:
    """BatchNorm folds into a convolution only with running statistics to fold."""
    return getattr(norm, "running_mean", None) is not None


def plan_static(
    model: nn.Sequential, sample: torch.Tensor, backend: str, *, qat: bool = False
) -> LayerPlan:
    """Fuse what fuses; keep in float every layer with no int8 kernel, each with a note.

    Layers torch swaps for a quantized module (Linear, Conv, LayerNorm, ...) are quantized; the
    others run on int8 tensors only if their operator has a quantized kernel, which we find out
    by running each one on an int8 copy of its real input rather than trusting a list.
    """
    plan = LayerPlan(fused=fusion_groups(model))
    tq = _tq()
    with quiet():
        mapped = set(tq.get_default_static_quant_module_mappings())
        if qat:
            mapped |= set(tq.get_default_qat_module_mappings())
    fused_followers = {name for group in plan.fused for name in group[1:]}
    for index, (name, layer, layer_input) in enumerate(_layer_inputs(model, sample)):
        if name in fused_followers or type(layer) in mapped or isinstance(layer, _NO_COMPUTE):
            continue
        if not _runs_on_int8(layer, layer_input, backend):
            plan.float_layers.add(index)
            plan.notes.append(float_note(index, layer, backend))
    return plan


def float_note(index: int, layer: nn.Module, backend: str) -> str:
    return (
        f"layer {index} ({type(layer).__name__}): no int8 kernel on the {backend} backend; "
        "kept in float (its input is dequantized, its output quantized again)"
    )


def _layer_inputs(
    model: nn.Sequential, sample: torch.Tensor
) -> Iterator[tuple[str, nn.Module, torch.Tensor]]:
    x = sample
    with torch.no_grad():
        for name, layer in model.named_children():
            yield name, layer, x
            x = layer(x)


def _runs_on_int8(layer: nn.Module, layer_input: torch.Tensor, backend: str) -> bool:
    use_backend(backend)
    probe = copy.deepcopy(layer).eval()
    low, high = float(layer_input.min()), float(layer_input.max())
    scale = max(high - min(low, 0.0), 1e-6) / 255.0
    zero_point = int(min(max(round(-min(low, 0.0) / scale), 0), 255))
    try:
        with quiet(), torch.no_grad():
            quantized = torch.quantize_per_tensor(layer_input, scale, zero_point, torch.quint8)
            probe(quantized)
    except (NotImplementedError, RuntimeError):
        return False
    return True


def with_stubs(model: nn.Sequential, float_layers: Iterable[int]) -> nn.Sequential:
    """Copy of the stack with QuantStub/DeQuantStub at every float <-> int8 boundary.

    Children keep their names ("0", "1", ... or "conv1", ...), so saved keys are the model's
    own; `float_layers` are positions. The stubs are named after the layer they stand before.
    """
    tq = _tq()
    keep_float = set(float_layers)
    items: list[tuple[str, nn.Module]] = []
    quantized = False
    for position, (name, layer) in enumerate(model.named_children()):
        wants_float = position in keep_float
        if wants_float and quantized:
            items.append((f"dequant_before_{name}", tq.DeQuantStub()))
        elif not wants_float and not quantized:
            items.append((f"quant_before_{name}", tq.QuantStub()))
        quantized = not wants_float
        if wants_float:
            layer.qconfig = None  # type: ignore[assignment]
        items.append((name, layer))
    if quantized:
        items.append(("dequant_out", tq.DeQuantStub()))
    return nn.Sequential(OrderedDict(items))


def _static_qconfig(backend: str, observer: str) -> Any:
    tq = _tq()
    with quiet():
        default = tq.get_default_qconfig(backend)
        reduce_range = backend in ("x86", "fbgemm")  # avoids int16 overflow without VNNI
        activation = {
            "histogram": default.activation,
            "minmax": tq.MinMaxObserver.with_args(reduce_range=reduce_range),
            "moving_average": tq.MovingAverageMinMaxObserver.with_args(reduce_range=reduce_range),
        }[observer]
        return tq.QConfig(activation=activation, weight=default.weight)


def prepare_static(
    model: nn.Sequential, plan: LayerPlan, backend: str, observer: str
) -> nn.Sequential:
    """Fuse, add stubs and observers: the model to run calibration batches through."""
    tq = _tq()
    use_backend(backend)
    model = copy.deepcopy(model).eval()
    with quiet():
        if plan.fused:
            tq.fuse_modules(model, plan.fused, inplace=True)
        stubbed = with_stubs(model, plan.float_layers)
        stubbed.qconfig = _static_qconfig(backend, observer)  # type: ignore[assignment]
        tq.prepare(stubbed, inplace=True)
    return stubbed


def prepare_qat(model: nn.Sequential, plan: LayerPlan, backend: str) -> nn.Sequential:
    """Fuse for training, add stubs and fake quantization: the model to fine-tune."""
    tq = _tq()
    use_backend(backend)
    model = copy.deepcopy(model).train()
    with quiet():
        if plan.fused:
            tq.fuse_modules_qat(model, plan.fused, inplace=True)
        stubbed = with_stubs(model, plan.float_layers)
        stubbed.qconfig = tq.get_default_qat_qconfig(backend)  # type: ignore[assignment]
        tq.prepare_qat(stubbed, inplace=True)
    return stubbed


def observe(prepared: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Run calibration batches through the observers (no_grad: observers update buffers)."""
    prepared.eval()
    with quiet(), torch.no_grad():
        for x in batches:
            prepared(x)


def freeze_qat(model: nn.Module) -> None:
    """Stop updating ranges and BatchNorm statistics: the usual last stretch of QAT."""
    tq = _tq()
    with quiet():
        import torch.ao.nn.intrinsic.qat as nniqat

        model.apply(tq.disable_observer)
        model.apply(nniqat.freeze_bn_stats)


def convert(prepared: nn.Module, backend: str) -> nn.Module:
    """Swap observed modules for int8 ones."""
    tq = _tq()
    use_backend(backend)
    prepared.eval()
    with quiet():
        converted: nn.Module = tq.convert(prepared, inplace=False)
    return converted


_STUBS = ("quant_before_", "dequant_before_", "dequant_out")


def failing_layer(converted: nn.Module, sample: torch.Tensor) -> int | None:
    """The position (in the user's stack) of the first layer that cannot run, or None.

    A last check after conversion: a kernel may exist for the operator but not for this
    configuration, which only shows when the int8 model actually runs.
    """
    x = sample
    position = -1
    with quiet(), torch.no_grad():
        for name, child in converted.named_children():
            stub = name.startswith(_STUBS)
            position += not stub
            try:
                x = child(x)
            except (NotImplementedError, RuntimeError):
                if not stub:
                    return position
                raise
    return None


def is_layer_stack(model: nn.Module) -> bool:
    """A plain nn.Sequential of layers, which is what the eager API can fuse and stub."""
    return isinstance(model, nn.Sequential) and not any(
        len(list(child.children())) for child in model.children()
    )


# --------------------------------------------------------------------------- reloading


def rebuild(model: nn.Module, recipe: Recipe, sample: torch.Tensor) -> nn.Module:
    """The quantized structure for `recipe` around a float model, ready for load_state_dict.

    Static and QAT models rebuild the same way: both convert to the same int8 modules (QAT's
    fused Conv+BN+ReLU folds to the ConvReLU2d that eval-mode fusion gives), and calibration
    ranges and weights both come from the saved state_dict.
    """
    if recipe.method == "dynamic":
        return quantize_dynamic(model, recipe.backend)
    if not isinstance(model, nn.Sequential):
        raise QuantizationError("static and qat models must be a layer stack (nn.Sequential)")
    plan = LayerPlan(
        fused=[list(group) for group in recipe.fused], float_layers=set(recipe.float_layers)
    )
    prepared = prepare_static(model, plan, recipe.backend, "minmax")
    observe(prepared, [torch.zeros_like(sample)])  # any range: the saved one replaces it
    return convert(prepared, recipe.backend)


RNN_WEIGHTS = "int8_weights."  # a dynamic LSTM/GRU's weights, in place of its packed params


def _dynamic_recurrent(model: nn.Module) -> list[tuple[str, Any]]:
    with quiet():
        from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase

    return [(name, module) for name, module in model.named_modules() if isinstance(module, RNNBase)]


def model_state(model: nn.Module) -> dict[str, Any]:
    """The int8 model's state_dict with plain entries only: a dynamic LSTM/GRU keeps its
    weights in packed cell params (a TorchScript object no file format takes), so they are
    written as its int8 weights and float biases (`lstm.int8_weights.weight_ih_l0`)."""
    with quiet():
        state = model.state_dict()
        for name, module in _dynamic_recurrent(model):
            packed = f"{name}._all_weight_values."
            for key in [key for key in state if key.startswith(packed)]:
                del state[key]
            weight_bias = module._weight_bias()
            for values in (weight_bias["weight"], weight_bias["bias"]):
                for key, value in values.items():
                    state[f"{name}.{RNN_WEIGHTS}{key}"] = value
    return state


def load_quantized_state(model: nn.Module, state: dict[str, Any]) -> None:
    """Load what `model_state` wrote: recurrent weights are packed again, then all is loaded."""
    with quiet():
        for name, module in _dynamic_recurrent(model):
            prefix = f"{name}.{RNN_WEIGHTS}"
            weights = {
                key[len(prefix) :]: state.pop(key) for key in list(state) if key.startswith(prefix)
            }
            if weights:
                module.set_weight_bias(weights)
            for key, value in module.state_dict(prefix=f"{name}.").items():
                if key.startswith(f"{name}._all_weight_values."):
                    state[key] = value
        model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- quantized tensors codec

_QDTYPES = {"qint8": torch.qint8, "quint8": torch.quint8, "qint32": torch.qint32}
_PER_TENSOR = (torch.per_tensor_affine, torch.per_tensor_symmetric)


def encode_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A state_dict as plain tensors plus a JSON-able layout; no quantized tensors remain.

    Quantized tensors, packed-parameter tuples and dtypes become int8 data, scales and zero
    points, so the file loads with `torch.load(weights_only=True)` and no deprecated types.
    """
    tensors: dict[str, torch.Tensor] = {}
    entries = {key: _encode(key, value, tensors) for key, value in state.items()}
    # Quantized modules read their format version from here (e.g. where Linear's weight lives).
    metadata = {prefix: dict(values) for prefix, values in getattr(state, "_metadata", {}).items()}
    return tensors, {"entries": entries, "metadata": metadata}


def _encode(key: str, value: Any, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    if isinstance(value, torch.Tensor) and value.is_quantized:
        return _encode_quantized(key, value, tensors)
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"kind": "tensor"}
    if isinstance(value, tuple | list):
        items = [_encode(f"{key}::{i}", item, tensors) for i, item in enumerate(value)]
        return {"kind": "tuple", "items": items}
    if isinstance(value, torch.dtype):
        return {"kind": "dtype", "value": str(value).removeprefix("torch.")}
    if value is None or isinstance(value, bool | int | float | str):
        return {"kind": "value", "value": value}
    raise QuantizationError(f"cannot save {key!r}: a {type(value).__name__} in the state_dict")


def _encode_quantized(
    key: str, value: torch.Tensor, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    dtype = str(value.dtype).removeprefix("torch.")
    with quiet():
        tensors[f"{key}::int_repr"] = value.int_repr().contiguous()
        if value.qscheme() in _PER_TENSOR:
            return {
                "kind": "qtensor",
                "dtype": dtype,
                "scale": float(value.q_scale()),
                "zero_point": int(value.q_zero_point()),
            }
        tensors[f"{key}::scales"] = value.q_per_channel_scales().contiguous()
        tensors[f"{key}::zero_points"] = value.q_per_channel_zero_points().contiguous()
        return {"kind": "qtensor", "dtype": dtype, "axis": int(value.q_per_channel_axis())}


def decode_state(tensors: dict[str, torch.Tensor], layout: dict[str, Any]) -> dict[str, Any]:
    state: Any = OrderedDict(
        (key, _decode(key, spec, tensors)) for key, spec in layout["entries"].items()
    )
    # load_state_dict reads each module's format version from `_metadata`.
    state._metadata = OrderedDict(layout.get("metadata", {}).items())
    return typing.cast(dict[str, Any], state)


def _decode(key: str, spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    kind = spec["kind"]
    if kind == "tensor":
        return tensors[key]
    if kind == "tuple":
        return tuple(_decode(f"{key}::{i}", item, tensors) for i, item in enumerate(spec["items"]))
    if kind == "dtype":
        return getattr(torch, spec["value"])
    if kind == "value":
        return spec["value"]
    if kind != "qtensor" or spec["dtype"] not in _QDTYPES:
        raise QuantizationError(f"unknown entry {key!r} ({kind}) in the quantized file")
    data = tensors[f"{key}::int_repr"]
    with quiet():
        if "axis" in spec:
            return torch._make_per_channel_quantized_tensor(
                data, tensors[f"{key}::scales"], tensors[f"{key}::zero_points"], spec["axis"]
            )
        return torch._make_per_tensor_quantized_tensor(data, spec["scale"], spec["zero_point"])
