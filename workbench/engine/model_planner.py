"""Plans a model without building it: walks the graph in running order over (shape, dtype),
inferring sizes and collecting every problem against the layer it belongs to."""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.engine.errors import ModelBuildError
from workbench.engine.frozen import frozen_mapping
from workbench.engine.graph_module import GraphModel
from workbench.engine.layer_params import checked_arguments, is_int
from workbench.engine.layer_rules import PlannedLayer, check_rank, first_line, show
from workbench.engine.layers import CATALOGUE, LayerType, layer_type
from workbench.engine.model_graph import (
    Graph,
    GraphNode,
    block_graph,
    block_problems,
    model_graph,
)
from workbench.engine.model_spec import INPUT, ModelSpec

Shape = tuple[int, ...]
Value = tuple[Shape, str]  # what flows along an edge: one sample's shape and its dtype
DTYPES = {"float32": torch.float32, "long": torch.long}
CPU_CHECK_ELEMENTS = 16_000_000  # larger layers are checked on the meta device instead
# Attributes every model already has: a layer named like one could not be added as a child.
RESERVED_NAMES = frozenset(dir(nn.Sequential())) | frozenset(dir(GraphModel)) | {"class_name"}


@dataclass(frozen=True)
class LayerRow:
    """One layer as the summary table and the GUI show it; shapes are per sample (no batch).

    A block's use is one row whose `blocks` hold the rows of each repeat, and whose counts
    are their sums. `path` is the module's qualified name (`layer1.0.conv1`), the prefix of
    its state_dict keys.
    """

    index: int
    type: str
    resolved: Mapping[str, Any]  # every constructor argument, inferred sizes included
    input_shape: Shape
    output_shape: Shape
    parameters: int
    trainable: int
    macs: int  # multiply-accumulates per sample
    name: str = ""
    inputs: tuple[str, ...] = ()  # the layers it takes; "input" is the model's (block's) input
    input_shapes: tuple[Shape, ...] = ()
    path: str = ""
    dtype: str = "float32"  # of its output
    buffers: int = 0  # elements of its buffers (BatchNorm's running statistics)
    blocks: tuple[tuple[LayerRow, ...], ...] = ()
    repeat: int = 1  # a catalogue layer stacked N times (`repeat = N`): counts are the sums


@dataclass(frozen=True)
class ModelPlan:
    """What a model would build, computed without raising: every layer that could be planned,
    then every problem found (later layers' parameter mistakes too, so the GUI can mark them).

    `rows` are the model's own layers in file order, leaving out those that could not be
    planned (a problem, or an input that has one); `row_at` finds a layer's row by position.
    """

    input_shape: Shape
    rows: tuple[LayerRow, ...]
    problems: tuple[ModelBuildError, ...] = ()
    input_dtype: str = "float32"
    output: str | None = None  # the name of the layer whose output the model gives
    is_chain: bool = True  # each layer feeds the next: it builds as an nn.Sequential

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem(self) -> ModelBuildError | None:
        return self.problems[0] if self.problems else None

    @property
    def output_shape(self) -> Shape | None:
        if self.problems:
            return None
        row = self.row_named(self.output) if self.output is not None else None
        return None if row is None else row.output_shape

    def problem_at(self, index: int) -> ModelBuildError | None:
        return next((p for p in self.problems if p.layer_index == index), None)

    def row_at(self, index: int) -> LayerRow | None:
        return next((row for row in self.rows if row.index == index), None)

    def row_named(self, name: str) -> LayerRow | None:
        return next((row for row in self.rows if row.name == name), None)


def plan_model(
    spec: ModelSpec,
    input_shape: Sequence[int] | None = None,
    *,
    vocab_size: int | None = None,
    input_dtype: str | None = None,
) -> ModelPlan:
    """Check the model layer by layer, never raising: shapes, sizes, parameters and MACs.

    `vocab_size` is the data's vocabulary (token ids; it sizes Embedding and a Linear with
    out_features = "vocab"); `input_dtype` overrides `spec.input_dtype` (the data's own).
    Modules are made on the meta device (or as uninitialised memory), so planning draws no
    random numbers; it is cheap enough to run on every edit in the GUI.
    """
    dtype = input_dtype or spec.input_dtype
    try:
        shape = resolve_input_shape(spec, input_shape)
    except ModelBuildError as problem:
        return ModelPlan((), (), (problem,), dtype)
    graph = model_graph(spec)
    planner = _Planner(spec, vocab_size, tokens=dtype == "long")
    if not spec.layers:
        planner.problems.append(ModelBuildError("the model has no layers; add at least one layer"))
        return ModelPlan(shape, (), tuple(planner.problems), dtype)
    naming = _Naming("model", chain=graph.is_chain)
    rows, _ = planner.plan_graph(graph, (shape, dtype), naming)
    problems = tuple(sorted(planner.problems, key=_problem_order))
    return ModelPlan(shape, tuple(rows), problems, dtype, graph.output, graph.is_chain)


