"""The summary of a model the builder did not make, as torchinfo takes it: forward hooks on every
module record output shapes and MACs while one small batch of zeros runs through the model.

Rows follow the module tree (the order `print(model)` and the state_dict use); each counts its
subtree's parameters and MACs. What `forward` does with torch functions (`F.relu`, `@`) has no
module, so hooks do not see it: MACs count Linear and convolution modules, as the layer
builder's table does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.layer_rules import show

Shape = tuple[int, ...]
PROBE_BATCH = 2  # two samples: a squeeze() in forward cannot drop the batch dimension
DTYPES = {"float32": torch.float32, "long": torch.long}
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class ModuleRow:
    """One module of the tree, as the summary table and the window's module tree show it.

    `path` is its qualified name (`layer1.0.conv1`, the prefix of its state_dict keys);
    `output_shape` is one sample's (no batch), None when forward never called it or it gave
    no tensor. Counts include the module's children; MACs are per sample, over every call.
    """

    path: str
    type: str
    output_shape: Shape | None
    dtype: str | None
    parameters: int
    trainable: int
    buffers: int
    macs: int
    calls: int

    @property
    def depth(self) -> int:
        return self.path.count(".")

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def parent(self) -> str:
        """The parent's path; "" for a child of the model itself."""
        return self.path.rpartition(".")[0]


@dataclass(frozen=True)
class ForwardSurvey:
    """What one forward pass showed: the rows, and the model's output."""

    rows: tuple[ModuleRow, ...]
    input_shape: Shape
    output_shape: Shape | None  # one sample's; None when the output is not a tensor
    output_dtype: torch.dtype | None
    output_type: str  # "Tensor", or the type forward returned (tuple, dict, ...)
    batch_first: bool = True  # the output's first dimension is the batch's


def probe_input(input_shape: Sequence[int], input_dtype: str = "float32") -> torch.Tensor:
    """The batch the survey runs: PROBE_BATCH samples of zeros (no random numbers drawn)."""
    return torch.zeros((PROBE_BATCH, *input_shape), dtype=DTYPES.get(input_dtype, torch.float32))


def survey_forward(
    model: nn.Module, input_shape: Sequence[int], input_dtype: str = "float32"
) -> ForwardSurvey:
    """Run `probe_input` through `model` (eval mode, no gradients, every module's mode restored)
    with hooks on every module. Exceptions from the model's code propagate as they are."""
    recorder = _Recorder()
    was_training = model.training
    modes = [(module, module.training) for module in model.modules()]
    handles = []
    for path, module in model.named_modules():
        if path:
            handles.append(module.register_forward_hook(recorder.hook(path)))
    try:
        model.eval()
        with torch.no_grad():
            output = model(probe_input(input_shape, input_dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)  # an exported graph switches its operators back
        for module, mode in modes:
            module.training = mode
    tensor = output if isinstance(output, torch.Tensor) else None
    return ForwardSurvey(
        rows=recorder.rows(model),
        input_shape=tuple(input_shape),
        output_shape=_per_sample(tensor) if tensor is not None else None,
        output_dtype=tensor.dtype if tensor is not None else None,
        output_type="Tensor" if tensor is not None else type(output).__name__,
        batch_first=tensor is not None and tensor.dim() > 0 and tensor.shape[0] == PROBE_BATCH,
    )


def module_rows(model: nn.Module) -> tuple[ModuleRow, ...]:
    """The tree with counts only (no forward run): for a model that has not been surveyed."""
    return _Recorder().rows(model)


class _Recorder:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[Shape | None, str | None]] = {}
        self.own_macs: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def hook(self, path: str) -> Any:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            tensor = _first_tensor(output)
            self.shapes[path] = (
                (_per_sample(tensor), str(tensor.dtype).removeprefix("torch."))
                if tensor is not None
                else (None, None)
            )
            self.calls[path] = self.calls.get(path, 0) + 1
            self.own_macs[path] = self.own_macs.get(path, 0) + _macs(module, inputs, tensor)

        return record

    def rows(self, model: nn.Module) -> tuple[ModuleRow, ...]:
        rows = []
        for path, module in model.named_modules():
            if not path:
                continue
            parameters = list(module.parameters())
            shape, dtype = self.shapes.get(path, (None, None))
            rows.append(
                ModuleRow(
                    path=path,
                    type=type(module).__name__,
                    output_shape=shape,
                    dtype=dtype,
                    parameters=sum(p.numel() for p in parameters),
                    trainable=sum(p.numel() for p in parameters if p.requires_grad),
                    buffers=sum(b.numel() for b in module.buffers()),
                    macs=sum(
                        macs
                        for inner, macs in self.own_macs.items()
                        if inner == path or inner.startswith(f"{path}.")
                    ),
                    calls=self.calls.get(path, 0),
                )
            )
        return tuple(rows)


def _first_tensor(output: Any) -> torch.Tensor | None:
    """The output, or the first tensor of a tuple/list output (an LSTM's)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _per_sample(tensor: torch.Tensor) -> Shape:
    shape = tuple(tensor.shape)
    return shape[1:] if shape and shape[0] == PROBE_BATCH else shape


def _macs(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor | None) -> int:
    """Multiply-accumulates per sample of one call, for the modules that dominate the cost."""
    if output is None:
        return 0
    if isinstance(module, nn.Linear):
        return module.in_features * output.numel() // PROBE_BATCH
    if isinstance(module, _CONVOLUTIONS):
        kernel = math.prod(module.kernel_size)
        per_output = (module.in_channels // module.groups) * kernel
        return output.numel() // PROBE_BATCH * per_output
    if isinstance(module, _TRANSPOSED) and inputs and isinstance(inputs[0], torch.Tensor):
        kernel = math.prod(module.kernel_size)
        per_input = (module.out_channels // module.groups) * kernel
        return inputs[0].numel() // PROBE_BATCH * per_input
    return 0


# --------------------------------------------------------------------------- the table


def module_table(
    rows: Sequence[ModuleRow], input_shape: Shape, output_shape: Shape | None, parameters: int
) -> str:
    """Aligned text: module (indented by depth), type, output shape, params, MACs; then the
    totals: the model's `parameters` (each counted once) and its MACs."""
    header = ["module", "type", "output shape", "params", "MACs"]
    body = [["input", "", show(input_shape), "", ""]]
    for row in rows:
        kind = row.type if row.calls <= 1 else f"{row.type} ×{row.calls}"
        shape = show(row.output_shape) if row.output_shape is not None else "—"
        body.append(
            ["  " * row.depth + row.path, kind, shape, f"{row.parameters:,}", f"{row.macs:,}"]
        )
    total = [
        "total",
        "",
        show(output_shape) if output_shape is not None else "",
        f"{parameters:,}",
        f"{total_macs(rows):,}",
    ]
    widths = [max(len(cells[c]) for cells in (header, *body, total)) for c in range(len(header))]
    right = [False, False, False, True, True]

    def render(cells: Sequence[str]) -> str:
        parts = zip(cells, widths, right, strict=True)
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *map(render, body), rule, render(total)])


def total_macs(rows: Sequence[ModuleRow]) -> int:
    """Per-sample MACs of the whole model: its top-level modules' (which hold their children's)."""
    return sum(row.macs for row in rows if row.depth == 0)


def child_rows(rows: Sequence[ModuleRow], parent: str = "") -> Iterator[ModuleRow]:
    """The direct children of `parent` ("" for the model's own), in order."""
    return (row for row in rows if row.parent == parent)
