"""The model as a diagram: one box per layer, top to bottom in running order, output shapes on the
edges, blocks collapsible; drag from a layer's output port to a merge layer to connect them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QSignalBlocker, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSceneMouseEvent,
    QGraphicsSimpleTextItem,
    QGraphicsTextItem,
    QGraphicsView,
    QLabel,
    QStyleOptionGraphicsItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.layers import CATALOGUE, layer_label
from workbench.engine.model_builder import LayerRow
from workbench.engine.model_graph import Graph, GraphNode, block_graph, model_graph
from workbench.engine.model_spec import INPUT, ModelSpec
from workbench.ui.layer_stack_model import LayerStackModel, show_shape
from workbench.ui.widgets import named

NODE_WIDTH, NODE_HEIGHT, GAP, INDENT = 240.0, 46.0, 36.0, 28.0
PORT_RADIUS = 6.0
PROBLEM_WIDTH = 300.0
LANE = 30.0  # how far each further skip edge bulges out to the right
PROBLEM_COLOUR = QColor("#b71c1c")
SELECTED_COLOUR = QColor("#1565c0")
BORDER_COLOUR = QColor("#5f6b7a")
MERGE_FILL, LAYER_FILL, INPUT_FILL = QColor("#fff4e0"), QColor("#f4f7fb"), QColor("#e8f5e9")
BLOCK_FILL = QColor("#ede7f6")
EDGE_COLOUR = QColor("#7a8594")
CONNECT_HINT = "Drag from a layer's output (○) onto an Add, Mul or Concat to connect them"


class NodeItem(QGraphicsRectItem):
    """One layer's box: its name and label, a red outline with the planner's message when it
    has a problem, and an output port to drag connections from."""

    def __init__(
        self,
        name: str,
        title: str,
        subtitle: str,
        row: int | None,
        problem: str | None = None,
        fill: QColor = LAYER_FILL,
    ) -> None:
        super().__init__(0.0, 0.0, NODE_WIDTH, NODE_HEIGHT)
        self.name, self.row, self.problem = name, row, problem
        self.fill = fill
        self.targeted = False  # a connection being dragged would land here
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, row is not None)
        bold = QFont()
        bold.setBold(True)
        self.title = QGraphicsSimpleTextItem(title, self)
        self.title.setFont(bold)
        self.title.setPos(10.0, 5.0)
        self.subtitle = QGraphicsSimpleTextItem(_elided(subtitle, 34), self)
        self.subtitle.setPos(10.0, 24.0)
        self.port = PortItem(self)
        self.problem_text: QGraphicsTextItem | None = None
        tip = f"{title}: {subtitle}"
        if problem:
            # Beside the box, on the left: the edges run below and to the right of it.
            self.problem_text = QGraphicsTextItem(f"⚠ {problem}", self)
            self.problem_text.setDefaultTextColor(PROBLEM_COLOUR)
            self.problem_text.setTextWidth(PROBLEM_WIDTH)
            option = self.problem_text.document().defaultTextOption()
            option.setAlignment(Qt.AlignmentFlag.AlignRight)
            self.problem_text.document().setDefaultTextOption(option)
            self.problem_text.setPos(-PROBLEM_WIDTH - 12.0, -2.0)
            tip = f"{tip}\n{problem}"
        self.setToolTip(tip)

    @property
    def extra_height(self) -> float:
        """Room the problem message takes below the box (beside it, where it is longer)."""
        if self.problem_text is None:
            return 0.0
        return max(self.problem_text.boundingRect().height() - NODE_HEIGHT, 0.0)

    def bottom(self) -> QPointF:
        return self.mapToScene(QPointF(NODE_WIDTH / 2, NODE_HEIGHT))

    def top(self) -> QPointF:
        return self.mapToScene(QPointF(NODE_WIDTH / 2, 0.0))

    def side(self) -> QPointF:
        return self.mapToScene(QPointF(NODE_WIDTH, NODE_HEIGHT / 2))

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        colour = PROBLEM_COLOUR if self.problem else BORDER_COLOUR
        width = 2.5 if self.problem else 1.2
        if self.isSelected() or self.targeted:
            colour, width = (PROBLEM_COLOUR if self.problem else SELECTED_COLOUR), 3.0
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, width))
        painter.setBrush(QBrush(self.fill))
        painter.drawRoundedRect(self.rect(), 7.0, 7.0)

    @property
    def outline(self) -> QColor:
        """The colour of the box's outline (red with a problem)."""
        return PROBLEM_COLOUR if self.problem else BORDER_COLOUR