def _problem_order(problem: ModelBuildError) -> tuple[bool, int]:
    """Problems of the whole model first, then by layer (a stable sort keeps the rest)."""
    return (problem.layer_index is not None, problem.layer_index or 0)


# --------------------------------------------------------------------------- naming the layers


@dataclass(frozen=True)
class _Naming:
    """How the layers of one list are named in messages, rows and the file.

    The model's own layers read `layer 7`, in a graph `layer 5 'skip'`; a block's layers as
    written read `block Basic, layer 2 'relu1'`; one repeat's layers read `layer1.0.relu1`.
    """

    where: str  # "model" or "model.blocks.NAME"
    chain: bool = False
    top_index: int | None = None  # set inside a block: the top-level layer it belongs to
    prefix: str | None = None  # set for one repeat of a block: its module path
    block: str | None = None  # set for a block's layers as written

    def label(self, node: GraphNode) -> str:
        if self.prefix is not None:
            return self.path(node)
        named = node.layer.name is not None and (self.block is not None or not self.chain)
        shown = f" '{node.name}'" if named else ""
        head = f"block {self.block}, " if self.block is not None else ""
        return f"{head}layer {node.index}{shown}"

    def index(self, node: GraphNode) -> int:
        return node.index if self.top_index is None else self.top_index

    def path(self, node: GraphNode) -> str:
        return node.name if self.prefix is None else f"{self.prefix}.{node.name}"

    def key_path(self, node: GraphNode) -> str:
        return f"{self.where}.layers[{node.index}]"


@dataclass
class _Checked:
    """A layer's parameters, checked once: the catalogue entry and arguments, or a block use."""

    kind: LayerType | None
    args: dict[str, Any] = field(default_factory=dict)
    block: str | None = None
    repeat: int = 1


# --------------------------------------------------------------------------- the walk


