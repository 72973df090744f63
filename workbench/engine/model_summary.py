"""The model summary: print(model), a per-layer table (with names and inputs for graphs), totals."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from workbench.engine.layer_rules import show
from workbench.engine.model_planner import LayerRow

Shape = tuple[int, ...]


def summary_table(
    rows: Sequence[LayerRow], input_shape: Shape, *, names: bool = False, inputs: bool = False
) -> str:
    """Aligned text table: #, layer, output shape, params, MACs, with an input and a total row.

    `names` adds the layers' names, `inputs` what each takes (for graph models); a block's use
    is followed by the layers of each repeat, indented, their counts already in its own.
    """
    columns = ["#", *(["name"] if names else []), "layer", *(["inputs"] if inputs else [])]
    columns += ["output shape", "params", "MACs"]

    def line(index: str, name: str, layer: str, taken: str, shape: str, *counts: str) -> list[str]:
        cells = [index, *([name] if names else []), layer, *([taken] if inputs else []), shape]
        return [*cells, *counts]

    first = line("", "input", "", "", show(input_shape), "", "")
    if not names:
        first[1] = "input"
    body = [first]
    for row, depth in _walk(rows):
        number = str(row.index) if depth == 0 else ""
        name = "  " * depth + (row.path if depth else row.name)
        layer = _block_text(row) if row.blocks else _repeat_text(row)
        counts = (f"{row.parameters:,}", f"{row.macs:,}")
        body.append(
            line(number, name, layer, ", ".join(row.inputs), show(row.output_shape), *counts)
        )
    totals = (f"{sum(r.parameters for r in rows):,}", f"{sum(r.macs for r in rows):,}")
    total = line("", "total", "total", "", "", *totals)
    if names:
        total[columns.index("layer")] = ""
    header = columns
    widths = [max(len(cells[c]) for cells in (header, *body, total)) for c in range(len(header))]
    right = [name in ("#", "params", "MACs") for name in header]

    def render(cells: Sequence[str]) -> str:
        parts = zip(cells, widths, right, strict=True)
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *map(render, body), rule, render(total)])


def _walk(rows: Sequence[LayerRow], depth: int = 0) -> Iterator[tuple[LayerRow, int]]:
    for row in rows:
        yield row, depth
        for repeat in row.blocks:
            yield from _walk(repeat, depth + 1)


def _block_text(row: LayerRow) -> str:
    count = len(row.blocks)
    return row.type if count == 1 else f"{row.type} ×{count}"


def _repeat_text(row: LayerRow) -> str:
    return row.type if row.repeat == 1 else f"{row.type} ×{row.repeat}"
