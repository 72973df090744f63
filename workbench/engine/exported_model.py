"""A program saved by torch.export as a model source (`module = "model.pt2"`).

`torch.export.load(path).module()` gives a GraphModule: the traced operators, with the weights
under the original attribute names (`conv1.weight`), so it trains, saves and resumes like the
class it came from. Two limits come with it, and are handled here:

* an exported graph refuses `train()`/`eval()`: each dropout and batch-norm operator has its
  mode written in. `make_switchable` gives the graph a `train(mode)` that rewrites exactly those
  flags, so validation runs without dropout and with the running statistics. Anything else the
  original `forward` did differently in training (an `if self.training:` branch) was traced
  once, in the mode it was exported in, and stays that way;
* the batch size must be dynamic (exported with `dynamic_shapes`), since batches vary.

The file is checked before loading: a pickled object inside would run code when unpickled.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.errors import ModelBuildError, WorkbenchError
from workbench.engine.user_code import shown_path

Shape = tuple[int, ...]
aten = torch.ops.aten
_DROPOUTS = (
    aten.dropout.default,
    aten.feature_dropout.default,
    aten.alpha_dropout.default,
    aten.feature_alpha_dropout.default,
)
_TRAINING_ARGUMENT = {**dict.fromkeys(_DROPOUTS, 2), aten.batch_norm.default: 5}
DTYPE_NAMES = {torch.float32: "float32", torch.long: "long"}
DYNAMIC_HINT = 'export it with a dynamic batch dimension: torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))'


@dataclass(frozen=True)
class ExportedModel:
    """The loaded graph and the input it takes: one sample's shape and its dtype name."""

    module: torch.fx.GraphModule
    input_shape: Shape
    input_dtype: str


def load_exported_model(path: Path) -> ExportedModel:
    """Load a .pt2 written by torch.export.save as a trainable module; a ModelBuildError says
    what does not fit (several inputs, a fixed batch size, an unreadable or unsafe file)."""
    from workbench.engine.quantization import maintained  # the checked .pt2 loader

    if not path.is_file():
        raise ModelBuildError(
            f"{shown_path(path)}: no such .pt2 file; check model.module (a file is relative to "
            "the experiment file)"
        )
    try:
        module, _extra = maintained.load_program(path, ())
    except WorkbenchError as exc:
        raise ModelBuildError(f"model.module: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - torch's loader raises many kinds for a bad file
        raise ModelBuildError(
            f"{shown_path(path)}: not a program saved by torch.export.save "
            f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
        ) from None
    assert isinstance(module, torch.fx.GraphModule)
    shape, dtype = _input_of(module, path)
    make_switchable(module)
    return ExportedModel(module, shape, dtype)


def _input_of(module: torch.fx.GraphModule, path: Path) -> tuple[Shape, str]:
    inputs = [node for node in module.graph.nodes if node.op == "placeholder"]
    if len(inputs) != 1:
        raise ModelBuildError(
            f"{shown_path(path)}: the program takes {len(inputs)} inputs; training feeds it one "
            "batch tensor, so export a model whose forward takes one input"
        )
    value = inputs[0].meta.get("val")
    if not isinstance(value, torch.Tensor):
        raise ModelBuildError(f"{shown_path(path)}: the program's input is not a tensor")
    batch, *sample = value.shape
    if isinstance(batch, int):
        raise ModelBuildError(
            f"{shown_path(path)}: the program was exported for batches of exactly {batch} "
            f"samples; training needs any batch size, so {DYNAMIC_HINT}"
        )
    if not all(isinstance(size, int) for size in sample):
        raise ModelBuildError(
            f"{shown_path(path)}: the program's sample shape is not fixed ({list(value.shape)}); "
            "export it with a fixed shape for everything but the batch"
        )
    dtype = DTYPE_NAMES.get(value.dtype)
    if dtype is None:
        raise ModelBuildError(
            f"{shown_path(path)}: the program takes {value.dtype} input; the workbench feeds "
            "float32 images and tables, or long token ids"
        )
    return tuple(int(size) for size in sample), dtype


def make_switchable(module: torch.fx.GraphModule) -> None:
    """Give the graph a working `train(mode)`/`eval()`: they set the dropout and batch-norm
    operators' training flags (recompiling only when one changes) and the modules' flags.

    Instance methods, as torch.export's own refusals are; a copy (insight's snapshots) gets
    them again, since GraphModule's deepcopy rebuilds the module from its graph.
    """
    module.train = types.MethodType(_train, module)  # type: ignore[method-assign]
    module.eval = types.MethodType(_eval, module)  # type: ignore[method-assign]
    module.__deepcopy__ = types.MethodType(_deepcopy, module)  # type: ignore[method-assign]


def _train(self: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
    set_operators_training(self, mode)
    self.training = mode
    for child in self.children():
        child.train(mode)
    return self


def _eval(self: torch.fx.GraphModule) -> torch.fx.GraphModule:
    return _train(self, False)


def _deepcopy(self: torch.fx.GraphModule, memo: dict[int, Any]) -> torch.fx.GraphModule:
    copied = torch.fx.GraphModule.__deepcopy__(self, memo)
    make_switchable(copied)
    copied.training = self.training
    return copied


def set_operators_training(module: torch.fx.GraphModule, training: bool) -> bool:
    """Rewrite each dropout and batch-norm operator's training flag; True when one changed."""
    changed = False
    for node in module.graph.nodes:
        index = _TRAINING_ARGUMENT.get(node.target) if node.op == "call_function" else None
        if index is None or len(node.args) <= index or node.args[index] == training:
            continue
        node.update_arg(index, training)
        changed = True
    if changed:
        module.recompile()
    return changed


def operators_training(module: nn.Module) -> bool | None:
    """The mode the graph's dropout and batch-norm operators run in; None when it has none."""
    if not isinstance(module, torch.fx.GraphModule):
        return None
    flags = {
        node.args[_TRAINING_ARGUMENT[node.target]]
        for node in module.graph.nodes
        if node.op == "call_function" and node.target in _TRAINING_ARGUMENT
    }
    return bool(flags.pop()) if len(flags) == 1 else None
