"""The model section of an experiment: named layers, their inputs, blocks, outputs and the input,
or the user's own code (`module` and `kwargs`) instead of layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.frozen import frozen_mapping, thaw

INPUT = "input"  # the name `inputs` use for the model's (or a block's) input
INPUT_DTYPES = ("float32", "long")  # long: token ids, for embedding layers


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a catalogue type (or a block's name) and the parameters the user set.

    `name` becomes the module's attribute name, hence its state_dict keys (`conv1.weight`);
    None means its position (`0.weight`), as in an nn.Sequential. `inputs` names the layers
    whose outputs it takes (`"input"` is the model's input); None means the previous layer.
    """

    type: str
    params: Mapping[str, Any] = field(default_factory=frozen_mapping)
    name: str | None = None
    inputs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", frozen_mapping(self.params))
        if self.inputs is not None:
            object.__setattr__(self, "inputs", tuple(self.inputs))

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {} if self.name is None else {"name": self.name}
        values["type"] = self.type
        values.update(thaw(self.params))
        if self.inputs is not None:
            values["inputs"] = list(self.inputs)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LayerSpec:
        params = dict(values)
        kind = str(params.pop("type"))
        name = params.pop("name", None)
        inputs = params.pop("inputs", None)
        if isinstance(inputs, str):
            inputs = (inputs,)
        return cls(kind, params, name, None if inputs is None else tuple(inputs))


@dataclass(frozen=True)
class BlockSpec:
    """A named sub-graph, defined once under `[model.blocks.NAME]` and used as a layer type;
    each use (and each repeat) gets its own weights. Inside, `"input"` is the block's input."""

    layers: tuple[LayerSpec, ...] = ()
    outputs: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {"layers": [layer.to_dict() for layer in self.layers]}
        if self.outputs is not None:
            values["outputs"] = list(self.outputs)
        return values


@dataclass(frozen=True)
class ModelSpec:
    """The model: a graph of layers; a plain list of unnamed layers is an nn.Sequential.

    Or the user's own code instead of layers: `module` names a class or factory function in a
    Python file (`"models/net.py:Net"`) or an importable module (`"package.module:Net"`), or a
    program saved by torch.export (`"model.pt2"`); `kwargs` are passed to it. Reading the spec
    never imports anything (engine/own_model.py builds it).
    """

    layers: tuple[LayerSpec, ...] = ()
    input_shape: tuple[int, ...] | None = field(default=None, metadata={"min": 1, "max": None})
    input_dtype: str = field(default="float32", metadata={"choices": INPUT_DTYPES})
    outputs: tuple[str, ...] | None = None
    blocks: Mapping[str, BlockSpec] = field(default_factory=frozen_mapping)
    module: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=frozen_mapping)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", frozen_mapping(self.blocks))
        object.__setattr__(self, "kwargs", frozen_mapping(self.kwargs))

    @property
    def from_code(self) -> bool:
        """Whether the model is the user's own code (or a .pt2 file) rather than layers."""
        return self.module is not None

    def to_dict(self) -> dict[str, Any]:
        """The `[model]` table as TOML writes it, leaving out what is unset or the default."""
        values: dict[str, Any] = {}
        if self.input_shape is not None:
            values["input_shape"] = list(self.input_shape)
        if self.input_dtype != "float32":
            values["input_dtype"] = self.input_dtype
        if self.module is not None:
            values["module"] = self.module
        if self.kwargs:
            values["kwargs"] = thaw(self.kwargs)
        if self.layers or self.module is None:
            values["layers"] = [layer.to_dict() for layer in self.layers]
        if self.outputs is not None:
            values["outputs"] = list(self.outputs)
        if self.blocks:
            values["blocks"] = {name: block.to_dict() for name, block in self.blocks.items()}
        return values
