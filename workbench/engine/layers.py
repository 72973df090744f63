"""The layer catalogue: every layer type the builder knows, as data the GUI draws editors from."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from workbench.engine import layer_rules, sequence_layers, sequence_rules
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
    "Sequence",
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
    `input_dtypes` the input dtypes it accepts; `output_dtype` what it gives (None: its
    input's). `fixed` are constructor arguments the user does not set (recurrent layers are
    always batch first); `tuple_output`: the module returns a tuple whose item 0 is the layer's
    output (nn.LSTM's `(output, (h, c))`). `script_class` is the class an exported script
    defines for it (None: the module class, from torch.nn when it is torch's).
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
    output_dtype: str | None = None
    fixed: tuple[tuple[str, Any], ...] = ()
    tuple_output: bool = False
    script_class: type[nn.Module] | None = None
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
    def exported_class(self) -> type[nn.Module] | None:
        """The class of our own an exported script must define (None: torch.nn's own)."""
        if self.script_class is not None:
            return self.script_class
        if self.export is not None:  # written by its own export code (a Backbone)
            return None
        if self.module is not None and self.category != "Merge":
            return self.module
        return None

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
_BATCH_FIRST = (("batch_first", True),)


def _recurrent(name: str, script_class: type[nn.Module], help: str) -> LayerType:
    params = (
        ParamSpec("input_size", "int", None, minimum=1, inferred=True, help="input features"),
        _required("hidden_size", 64, "features of the hidden state (and the output)"),
        ParamSpec("num_layers", "int", 1, minimum=1, help="recurrent layers stacked"),
        _BIAS,
        _float("dropout", 0.0, "dropout between stacked layers", 0.0, 1.0),
        _bool("bidirectional", False, "also read the sequence backwards (doubles the output)"),
    )
    return LayerType(
        name,
        "Sequence",
        params,
        help,
        input_ranks=(2,),
        shape_rule="recurrent",
        rules=sequence_rules.RECURRENT,
        positional=("input_size", "hidden_size"),
        fixed=_BATCH_FIRST,
        tuple_output=True,
        script_class=script_class,
    )


_SEQUENCE_TYPES = (
    LayerType(
        "Embedding",
        "Sequence",
        (
            ParamSpec(
                "num_embeddings",
                "int",
                None,
                minimum=1,
                inferred=True,
                help="vocabulary size (from the text data)",
            ),
            _required("embedding_dim", 64, "features per token"),
        ),
        "a learned vector per token id: [length] ids become [length, embedding_dim]",
        shape_rule="embedding",
        rules=sequence_rules.EMBEDDING,
        input_dtypes=("long",),
        output_dtype="float32",
        positional=("num_embeddings", "embedding_dim"),
    ),
    LayerType(
        "PositionalEmbedding",
        "Sequence",
        (
            ParamSpec(
                "num_positions",
                "int",
                None,
                minimum=1,
                inferred=True,
                help="positions learned (from the input length, data.block_size)",
            ),
            ParamSpec(
                "embedding_dim", "int", None, minimum=1, inferred=True, help="input features"
            ),
        ),
        "adds a learned vector per position, so the model knows the order of the tokens",
        input_ranks=(2,),
        shape_rule="positional",
        rules=sequence_rules.POSITIONAL,
        module=sequence_layers.PositionalEmbedding,
        positional=("num_positions", "embedding_dim"),
    ),
    _recurrent(
        "LSTM",
        sequence_layers.LSTM,
        "long short-term memory over a [length, features] sequence; gives its output at every step",
    ),
    _recurrent(
        "GRU",
        sequence_layers.GRU,
        "gated recurrent unit over a [length, features] sequence; gives its output at every step",
    ),
    LayerType(
        "LastStep",
        "Sequence",
        (),
        "the last position of a [length, features] sequence, e.g. to classify after an LSTM",
        input_ranks=(2,),
        shape_rule="last_step",
        rules=sequence_rules.LAST_STEP,
        module=sequence_layers.LastStep,
    ),
    LayerType(
        "TransformerBlock",
        "Sequence",
        (
            ParamSpec("embed_dim", "int", None, minimum=1, inferred=True, help="input features"),
            ParamSpec("heads", "int", 4, minimum=1, help="attention heads (divide embed_dim)"),
            _bool("causal", True, "each position attends only to itself and earlier ones"),
            _float("dropout", 0.0, "dropout on attention and MLP outputs", 0.0, 1.0),
            ParamSpec("mlp_ratio", "int", 4, minimum=1, help="MLP width as a multiple"),
            _BIAS,
        ),
        "pre-norm self-attention + MLP (a GPT block); set repeat for a stack",
        input_ranks=(2,),
        shape_rule="transformer_block",
        rules=sequence_rules.TRANSFORMER_BLOCK,
        module=sequence_layers.TransformerBlock,
        positional=("embed_dim",),
    ),
    LayerType(
        "TransformerEncoderLayer",
        "Sequence",
        (
            ParamSpec("d_model", "int", None, minimum=1, inferred=True, help="input features"),
            _required("nhead", 4, "attention heads (divide d_model)"),
            ParamSpec("dim_feedforward", "int", 2048, minimum=1, help="MLP width"),
            _float("dropout", 0.1, "dropout probability", 0.0, 1.0),
            ParamSpec(
                "activation",
                "choice",
                "relu",
                choices=("relu", "gelu"),
                help="MLP activation",
            ),
            _float("layer_norm_eps", 1e-5, "added to the variance in LayerNorm", low=0.0),
            _bool("norm_first", False, "normalise before attention and MLP (pre-norm)"),
            _BIAS,
            _bool("causal", False, "mask later positions (for next-token models)"),
        ),
        "PyTorch's nn.TransformerEncoderLayer (batch first, with its inference fast path)",
        input_ranks=(2,),
        shape_rule="encoder_layer",
        rules=sequence_rules.ENCODER_LAYER,
        module=sequence_layers.TransformerEncoderLayer,
        positional=("d_model", "nhead"),
        fixed=_BATCH_FIRST,
    ),
)


_TYPES = (
    LayerType(
        "Linear",
        "Linear",
        (
            _inferred("in_features", "input size (from the previous layer)"),
            ParamSpec(
                "out_features",
                "int",
                None,
                minimum=1,
                choices=("vocab",),
                help='output size, or "vocab": one score per token of the vocabulary',
                required=True,
                suggested=10,
            ),
            _BIAS,
        ),
        "fully connected layer: y = x Wᵀ + b over the last dimension (per position of a sequence)",
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
    *_SEQUENCE_TYPES,
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
    repeat = layer.params.get("repeat", 1)
    times = f" ×{repeat}" if isinstance(repeat, int) and repeat > 1 else ""
    if resolved is not None:
        return kind.label(resolved) + times
    values = {p.name: p.default for p in kind.params}
    values.update({name: value for name, value in layer.params.items() if value is not None})
    return kind.label(values) + times