class _Planner:
    def __init__(self, spec: ModelSpec, vocab_size: int | None, tokens: bool) -> None:
        self.spec = spec
        self.vocab_size, self.tokens = vocab_size, tokens
        self.problems: list[ModelBuildError] = []
        self._blocks: dict[str, tuple[Graph, list[_Checked | None]] | None] = {}

    def plan_graph(
        self, graph: Graph, start: Value, context: _Naming
    ) -> tuple[list[LayerRow], Value | None]:
        """Plan one layer list from its input; rows in file order and the output's value."""
        if graph.block is None:
            checked = self._check_layers(graph, context)
        else:
            known = self._block(graph.block, context.top_index or 0)
            if known is None:
                return [], None
            checked = known[1]
        values: dict[str, Value | None] = {INPUT: start}
        rows: dict[int, LayerRow] = {}
        for index in graph.order:
            node = graph.nodes[index]
            inputs = [values.get(source) for source in node.inputs]
            done = checked[index]
            row = None
            if done is not None and all(value is not None for value in inputs):
                row = self._plan_node(node, done, [v for v in inputs if v is not None], context)
            if node.name != INPUT:  # a layer wrongly named "input" must not hide the input
                values[node.name] = None if row is None else (row.output_shape, row.dtype)
            if row is not None:
                rows[index] = row
        output = values.get(graph.output) if graph.output is not None else None
        return [rows[index] for index in sorted(rows)], output

    def _plan_node(
        self, node: GraphNode, done: _Checked, inputs: list[Value], context: _Naming
    ) -> LayerRow | None:
        try:
            if done.block is not None:
                return self._plan_block_use(node, done, inputs[0], context)
            assert done.kind is not None
            row = _plan_layer(node, done.kind, dict(done.args), inputs, context, self)
            return row if done.repeat == 1 else _repeated(row, done, context, node)
        except ModelBuildError as problem:
            self.problems.append(problem)
            return None

    # ------------------------------------------------------------------ parameters

    def _check_layers(self, graph: Graph, context: _Naming) -> list[_Checked | None]:
        """Structure and parameters of every layer in the list; None where there is a problem."""
        checked: list[_Checked | None] = []
        bad = {p.index for p in graph.problems if p.index is not None}
        for problem in graph.problems:
            node = graph.nodes[problem.index] if problem.index is not None else None
            label = _kind_label(context.label(node), node.layer.type) if node else problem.where
            index = context.index(node) if node else context.top_index
            self.problems.append(
                ModelBuildError(f"{label}: {problem.message}", index, problem.where)
            )
        for node in graph.nodes:
            try:
                done = self._check_node(node, context.label(node))
            except ModelBuildError as problem:
                where = context.key_path(node)
                self.problems.append(ModelBuildError(str(problem), context.index(node), where))
                done = None
            checked.append(None if node.index in bad else done)
        return checked

    def _check_node(self, node: GraphNode, label: str) -> _Checked:
        layer = node.layer
        if layer.type in self.spec.blocks:
            return self._check_block_use(node, label)
        try:
            kind = layer_type(layer.type)
        except ModelBuildError as exc:
            raise ModelBuildError(f"{label}: {_unknown_type(exc, layer.type, self.spec)}") from None
        prefix = f"{label} ({kind.name})"
        if layer.name is not None and layer.name in RESERVED_NAMES:
            raise ModelBuildError(f"{prefix}: {_reserved(layer.name)}")
        _check_arity(prefix, kind.inputs, len(node.inputs))
        params = {key: value for key, value in layer.params.items() if key != "repeat"}
        try:
            args = checked_arguments(kind, params)
        except ValueError as exc:
            raise ModelBuildError(f"{prefix}: {exc}") from None
        return _Checked(kind, args, repeat=_repeat(prefix, layer.params.get("repeat", 1)))

    def _check_block_use(self, node: GraphNode, label: str) -> _Checked:
        layer = node.layer
        prefix = f"{label} ({layer.type})"
        if layer.type in CATALOGUE:
            raise ModelBuildError(
                f"{prefix}: a block cannot be named like the layer type {layer.type}; rename "
                f"[model.blocks.{layer.type}] and its uses"
            )
        if layer.name is not None and layer.name in RESERVED_NAMES:
            raise ModelBuildError(f"{prefix}: {_reserved(layer.name)}")
        _check_arity(prefix, (1, 1), len(node.inputs))
        unknown = [name for name in layer.params if name != "repeat"]
        if unknown:
            raise ModelBuildError(
                f"{prefix}: unknown parameter {unknown[0]!r}; a block's use takes only "
                "repeat (its layers are set under [model.blocks." + layer.type + "])"
            )
        return _Checked(
            None, block=layer.type, repeat=_repeat(prefix, layer.params.get("repeat", 1))
        )

    def _block(self, block: str, top_index: int) -> tuple[Graph, list[_Checked | None]] | None:
        """The block's graph and checked layers, checked once; None if it cannot be planned."""
        if block not in self._blocks:
            where = f"model.blocks.{block}"
            own = block_problems(self.spec, block)
            for problem in own:
                self.problems.append(
                    ModelBuildError(f"{problem.where}: {problem.message}", top_index, where)
                )
            self._blocks[block] = None  # a block that leads back to itself stops here
            if own:
                return None
            graph = block_graph(self.spec, block)
            naming = _Naming(where, top_index=top_index, block=block)
            checked = self._check_layers(graph, naming)
            usable = not graph.problems and all(c is not None for c in checked)
            self._blocks[block] = (graph, checked) if usable else None
        return self._blocks[block]

    def _plan_block_use(
        self, node: GraphNode, done: _Checked, start: Value, context: _Naming
    ) -> LayerRow | None:
        assert done.block is not None
        known = self._block(done.block, context.index(node))
        if known is None:
            return None
        graph = known[0]
        instances: list[tuple[LayerRow, ...]] = []
        value: Value | None = start
        path = context.path(node)
        for repeat in range(done.repeat):
            assert value is not None
            inner = _Naming(
                f"model.blocks.{done.block}",
                top_index=context.index(node),
                prefix=f"{path}.{repeat}",
            )
            rows, value = self.plan_graph(graph, value, inner)
            if value is None:
                return None
            instances.append(tuple(rows))
        assert value is not None
        every = [row for rows in instances for row in rows]
        return LayerRow(
            index=node.index,
            type=done.block,
            resolved=frozen_mapping({"repeat": done.repeat}),
            input_shape=start[0],
            output_shape=value[0],
            parameters=sum(row.parameters for row in every),
            trainable=sum(row.trainable for row in every),
            macs=sum(row.macs for row in every),
            name=node.name,
            inputs=node.inputs,
            input_shapes=(start[0],),
            path=path,
            dtype=value[1],
            buffers=sum(row.buffers for row in every),
            blocks=tuple(instances),
        )


