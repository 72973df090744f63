"""The autograd graph of one forward pass, drawn in layers: what `loss.backward()` walks."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from workbench.engine.insight.autograd_graph import (
    PARAMETER,
    ROOT,
    AutogradGraph,
    GraphNode,
    layered_layout,
)

NODE_HEIGHT = 30
ROW_GAP = 34
COLUMN_GAP = 18
PADDING = 12
STYLES = {  # fill, border: parameters green, operations blue, the loss red
    PARAMETER: ("#D9F2E6", "#009E73"),
    ROOT: ("#FBE3D6", "#D55E00"),
    "operation": ("#DCEBF7", "#0072B2"),
}


class AutogradGraphView(QGraphicsView):
    """Nodes are the grad_fn objects (AddmmBackward0, ReluBackward0, ...); parameter leaves
    (AccumulateGrad) show their names, e.g. 0.weight. The forward pass runs top to bottom,
    to the loss; `loss.backward()` walks the arrows in reverse. Wheel zooms."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("autogradGraphView")
        self.setAccessibleName("autogradGraphView")
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor("white"))
        self.graph: AutogradGraph | None = None
        self.node_items: dict[int, QGraphicsRectItem] = {}
        self.font_ = QFont()
        self.font_.setPointSize(10)

    def set_graph(self, graph: AutogradGraph) -> None:
        scene = self.scene()
        scene.clear()
        self.graph, self.node_items = graph, {}
        layout = layered_layout(graph)
        widths = {node.id: self._text_width(node) + 2 * PADDING for node in graph.nodes}
        slot = max(widths.values(), default=100) + COLUMN_GAP
        centres: dict[int, QPointF] = {}
        for node in graph.nodes:
            row, position = layout[node.id]
            centres[node.id] = QPointF(position * slot, row * (NODE_HEIGHT + ROW_GAP))
        for source, target in graph.edges:
            self._edge(centres[source], centres[target])
        for node in graph.nodes:
            self._node(node, centres[node.id], widths[node.id])
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
        self.fit()

    def fit(self) -> None:
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        if self.transform().m11() > 1.2:  # small graphs keep a readable, not a giant, size
            self.resetTransform()
            self.scale(1.2, 1.2)

    def _text_width(self, node: GraphNode) -> float:
        probe = QGraphicsSimpleTextItem(node.label)
        probe.setFont(self._font(node))
        return probe.boundingRect().width()

    def _font(self, node: GraphNode) -> QFont:
        font = QFont(self.font_)
        font.setBold(node.kind != "operation")
        return font

    def _node(self, node: GraphNode, centre: QPointF, width: float) -> None:
        fill, border = STYLES[node.kind]
        rect = QRectF(centre.x() - width / 2, centre.y() - NODE_HEIGHT / 2, width, NODE_HEIGHT)
        path = QPainterPath()
        path.addRoundedRect(rect, 8, 8)
        box = QGraphicsRectItem(rect)
        box.setPen(QPen(Qt.PenStyle.NoPen))
        shape = QGraphicsPathItem(path, box)
        shape.setBrush(QBrush(QColor(fill)))
        shape.setPen(QPen(QColor(border), 1.6))
        text = QGraphicsSimpleTextItem(node.label, box)
        text.setFont(self._font(node))
        bounds = text.boundingRect()
        text.setPos(centre.x() - bounds.width() / 2, centre.y() - bounds.height() / 2)
        tip = node.name if node.parameter is None else f"{node.parameter}: AccumulateGrad"
        if node.shape is not None:
            tip += f", shape {list(node.shape)}"
        box.setToolTip(tip)
        box.setZValue(2)
        self.scene().addItem(box)
        self.node_items[node.id] = box

    def _edge(self, start: QPointF, end: QPointF) -> None:
        """A curve from the bottom of the source to the top of the target, with an arrow head."""
        begin = QPointF(start.x(), start.y() + NODE_HEIGHT / 2)
        finish = QPointF(end.x(), end.y() - NODE_HEIGHT / 2)
        path = QPainterPath(begin)
        middle = (begin.y() + finish.y()) / 2
        path.cubicTo(QPointF(begin.x(), middle), QPointF(finish.x(), middle), finish)
        colour = QColor("#707070")
        curve = QGraphicsPathItem(path)
        curve.setPen(QPen(colour, 1.3))
        curve.setZValue(0)
        head = QPolygonF(
            [
                finish,
                QPointF(finish.x() - 4.5, finish.y() - 8),
                QPointF(finish.x() + 4.5, finish.y() - 8),
            ]
        )
        arrow = QGraphicsPathItem(curve)
        arrow_path = QPainterPath()
        arrow_path.addPolygon(head)
        arrow_path.closeSubpath()
        arrow.setPath(arrow_path)
        arrow.setBrush(QBrush(colour))
        arrow.setPen(QPen(Qt.PenStyle.NoPen))
        self.scene().addItem(curve)

    def wheelEvent(self, event: QWheelEvent) -> None:
        factor = 1.15 if event.angleDelta().y() > 0 else 1 / 1.15
        self.scale(factor, factor)

    def items_named(self, label: str) -> list[QGraphicsItem]:
        """The node boxes showing `label` (for tests and highlighting)."""
        assert self.graph is not None
        return [self.node_items[n.id] for n in self.graph.nodes if n.label == label]
