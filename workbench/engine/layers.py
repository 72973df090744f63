"""The layer catalogue: every layer type the builder knows, as data the GUI draws editors from."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from workbench.engine import layer_rules
from workbench.engine.backbone_code import backbone_code
from workbench.engine.backbones import BACKBONE_RULES, Backbone
from workbench.engine.errors import ModelBuildError
from workbench.engine.layer_export import LayerCode
from workbench.engine.layer_rules import LayerRules
from workbench.engine.merge_layers import Add, Concat, Mul
from workbench.engine.model_spec import LayerSpec

CATEGORIES = (
    "Linear",
    "Convolution",
    "Pooling",
    "Normalization",
    "Dropout",
    "Activation",
    "Shape",
    "Merge",
    "Pretrained",
)
PARAM_KINDS = ("int", "float", "bool", "choice", "int_or_tuple", "text", "bool_or_text")


@dataclass(frozen=True)
class ParamSpec:
    """One constructor argument, named exactly as torch.nn names it.

    `inferred` sizes follow from the previous layer: leave them out and the builder fills them in.
    For "int_or_tuple", `choices` lists the strings also accepted (Conv padding "same"/"valid").
    A `required` argument has no default; `suggested` is what a new layer's editor starts with.
    """

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    inferred: bool = False
    help: str = ""
    required: bool = False
    suggested: Any = None

    @property
    def initial(self) -> Any:
        """The value an editor shows for a new layer (None for inferred sizes)."""
        return self.suggested if self.required else self.default


@dataclass(frozen=True)
class LayerType:
    """A layer the user can add: its torch.nn class has the same name (merges have our own).

    `input_ranks` lists the per-sample input ranks the layer accepts (empty: any);
    `spatial_dims` is how many values a tuple-valued size takes (0: any number);
    `rules` computes the output shape, MACs and label; `shape_rule` names that rule set;
    `inputs` is how many inputs it takes, `(2, None)` for two or more;
    `input_dtypes` the input dtypes it accepts (the output keeps the input's dtype).
    """

    name: str
    category: str
    params: tuple[ParamSpec, ...]
    help: str
    input_ranks: tuple[int, ...] = ()
    spatial_dims: int = 0
    shape_rule: str = "same"
    rules: LayerRules = layer_rules.SAME
    module: type[nn.Module] | None = None  # None: torch.nn's class of the same name
    inputs: tuple[int, int | None] = (1, 1)
    input_dtypes: tuple[str, ...] = ("float32",)
    positional: tuple[str, ...] = ()  # arguments hand-written code passes by position
    # checked on the meta device whatever its size: a sample forward is too slow for every edit
    check_on_meta: bool = False
    # its source in an exported script, from its resolved arguments (None: `nn.<name>(...)`)
    export: Callable[[Mapping[str, Any]], LayerCode] | None = None

    @property
    def module_class(self) -> type[nn.Module]:
        if self.module is not None:
            return self.module
        cls: type[nn.Module] = getattr(nn, self.name)
        return cls

    @property
    def is_merge(self) -> bool:
        return self.inputs[0] > 1

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)

    def param(self, name: str) -> ParamSpec:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def label(self, values: Mapping[str, Any]) -> str:
        """`Linear(9216 → 64)`: the type with the sizes that matter (values: every argument)."""
        inside = self.rules.label(self, values)
        return f"{self.name}({inside})" if inside else self.name


# --------------------------------------------------------------------------- parameter shorthands


def _inferred(name: str, help: str) -> ParamSpec:
    return ParamSpec(name, "int", None, minimum=1, inferred=True, help=help)


def _required(name: str, suggested: int, help: str) -> ParamSpec:
    return ParamSpec(name, "int", None, minimum=1, help=help, required=True, suggested=suggested)


def _window(name: str, default: Any, minimum: int, help: str) -> ParamSpec:
    return ParamSpec(name, "int_or_tuple", default, minimum=minimum, help=help)


def _float(
    name: str, default: float, help: str, low: float | None = None, high: float | None = None
) -> ParamSpec:
    return ParamSpec(name, "float", default, minimum=low, maximum=high, help=help)


def _bool(name: str, default: bool, help: str) -> ParamSpec:
    return ParamSpec(name, "bool", default, help=help)


_KERNEL = ParamSpec(
    "kernel_size", "int_or_tuple", None, minimum=1, help="window size", required=True, suggested=3
)
_POOL_KERNEL = ParamSpec(
    "kernel_size", "int_or_tuple", None, minimum=1, help="window size", required=True, suggested=2
)
_STRIDE = _window("stride", 1, 1, "step between windows")
_POOL_STRIDE = _window("stride", None, 1, "step between windows (default: kernel_size)")
_PADDING = _window("padding", 0, 0, "zeros added on each side")
_DILATION = _window("dilation", 1, 1, "spacing between kernel elements")
_CEIL_MODE = _bool("ceil_mode", False, "round the output size up instead of down")
_BIAS = _bool("bias", True, "learn an additive bias")
_EPS = _float("eps", 1e-5, "added to the variance for numerical stability", low=0.0)
_P = _float("p", 0.5, "probability of zeroing an element", low=0.0, high=1.0)
_DIM = ParamSpec("dim", "int", 1, help="dimension to work along, counting the batch as 0")


def _conv(dims: int) -> LayerType:
    padding = ParamSpec(
        "padding",
        "int_or_tuple",
        0,
        minimum=0,
        choices=("valid", "same"),
        help="zeros added on each side, or 'same' / 'valid'",
    )
    params = (
        _inferred("in_channels", "input channels (from the previous layer)"),
        _required("out_channels", 16, "number of filters"),
        _KERNEL,
        _STRIDE,
        padding,
        _DILATION,
        ParamSpec("groups", "int", 1, minimum=1, help="split channels into groups"),
        _BIAS,
        ParamSpec(
            "padding_mode",
            "choice",
            "zeros",
            choices=("zeros", "reflect", "replicate", "circular"),
            help="how padding is filled",
        ),
    )
    return LayerType(
        f"Conv{dims}d",
        "Convolution",
        params,
        f"{dims}-D convolution over a [channels, {_spatial_names(dims)}] input",
        input_ranks=(dims + 1,),
        spatial_dims=dims,
        shape_rule="conv",
        rules=layer_rules.CONV,
        positional=("in_channels", "out_channels"),
    )


def _max_pool(dims: int) -> LayerType:
    params = (_POOL_KERNEL, _POOL_STRIDE, _PADDING, _DILATION, _CEIL_MODE)
    return LayerType(
        f"MaxPool{dims}d",
        "Pooling",
        params,
        f"{dims}-D max pooling",
        (dims + 1,),
        dims,
        "pool",
        layer_rules.POOL,
        positional=("kernel_size",),
    )


def _avg_pool(dims: int) -> LayerType:
    params = (
        _POOL_KERNEL,
        _POOL_STRIDE,
        _PADDING,
        _CEIL_MODE,
        _bool("count_include_pad", True, "count padding zeros in the average"),
    )
    return LayerType(
        f"AvgPool{dims}d",
        "Pooling",
        params,
        f"{dims}-D average pooling",
        (dims + 1,),
        dims,
        "pool",
        layer_rules.POOL,
        positional=("kernel_size",),
    )


def _adaptive_avg_pool(dims: int) -> LayerType:
    output_size = ParamSpec(
        "output_size",
        "int_or_tuple",
        None,
        minimum=1,
        help="output size",
        required=True,
        suggested=1,
    )
    return LayerType(
        f"AdaptiveAvgPool{dims}d",
        "Pooling",
        (output_size,),
        f"{dims}-D average pooling to a fixed output size, whatever the input size",
        (dims + 1,),
        dims,
        "adaptive_pool",
        layer_rules.ADAPTIVE_POOL,
        positional=("output_size",),
    )


def _batch_norm(dims: int, ranks: tuple[int, ...]) -> LayerType:
    params = (
        _inferred("num_features", "channels (from the previous layer)"),
        _EPS,
        _float("momentum", 0.1, "weight of the newest batch in the running statistics", 0.0, 1.0),
        _bool("affine", True, "learn a scale and shift"),
        _bool("track_running_stats", True, "keep running statistics for evaluation"),
    )
    return LayerType(
        f"BatchNorm{dims}d",
        "Normalization",
        params,
        "normalise each channel over the batch",
        ranks,
        dims,
        "batch_norm",
        layer_rules.BATCH_NORM,
        positional=("num_features",),
    )


def _spatial_names(dims: int) -> str:
    return "length" if dims == 1 else "height, width"


def _simple(
    name: str, category: str, help: str, *params: ParamSpec, ranks: tuple[int, ...] = ()
) -> LayerType:
    return LayerType(name, category, params, help, input_ranks=ranks)


def _dropout(name: str, help: str, ranks: tuple[int, ...] = ()) -> LayerType:
    return LayerType(name, "Dropout", (_P,), help, input_ranks=ranks, rules=layer_rules.DROPOUT)


_MANY = (2, None)
_ANY_DTYPE = ("float32", "long")


_TYPES = (
    LayerType(
        "Linear",
        "Linear",
        (
            _inferred("in_features", "input size (from the previous layer)"),
            _required("out_features", 10, "output size"),
            _BIAS,
        ),
        "fully connected layer: y = x Wᵀ + b over the last dimension",
        shape_rule="linear",
        rules=layer_rules.LINEAR,
        positional=("in_features", "out_features"),
    ),
    _conv(1),
    _conv(2),
    _max_pool(1),
    _max_pool(2),
    _avg_pool(1),
    _avg_pool(2),
    _adaptive_avg_pool(1),
    _adaptive_avg_pool(2),
    _batch_norm(1, (1, 2)),
    _batch_norm(2, (3,)),
    LayerType(
        "LayerNorm",
        "Normalization",
        (
            ParamSpec(
                "normalized_shape",
                "int_or_tuple",
                None,
                minimum=1,
                inferred=True,
                help="trailing dimensions to normalise (default: the last one)",
            ),
            _EPS,
            _bool("elementwise_affine", True, "learn a scale and shift"),
            _bool("bias", True, "learn the shift (with elementwise_affine)"),
        ),
        "normalise each sample over its trailing dimensions",
        shape_rule="layer_norm",
        rules=layer_rules.LAYER_NORM,
        positional=("normalized_shape",),
    ),
    _dropout("Dropout", "zero random elements while training"),
    _dropout("Dropout1d", "zero random whole channels of a [C, L] input", ranks=(2,)),
    _dropout("Dropout2d", "zero random whole channels of a [C, H, W] input", ranks=(3,)),
    _simple("ReLU", "Activation", "max(0, x)"),
    _simple(
        "LeakyReLU",
        "Activation",
        "x, or negative_slope·x below zero",
        _float("negative_slope", 0.01, "slope below zero"),
    ),
    _simple(
        "GELU",
        "Activation",
        "Gaussian error linear unit",
        ParamSpec(
            "approximate", "choice", "none", choices=("none", "tanh"), help="tanh approximation"
        ),
    ),
    _simple("SiLU", "Activation", "x·sigmoid(x), also called swish"),
    _simple(
        "ELU",
        "Activation",
        "exponential linear unit",
        _float("alpha", 1.0, "value for large negative inputs"),
    ),
    _simple("Sigmoid", "Activation", "1 / (1 + exp(-x))"),
    _simple("Tanh", "Activation", "hyperbolic tangent"),
    LayerType(
        "Softmax",
        "Activation",
        (_DIM,),
        "probabilities summing to 1 along dim",
        shape_rule="softmax",
        rules=layer_rules.SOFTMAX,
    ),
    LayerType(
        "LogSoftmax",
        "Activation",
        (_DIM,),
        "log of softmax; pair it with the nll loss",
        shape_rule="softmax",
        rules=layer_rules.SOFTMAX,
    ),
    LayerType(
        "Flatten",
        "Shape",
        (
            ParamSpec(
                "start_dim", "int", 1, help="first dimension to flatten, counting the batch as 0"
            ),
            ParamSpec("end_dim", "int", -1, help="last dimension to flatten"),
        ),
        "merge dimensions into one, e.g. [64, 12, 12] into [9216]",
        shape_rule="flatten",
        rules=layer_rules.FLATTEN,
        input_dtypes=_ANY_DTYPE,
    ),
    LayerType(
        "Identity", "Shape", (), "passes the input through unchanged", input_dtypes=_ANY_DTYPE
    ),
    LayerType(
        "Add",
        "Merge",
        (),
        "adds its inputs: the join of a residual (skip) connection; set inputs",
        shape_rule="elementwise",
        rules=layer_rules.ELEMENTWISE,
        module=Add,
        inputs=_MANY,
    ),
    LayerType(
        "Mul",
        "Merge",
        (),
        "multiplies its inputs element by element, e.g. a gate; set inputs",
        shape_rule="elementwise",
        rules=layer_rules.ELEMENTWISE,
        module=Mul,
        inputs=_MANY,
    ),
    LayerType(
        "Concat",
        "Merge",
        (_DIM,),
        "joins its inputs along dim (1: channels or features); set inputs",
        shape_rule="concat",
        rules=layer_rules.CONCAT,
        module=Concat,
        inputs=_MANY,
        input_dtypes=_ANY_DTYPE,
    ),
    LayerType(
        "Backbone",
        "Pretrained",
        (
            ParamSpec(
                "arch",
                "text",
                "resnet18",
                help="a torchvision classification model (`workbench backbones` lists them)",
            ),
            ParamSpec(
                "weights",
                "text",
                "DEFAULT",
                help='"DEFAULT", a torchvision weights name, a state_dict file, or "none"',
            ),
            ParamSpec(
                "freeze",
                "bool_or_text",
                True,
                suggested="last:1",
                help='true: train only the layers after it; false: train it all; "last:N": '
                "train its last N stages",
            ),
        ),
        "a pretrained torchvision network without its classifier: images in, features out",
        input_ranks=(3,),
        shape_rule="backbone",
        rules=BACKBONE_RULES,
        module=Backbone,
        check_on_meta=True,
        export=backbone_code,
    ),
)

CATALOGUE: dict[str, LayerType] = {layer.name: layer for layer in _TYPES}


def layer_type(name: str) -> LayerType:
    """The catalogue entry for `name`; an unknown name is a ModelBuildError with a suggestion."""
    try:
        return CATALOGUE[name]
    except KeyError:
        pass
    by_lower = {known.lower(): known for known in CATALOGUE}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{by_lower[close[0]]}'?"
    else:
        hint = f"known types: {', '.join(CATALOGUE)}"
    raise ModelBuildError(f"unknown layer type {name!r}; {hint}") from None


def categories() -> dict[str, list[LayerType]]:
    """Catalogue entries grouped by category, in the order the GUI's add-layer menu shows them."""
    grouped: dict[str, list[LayerType]] = {category: [] for category in CATEGORIES}
    for layer in CATALOGUE.values():
        grouped[layer.category].append(layer)
    return grouped


def layer_label(layer: LayerSpec, resolved: Mapping[str, Any] | None = None) -> str:
    """`Linear(9216 → 64)`, `Conv2d(1 → 32, k3)`: the type with the sizes that matter most.

    `resolved` is the planner's full argument list (inferred sizes included); without it the
    label uses what the user set, with "?" for sizes that could not be inferred. A block's use
    shows its name and how often it repeats.
    """
    kind = CATALOGUE.get(layer.type)
    if kind is None:
        repeat = layer.params.get("repeat", 1)
        return f"{layer.type} ×{repeat}" if isinstance(repeat, int) and repeat > 1 else layer.type
    if resolved is not None:
        return kind.label(resolved)
    values = {p.name: p.default for p in kind.params}
    values.update({name: value for name, value in layer.params.items() if value is not None})
    return kind.label(values)
