"""Builds the planned model: an nn.Sequential for a chain of layers, a graph module otherwise.

The model is planned first (engine/model_planner.py), then checked against the memory it
would take, then made with torch's own constructors in file order.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from workbench.engine.errors import ModelBuildError
from workbench.engine.graph_module import GraphModel, GraphProgram
from workbench.engine.layer_rules import first_line
from workbench.engine.layers import CATALOGUE
from workbench.engine.model_graph import Graph, block_graph, model_graph
from workbench.engine.model_planner import LayerRow as LayerRow
from workbench.engine.model_planner import ModelPlan as ModelPlan
from workbench.engine.model_planner import plan_model as plan_model
from workbench.engine.model_spec import INPUT, ModelSpec
from workbench.engine.model_summary import summary_table as summary_table
from workbench.engine.module_summary import ModuleRow, module_table

if TYPE_CHECKING:
    from workbench.engine.own_model import CodeModel

Shape = tuple[int, ...]
MODEL_CLASS_NAME = "Net"  # what a graph model prints as, like the class of hand-written code
BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """A freshly initialised model and the per-layer facts about it."""

    module: nn.Module
    rows: tuple[LayerRow, ...]
    input_shape: Shape
    output_shape: Shape
    total_parameters: int
    trainable_parameters: int
    total_macs: int
    plan: ModelPlan | None = None
    code: CodeModel | None = None  # the user's own code: where it came from (own_model.py)
    module_rows: tuple[ModuleRow, ...] = ()  # its module tree, surveyed with forward hooks

    @property
    def is_chain(self) -> bool:
        return self.plan is None or self.plan.is_chain

    @property
    def input_dtype(self) -> str:
        """ "long" for token ids, else "float32"."""
        return "float32" if self.plan is None else self.plan.input_dtype

    def table(self) -> str:
        if self.code is not None:
            rows, shapes = self.module_rows, (self.input_shape, self.output_shape)
            return module_table(rows, *shapes, self.total_parameters)
        named = any(row.name != str(row.index) or row.blocks for row in self.rows)
        return summary_table(self.rows, self.input_shape, names=named, inputs=not self.is_chain)


def build_model(
    spec: ModelSpec,
    input_shape: Sequence[int] | None = None,
    *,
    vocab_size: int | None = None,
    input_dtype: str | None = None,
) -> BuiltModel:
    """Build the model; the first problem is raised as a ModelBuildError.

    `input_shape` (per sample) defaults to `spec.input_shape`; `vocab_size` and `input_dtype`
    are the data's (see `plan_model`). Weights are initialised by torch's own constructors in
    file order (a block's repeats in turn), so seeding torch's global RNG first makes the build
    reproducible and identical to hand-written code that creates the same modules in the same
    order. A model from code (`spec.module`) is imported and made by engine/own_model.py.
    """
    if spec.module is not None:
        from workbench.engine.own_model import build_code_model

        return build_code_model(spec, input_shape)
    plan = plan_model(spec, input_shape, vocab_size=vocab_size, input_dtype=input_dtype)
    if plan.problem is not None:
        problem = plan.problem
        raise ModelBuildError(str(problem), problem.layer_index, problem.key_path)
    check_memory(plan)
    try:
        module = _Maker(spec).model(plan)
    except RuntimeError as exc:  # the allocator, when the memory estimate was not enough
        raise ModelBuildError(
            f"not enough memory to build the model ({first_line(exc)}); use smaller layers"
        ) from None
    assert plan.output_shape is not None
    return BuiltModel(
        module=module,
        rows=plan.rows,
        input_shape=plan.input_shape,
        output_shape=plan.output_shape,
        total_parameters=sum(row.parameters for row in plan.rows),
        trainable_parameters=sum(row.trainable for row in plan.rows),
        total_macs=sum(row.macs for row in plan.rows),
        plan=plan,
    )


def summary_text(built: BuiltModel) -> str:
    """What `workbench summary` prints and the Model tab shows: print(model), the table, the total."""
    total, trainable = built.total_parameters, built.trainable_parameters
    frozen = (
        [f"Parameters: {total:,}, of which {trainable:,} trainable ({total - trainable:,} frozen)"]
        if trainable != total
        else []
    )
    return "\n".join(
        [
            str(built.module),
            "",
            built.table(),
            "",
            *frozen,
            f"Total number of trainable model parameters: {trainable}",
        ]
    )


# --------------------------------------------------------------------------- making modules


class _Maker:
    """Makes modules from planned rows, in file order, each block's repeat as its own module."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def model(self, plan: ModelPlan) -> nn.Module:
        children = [(row.name, self.layer(row)) for row in plan.rows]
        # A layer returning a tuple (LSTM) cannot sit in an nn.Sequential: the forward takes
        # its item 0, so such a chain is built as a graph (the same keys and printout names).
        if plan.is_chain and not any(_gives_tuple(row.type) for row in plan.rows):
            return nn.Sequential(OrderedDict(children))
        return GraphModel(MODEL_CLASS_NAME, children, program(model_graph(self.spec)))

    def layer(self, row: LayerRow) -> nn.Module:
        if row.repeat > 1:  # copies made in turn, each initialised by its own constructor
            kind = CATALOGUE[row.type].module_class
            return nn.Sequential(*(kind(**row.resolved) for _ in range(row.repeat)))
        if not row.blocks:
            return CATALOGUE[row.type].module_class(**row.resolved)
        flow = program(block_graph(self.spec, row.type))
        return nn.Sequential(
            *(
                GraphModel(row.type, [(inner.name, self.layer(inner)) for inner in rows], flow)
                for rows in row.blocks
            )
        )


def program(graph: Graph) -> GraphProgram:
    """The graph's running order as slots: 0 is the input, k the k-th layer run."""
    slots = {INPUT: 0}
    steps = []
    for step, index in enumerate(graph.order, 1):
        node = graph.nodes[index]
        steps.append((node.name, tuple(slots[source] for source in node.inputs)))
        slots[node.name] = step
    assert graph.output is not None
    first_item = frozenset(node.name for node in graph.nodes if _gives_tuple(node.layer.type))
    return GraphProgram(tuple(steps), slots[graph.output], first_item)


def _gives_tuple(type_name: str) -> bool:
    kind = CATALOGUE.get(type_name)
    return kind is not None and kind.tuple_output


# --------------------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes of memory free for new allocations, or None when the system does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(plan: ModelPlan) -> None:
    """Refuse, before allocating, a model whose weights alone would not fit in memory."""
    values = sum(row.parameters + row.buffers for row in plan.rows)
    needed = values * BYTES_PER_VALUE
    available = available_memory()
    if available is None or needed <= available:
        return
    largest = max(_leaves(plan.rows), key=lambda row: row.parameters)
    raise ModelBuildError(
        f"the model would need {_gigabytes(needed)} of parameters ({values:,} float32 values), "
        f"more than the {_gigabytes(available)} of memory available; make the layers smaller "
        f"(the largest, {_row_label(largest)} ({largest.type}), holds {largest.parameters:,})",
        largest.index,
    )


def _leaves(rows: Sequence[LayerRow]) -> list[LayerRow]:
    found: list[LayerRow] = []
    for row in rows:
        found += [leaf for repeat in row.blocks for leaf in _leaves(repeat)] or [row]
    return found


def _row_label(row: LayerRow) -> str:
    if "." in row.path:
        return row.path
    return f"layer {row.index}" + ("" if row.name == str(row.index) else f" '{row.name}'")


def _gigabytes(size: int) -> str:
    """`20,000 GB`, `4.0 GB`, or `4.0 MB` below a gigabyte."""
    amount, unit = (size / 1e9, "GB") if size >= 1e9 else (size / 1e6, "MB")
    return f"{amount:,.0f} {unit}" if amount >= 10 else f"{amount:.1f} {unit}"