def _repeat(prefix: str, repeat: Any) -> int:
    if not is_int(repeat) or repeat < 1:
        raise ModelBuildError(
            f"{prefix}: repeat = {show(repeat)} is not a whole number of at least 1"
        )
    return int(repeat)


def _repeated(row: LayerRow, done: _Checked, context: _Naming, node: GraphNode) -> LayerRow:
    """A catalogue layer stacked `repeat` times (an nn.Sequential of copies): each copy takes
    the previous one's output, so the layer must give what it takes."""
    assert done.kind is not None
    label = f"{context.label(node)} ({done.kind.name})"
    if done.kind.tuple_output:
        raise ModelBuildError(
            f"{label}: repeat stacks layers that give one tensor; for a deeper "
            f"{done.kind.name} set num_layers = {done.repeat} instead",
            context.index(node),
            context.key_path(node),
        )
    if row.output_shape != row.input_shape or done.kind.output_dtype is not None:
        raise ModelBuildError(
            f"{label}: repeat = {done.repeat} feeds each copy the one before, but it turns "
            f"{show(row.input_shape)} into {show(row.output_shape)}; remove repeat, or use a "
            "layer that keeps the shape",
            context.index(node),
            context.key_path(node),
        )
    n = done.repeat
    return dataclasses.replace(
        row,
        parameters=row.parameters * n,
        trainable=row.trainable * n,
        macs=row.macs * n,
        buffers=row.buffers * n,
        repeat=n,
    )


def _kind_label(label: str, type_name: str) -> str:
    return f"{label} ({type_name})"


def _check_arity(prefix: str, allowed: tuple[int, int | None], given: int) -> None:
    low, high = allowed
    if given >= low and (high is None or given <= high):
        return
    if high is None:
        raise ModelBuildError(
            f"{prefix}: it joins {low} or more layers, but takes {given}; list them in inputs, "
            'e.g. inputs = ["bn2", "relu1"]'
        )
    raise ModelBuildError(
        f"{prefix}: it takes one input, but inputs names {given}; join branches with an Add, "
        "Mul or Concat layer first"
    )


def _reserved(name: str) -> str:
    return f"the name '{name}' is taken by every PyTorch module; choose another, e.g. '{name}_1'"