class PortItem(QGraphicsEllipseItem):
    """The output port at the bottom of a box: press here and drag onto a merge layer."""

    def __init__(self, node: NodeItem) -> None:
        size = 2 * PORT_RADIUS
        super().__init__(NODE_WIDTH / 2 - PORT_RADIUS, NODE_HEIGHT - PORT_RADIUS, size, size, node)
        self.node = node
        self.setBrush(QBrush(QColor("#ffffff")))
        self.setPen(QPen(BORDER_COLOUR, 1.5))
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip(f"{node.name}'s output: drag onto an Add, Mul or Concat to connect")
        self.setZValue(2.0)


class ToggleItem(QGraphicsSimpleTextItem):
    """The ▸ / ▾ on a block's box that shows or hides the block's layers."""

    def __init__(self, node: NodeItem, block: str, expanded: bool) -> None:
        super().__init__("▾" if expanded else "▸", node)
        self.block = block
        self.setPos(NODE_WIDTH - 22.0, 12.0)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(("Hide" if expanded else "Show") + " the block's layers")
        self.setZValue(2.0)


class GraphScene(QGraphicsScene):
    """Selection as usual; a press on a port starts a connection, released on a merge layer
    it asks for it (`connect_requested(source name, target row)`)."""

    connect_requested = Signal(str, int)
    toggle_requested = Signal(str)
    connect_refused = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._drag: tuple[PortItem, QGraphicsLineItem] | None = None

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        item = self._top_item(event.scenePos())
        if event.button() == Qt.MouseButton.LeftButton and isinstance(item, PortItem):
            start = item.node.bottom()
            line = QGraphicsLineItem(start.x(), start.y(), start.x(), start.y())
            line.setPen(QPen(SELECTED_COLOUR, 2.0, Qt.PenStyle.DashLine))
            line.setZValue(5.0)
            self.addItem(line)
            self._drag = (item, line)
            event.accept()
            return
        if isinstance(item, ToggleItem):
            self.toggle_requested.emit(item.block)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        """A double-click on a block's box opens or closes it, like its ▸."""
        node = self.node_at(event.scenePos())
        toggles = [c for c in node.childItems() if isinstance(c, ToggleItem)] if node else []
        if toggles:
            self.toggle_requested.emit(toggles[0].block)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag is not None:
            port, line = self._drag
            start = port.node.bottom()
            line.setLine(start.x(), start.y(), event.scenePos().x(), event.scenePos().y())
            self._target(self.node_at(event.scenePos()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag is None:
            super().mouseReleaseEvent(event)
            return
        port, line = self._drag
        self._drag = None
        self._target(None)
        self.removeItem(line)
        event.accept()
        source, target = port.node, self.node_at(event.scenePos())
        if target is None or target is source:
            return
        if target.row is None:
            self.connect_refused.emit(
                f"{target.name} is inside a block or the input; connect to a layer of the model"
            )
            return
        self.connect_requested.emit(source.name, target.row)

    def _target(self, node: NodeItem | None) -> None:
        """Outline the box a connection would land on (only one at a time)."""
        for item in self.items():
            if isinstance(item, NodeItem) and item.targeted != (item is node):
                item.targeted = item is node
                item.update()

    def node_at(self, position: QPointF) -> NodeItem | None:
        """The layer box under a scene position (its texts and port count as the box)."""
        for item in self.items(position):
            while item is not None and not isinstance(item, NodeItem):
                item = item.parentItem()
            if isinstance(item, NodeItem):
                return item
        return None

    def _top_item(self, position: QPointF) -> QGraphicsItem | None:
        items = self.items(position)
        return items[0] if items else None


@dataclass
class _Out:
    """Where a named output leaves the diagram: its box and the shape it carries."""

    item: NodeItem
    shape: Sequence[int] | None
    slot: int  # its position top to bottom: the next slot's edge is a straight line


class GraphDiagram(QWidget):
    """Follows a LayerStackModel: rebuilt after every re-plan; `row_selected(row)` when a box
    is clicked, `select_row(row)` from the stack; dragging a port onto a merge layer calls
    `model.connect_layers` (one undo step)."""

    row_selected = Signal(int)

    def __init__(self, model: LayerStackModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphDiagramPanel")
        self.model = model
        self.scene = GraphScene(self)
        self.view = QGraphicsView(self.scene)
        named(self.view, "graphDiagram", "The model's layers as a graph; " + CONNECT_HINT)
        self.view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.view.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.view.viewport().setMouseTracking(True)
        self.hint = QLabel(CONNECT_HINT)
        self.hint.setObjectName("graphDiagramHint")
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hint)
        self.expanded: set[str] = set()  # names of the block uses shown open
        self.nodes: dict[str, NodeItem] = {}
        self._selected: int | None = None
        self._stale = False  # a plan arrived while hidden: drawn when next shown or asked
        model.plan_changed.connect(lambda _plan: self._plan_changed())
        model.edit_refused.connect(self._say)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.connect_requested.connect(self._connect)
        self.scene.connect_refused.connect(self._say)
        self.scene.toggle_requested.connect(self.toggle_block)
        self.rebuild()

    # facts ---------------------------------------------------------------------------
    def node(self, name: str) -> NodeItem:
        """The box of the layer (or `input`, or `layer1.0.conv1` inside an open block)."""
        self.draw_if_stale()
        return self.nodes[name]

    def node_for_row(self, row: int) -> NodeItem | None:
        self.draw_if_stale()
        return next((node for node in self.nodes.values() if node.row == row), None)

    def draw_if_stale(self) -> None:
        if self._stale:
            self.rebuild()

    def _plan_changed(self) -> None:
        """Draw now if on screen; else when next shown. A hidden diagram redrawn at every
        re-plan (a run starting makes the stack read-only) would stall the window mid-run."""
        if self.isVisible():
            self.rebuild()
        else:
            self._stale = True

    def showEvent(self, event: QShowEvent) -> None:
        self.draw_if_stale()
        super().showEvent(event)

    # intents -------------------------------------------------------------------------
    def select_row(self, row: int | None) -> None:
        """Show layer `row` selected (the stack's selection), without echoing it back."""
        self._selected = row
        blocker = QSignalBlocker(self.scene)
        self.scene.clearSelection()
        node = self.node_for_row(row) if row is not None else None
        if node is not None:
            node.setSelected(True)
            self.view.ensureVisible(node)
        del blocker
        self.scene.update()

    def toggle_block(self, name: str) -> None:
        """Show or hide the layers of the block used as layer `name`."""
        self.expanded.symmetric_difference_update({name})
        self.rebuild()

    def rebuild(self) -> None:
        self._stale = False
        blocker = QSignalBlocker(self.scene)
        self.scene.clear()
        self.nodes = {}
        _Layout(self, self.model).place()
        rect = self.scene.itemsBoundingRect().adjusted(-24.0, -24.0, 24.0, 24.0)
        self.scene.setSceneRect(rect)
        del blocker
        self.select_row(self._selected)

    # following the scene ---------------------------------------------------------------
    def _selection_changed(self) -> None:
        picked = [item for item in self.scene.selectedItems() if isinstance(item, NodeItem)]
        if picked and picked[0].row is not None:
            self._selected = picked[0].row
            self.row_selected.emit(picked[0].row)

    def _connect(self, source: str, row: int) -> None:
        if self.model.connect_layers(source, row):
            self.hint.setText(f"{self.model.layer(row).type} now also takes {source}")
            self.hint.setStyleSheet("")

    def _say(self, message: str) -> None:
        self.hint.setText(f"⚠ {message}")
        self.hint.setStyleSheet(f"color: {PROBLEM_COLOUR.name()};")


class _Layout:
    """Places the boxes of one plan top to bottom and draws the edges between them."""

    def __init__(self, diagram: GraphDiagram, model: LayerStackModel) -> None:
        self.diagram, self.model = diagram, model
        self.scene = diagram.scene
        self.spec: ModelSpec = model.document.experiment.model
        self.y = 0.0
        self.slot = 0
        self.lanes = 0

    def place(self) -> None:
        plan = self.model.plan
        shape = plan.input_shape or self.model.input_shape
        inputs = NodeItem(INPUT, "Input", show_shape(shape) if shape else "?", None, None)
        inputs.fill = INPUT_FILL
        outs = {INPUT: self._put(inputs, 0.0, shape or None)}
        graph = model_graph(self.spec)
        order = [*graph.order, *(n.index for n in graph.nodes if n.index not in graph.order)]
        for index in order:
            node = graph.nodes[index]
            row = plan.row_at(index)
            box = self._layer_box(node, row, index)
            self._edges(node.inputs, outs, 0.0)
            out_shape = row.output_shape if row is not None else None
            if node.layer.type in self.spec.blocks and node.name in self.diagram.expanded:
                outs[node.name] = self._open_block(node, row, box, out_shape)
            else:
                outs[node.name] = self._put(box, 0.0, out_shape)

    def _layer_box(self, node: GraphNode, row: LayerRow | None, index: int) -> NodeItem:
        layer = node.layer
        title = layer.name or f"layer {index}"
        label = layer_label(layer, row.resolved if row is not None else None)
        kind = CATALOGUE.get(layer.type)
        block = layer.type in self.spec.blocks
        fill = BLOCK_FILL if block else MERGE_FILL if kind and kind.is_merge else LAYER_FILL
        box = NodeItem(node.name, title, label, index, self.model.row_problem(index), fill)
        if block:
            ToggleItem(box, node.name, node.name in self.diagram.expanded)
        return box

    def _put(self, box: NodeItem, x: float, shape: Sequence[int] | None = None) -> _Out:
        self.scene.addItem(box)
        box.setPos(x, self.y)
        self.y += NODE_HEIGHT + GAP + box.extra_height
        self.diagram.nodes[box.name] = box
        self.slot += 1
        return _Out(box, shape, self.slot - 1)

    def _open_block(
        self, node: GraphNode, row: LayerRow | None, box: NodeItem, shape: Sequence[int] | None
    ) -> _Out:
        """The block's box, then each repeat's layers indented under it, framed."""
        top = self.y
        last = self._put(box, 0.0, shape)
        if row is None or not row.blocks:
            return last
        graph = block_graph(self.spec, node.layer.type)
        for repeat, rows in enumerate(row.blocks):
            last = self._repeat(graph, rows, f"{node.name}.{repeat}", last)
        height = self.y - GAP - top + 12.0  # to just below the last box, clear of its label
        frame = QGraphicsRectItem(-8.0, top - 8.0, NODE_WIDTH + INDENT + 16.0, height)
        frame.setPen(QPen(BORDER_COLOUR, 1.0, Qt.PenStyle.DashLine))
        frame.setZValue(-2.0)
        self.scene.addItem(frame)
        return _Out(last.item, shape, last.slot)

    def _repeat(self, graph: Graph, rows: Sequence[LayerRow], prefix: str, start: _Out) -> _Out:
        outs = {INPUT: start}
        by_name = {row.name: row for row in rows}
        for index in graph.order:
            inner = graph.nodes[index]
            row = by_name.get(inner.name)
            label = layer_label(inner.layer, row.resolved if row is not None else None)
            kind = CATALOGUE.get(inner.layer.type)
            fill = MERGE_FILL if kind and kind.is_merge else LAYER_FILL
            name = f"{prefix}.{inner.name}"  # its module path: the prefix of its state_dict keys
            box = NodeItem(name, name, label, None, fill=fill)
            self._edges(inner.inputs, outs, INDENT)
            outs[inner.name] = self._put(box, INDENT, row.output_shape if row else None)
        return outs.get(graph.output or "", start)

    def _edges(self, sources: Sequence[str], outs: dict[str, _Out], x: float) -> None:
        """Draw each input's edge into the box that goes in the next slot down, at `x`."""
        top = QPointF(x + NODE_WIDTH / 2, self.y)
        for source in sources:
            out = outs.get(source)
            if out is None:
                continue  # a dangling name: the planner's message is on the box
            shape = show_shape(out.shape) if out.shape is not None else "?"
            if out.slot == self.slot - 1 and source == sources[0]:
                self._straight(out.item.bottom(), top, shape)
            else:
                self._skip(out.item, top, x, shape)

    def _straight(self, start: QPointF, end: QPointF, label: str) -> None:
        path = QPainterPath(start)
        path.cubicTo(
            QPointF(start.x(), (start.y() + end.y()) / 2),
            QPointF(end.x(), (start.y() + end.y()) / 2),
            end,
        )
        self._path(path, end, QPointF(0.0, 1.0))
        self._label(label, QPointF(max(start.x(), end.x()) + 10.0, start.y() + 9.0))

    def _skip(self, source: NodeItem, top: QPointF, x: float, label: str) -> None:
        """An edge past other boxes: out of the source's right side, bulging right, into the
        target's right side."""
        self.lanes += 1
        start = source.side()
        end = QPointF(x + NODE_WIDTH, top.y() + NODE_HEIGHT / 2)
        bulge = max(start.x(), end.x()) + 30.0 + LANE * self.lanes
        path = QPainterPath(start)
        path.cubicTo(QPointF(bulge, start.y()), QPointF(bulge, end.y()), end)
        self._path(path, end, QPointF(-1.0, 0.0))
        middle = path.pointAtPercent(0.5)
        self._label(label, QPointF(middle.x() + 6.0, middle.y() - 8.0))

    def _path(self, path: QPainterPath, end: QPointF, direction: QPointF) -> None:
        item = QGraphicsPathItem(path)
        item.setPen(QPen(EDGE_COLOUR, 1.4))
        item.setZValue(-1.0)
        self.scene.addItem(item)
        tip = QPolygonF(
            [
                end,
                end - direction * 8.0 + QPointF(direction.y(), direction.x()) * 4.0,
                end - direction * 8.0 - QPointF(direction.y(), direction.x()) * 4.0,
            ]
        )
        arrow = self.scene.addPolygon(tip, QPen(EDGE_COLOUR), QBrush(EDGE_COLOUR))
        arrow.setZValue(-1.0)

    def _label(self, text: str, position: QPointF) -> None:
        item = self.scene.addSimpleText(text)
        font = item.font()
        font.setPointSizeF(max(font.pointSizeF() - 1.0, 6.0))
        item.setFont(font)
        item.setBrush(QBrush(EDGE_COLOUR))
        item.setPos(position)
        item.setData(0, "edge-label")


def _elided(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def edge_labels(scene: QGraphicsScene) -> list[str]:
    """The shapes written on the edges, top to bottom (for tests and accessibility)."""
    labels = [
        item
        for item in scene.items()
        if isinstance(item, QGraphicsSimpleTextItem) and item.data(0) == "edge-label"
    ]
    return [item.text() for item in sorted(labels, key=lambda item: (item.y(), item.x()))]
