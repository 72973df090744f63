"""The profile's per-layer rows as a table whose share column is a horizontal bar chart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QRect, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

if TYPE_CHECKING:
    from workbench.engine.profiling import LayerProfile, ProfileReport

AnyIndex = QModelIndex | QPersistentModelIndex
W = TypeVar("W", bound=QWidget)
SHARE_ROLE = Qt.ItemDataRole.UserRole + 1  # the step share, 0..1, that the bar draws
HOTTEST_ROLE = Qt.ItemDataRole.UserRole + 2
BAR_COLOUR, HOT_COLOUR = QColor("#0072B2"), QColor("#D55E00")  # Okabe-Ito blue, vermillion
HOT_BACKGROUND = QColor(213, 94, 0, 40)
HEADERS = ("Layer", "Type", "Forward", "Backward", "Share of the step", "FLOPs share")
SHARE_COLUMN = 4


def tagged(widget: W, name: str) -> W:
    """A control with its stable objectName and accessible name (the profile and export views)."""
    widget.setObjectName(name)
    widget.setAccessibleName(name)
    return widget


def milliseconds(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def percent(value: float) -> str:
    return f"{100.0 * value:.1f}%"


class LayerTimeModel(QAbstractTableModel):
    """One row per profiled layer (forward and backward time, step share, FLOPs share); the
    hottest layer is bold on a vermillion tint, and its bar is vermillion."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: ProfileReport | None = None
        self.layers: tuple[LayerProfile, ...] = ()
        self.hottest_row: int | None = None

    def set_report(self, report: ProfileReport | None) -> None:
        self.beginResetModel()
        self.report = report
        self.layers = report.layers if report is not None else ()
        hottest = report.hottest if report is not None else None
        self.hottest_row = next(
            (row for row, layer in enumerate(self.layers) if layer is hottest), None
        )
        self.endResetModel()

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.layers)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.report is None:
            return None
        row, column = index.row(), index.column()
        layer = self.layers[row]
        hot = row == self.hottest_row
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(layer, column)
        if role == SHARE_ROLE:
            return self.report.step_share(layer)
        if role == HOTTEST_ROLE:
            return hot
        if role == Qt.ItemDataRole.BackgroundRole and hot:
            return QBrush(HOT_BACKGROUND)
        if role == Qt.ItemDataRole.FontRole and hot:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(layer, hot)
        return None

    def _text(self, layer: LayerProfile, column: int) -> str:
        assert self.report is not None
        calls = f" (x{layer.calls})" if layer.calls > 1 else ""
        return (
            layer.label + calls,
            layer.type,
            milliseconds(layer.forward_ms),
            milliseconds(layer.backward_ms),
            percent(self.report.step_share(layer)),
            percent(self.report.flops_share(layer)),
        )[column]

    def _tooltip(self, layer: LayerProfile, hot: bool) -> str:
        assert self.report is not None
        lead = "The hottest layer: the most forward plus backward time.\n" if hot else ""
        return (
            f"{lead}{layer.label} ({layer.type}): forward {milliseconds(layer.forward_ms)}, "
            f"backward {milliseconds(layer.backward_ms)}, "
            f"{percent(self.report.step_share(layer))} of the timed step; "
            f"{percent(self.report.flops_share(layer))} of the forward FLOPs"
        )


class ShareBarDelegate(QStyledItemDelegate):
    """Draws the step share as a bar scaled to the largest share, with the percentage on it."""

    def __init__(self, model: LayerTimeModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        share = index.data(SHARE_ROLE)
        if not isinstance(share, float):
            super().paint(painter, option, index)
            return
        rect: QRect = option.rect  # type: ignore[attr-defined]
        style = option.widget.style() if option.widget is not None else None  # type: ignore[attr-defined]
        if style is not None:
            plain = QStyleOptionViewItem(option)
            plain.text = ""  # type: ignore[attr-defined]
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, option.widget)  # type: ignore[attr-defined]
        report = self.model.report
        shares = [report.step_share(layer) for layer in self.model.layers] if report else []
        largest = max(shares, default=0.0)
        width = int((rect.width() - 60) * share / largest) if largest > 0 else 0
        bar = QRect(rect.left() + 2, rect.top() + 3, max(width, 1), rect.height() - 6)
        painter.save()
        painter.fillRect(bar, HOT_COLOUR if index.data(HOTTEST_ROLE) else BAR_COLOUR)
        text_rect = QRect(bar.right() + 4, rect.top(), 56, rect.height())
        painter.drawText(
            text_rect,
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            percent(share),
        )
        painter.restore()