def _unknown_type(exc: ModelBuildError, type_name: str, spec: ModelSpec) -> str:
    if not spec.blocks:
        return str(exc)
    known = {name.lower(): name for name in [*CATALOGUE, *spec.blocks]}
    close = difflib.get_close_matches(type_name.lower(), list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown layer type {type_name!r}; did you mean '{known[close[0]]}'?"
    return f"unknown layer type {type_name!r}; known types: {', '.join(known.values())}"


# --------------------------------------------------------------------------- one layer


def _plan_layer(
    node: GraphNode,
    kind: LayerType,
    args: dict[str, Any],
    inputs: list[Value],
    context: _Naming,
    planner: _Planner,
) -> LayerRow:
    shapes = tuple(shape for shape, _ in inputs)
    layer = PlannedLayer(
        label=context.label(node),
        kind=kind,
        args=args,
        inputs=shapes,
        sources=node.inputs,
        index=context.index(node),
        where=context.key_path(node),
        vocab_size=planner.vocab_size,
        tokens=planner.tokens,
    )
    input_dtype = _check_dtypes(layer, [dtype for _, dtype in inputs])
    check_rank(layer, CATALOGUE)
    output_shape = kind.rules.output_shape(layer)
    dtype = kind.output_dtype or input_dtype
    resolved = frozen_mapping({**layer.args, **dict(kind.fixed)})
    module = _meta_module(layer, resolved)
    _cross_check(layer, module, output_shape, input_dtype)
    parameters = list(module.parameters())
    return LayerRow(
        index=node.index,
        type=kind.name,
        resolved=resolved,
        input_shape=shapes[0],
        output_shape=output_shape,
        parameters=sum(p.numel() for p in parameters),
        trainable=sum(p.numel() for p in parameters if p.requires_grad),
        macs=kind.rules.macs(layer, output_shape),
        name=node.name,
        inputs=node.inputs,
        input_shapes=shapes,
        path=context.path(node),
        dtype=dtype,
        buffers=sum(b.numel() for b in module.buffers()),
    )


def _check_dtypes(layer: PlannedLayer, dtypes: list[str]) -> str:
    if len(set(dtypes)) > 1:
        raise layer.bad_input(
            f"its inputs have different dtypes ({', '.join(dtypes)}); join values of one kind"
        )
    dtype = dtypes[0]
    if dtype not in layer.kind.input_dtypes and dtype == "float32":
        raise layer.error(
            f"{layer.label} ({layer.kind.name}) receives float32 values, but it needs token "
            'ids (long); give the model token ids: text data, or model.input_dtype = "long"'
        )
    if dtype not in layer.kind.input_dtypes:
        raise layer.error(
            f"{layer.label} ({layer.kind.name}) receives {dtype} values (token ids), but it "
            f"needs {', '.join(layer.kind.input_dtypes)}; token ids go through an embedding "
            'layer first, or set model.input_dtype = "float32"'
        )
    return dtype


def _meta_module(layer: PlannedLayer, resolved: Mapping[str, Any]) -> nn.Module:
    try:
        with torch.device("meta"):
            return layer.kind.module_class(**resolved)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise layer.bad_param(f"torch refuses these parameters: {first_line(exc)}") from None


def _check_samples(layer: PlannedLayer, module: nn.Module, dtype: str) -> list[torch.Tensor]:
    """A batch of 2 (BatchNorm needs > 1) on the CPU when small, else on the meta device.

    The first meta-device forward imports torch's reference kernels (seconds), which would make
    every start of the window slow; real but uninitialised memory is used instead, so no
    weights are initialised and no random numbers are drawn.
    """
    shapes = [(2, *shape) for shape in layer.inputs]
    tensors = [*module.parameters(), *module.buffers()]
    elements = sum(t.numel() for t in tensors) + sum(math.prod(shape) for shape in shapes)
    if elements <= CPU_CHECK_ELEMENTS and not layer.kind.check_on_meta:
        # What `to_empty` does, minus its `empty_like` of meta tensors: that goes through torch's
        # reference kernels, which import sympy (a second or more at every window start).
        module._apply(lambda t: torch.empty(t.shape, dtype=t.dtype)).eval()  # type: ignore[no-untyped-call]
        return [torch.zeros(shape, dtype=DTYPES[dtype]) for shape in shapes]
    return [torch.empty(shape, device="meta", dtype=DTYPES[dtype]) for shape in shapes]


def _cross_check(layer: PlannedLayer, module: nn.Module, expected: Shape, dtype: str) -> None:
    """Run the layer on a sample batch, so the rules can never silently disagree with torch."""
    samples = _check_samples(layer, module, dtype)
    try:
        # Warnings here are about speed (e.g. 'same' padding with an even kernel), not shapes.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = module(*samples)
            if layer.kind.tuple_output:
                output = output[0]
            actual = tuple(output.shape[1:])
    except Exception as exc:  # noqa: BLE001 - torch raises many types; any refusal is the user's to fix
        raise layer.bad_input(f"torch refuses it: {first_line(exc)}") from None
    if actual != expected:
        raise layer.bad_input(
            f"workbench computed the output {show(expected)} but torch gives {show(actual)}; "
            "this is a workbench bug, please report it"
        )


def resolve_input_shape(spec: ModelSpec, input_shape: Sequence[int] | None) -> Shape:
    """The shape one sample has: `input_shape`, else `model.input_shape`; checked."""
    shape = input_shape if input_shape is not None else spec.input_shape
    if shape is None:
        raise ModelBuildError(
            "the model's input shape is unknown; set model.input_shape, "
            "e.g. [1, 28, 28] for MNIST images or [2] for points in the plane"
        )
    values = tuple(shape)
    if not values or not all(is_int(value) and value >= 1 for value in values):
        raise ModelBuildError(
            f"input shape {show(values)} is not valid; give the positive size of each "
            "dimension of one sample, without the batch dimension, e.g. [1, 28, 28]"
        )
    return values
