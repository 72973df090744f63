"""Where a Transformer looks: a heatmap per layer and head, the prompt's tokens on both axes."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.insight.attention import PromptAttention
from workbench.ui.qt import pg

MAX_AXIS_LABELS = 48  # beyond this many tokens every other label is left out


def token_ticks(tokens: tuple[str, ...]) -> list[list[tuple[float, str]]]:
    """Axis ticks at each cell's centre, labelled with its token (thinned for long prompts)."""
    step = max(1, -(-len(tokens) // MAX_AXIS_LABELS))
    spaces = {" ": "␣", "\n": "↵", "\t": "⇥"}
    return [[(index + 0.5, spaces.get(token, token)) for index, token in enumerate(tokens)
             if index % step == 0]]  # fmt: skip


class AttentionView(QWidget):
    """Pick a layer and a head: row i shows how token i spreads its attention over the tokens
    (columns); a causal layer leaves everything right of the diagonal empty."""

    requested = Signal(str)  # the prompt to compute the maps for

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("attentionView")
        self.setAccessibleName("attentionView")
        self.attention: PromptAttention | None = None
        self.prompt = QLineEdit("Shall I compare thee")
        self.prompt.setObjectName("attentionPrompt")
        self.prompt.setAccessibleName("attentionPrompt")
        self.prompt.setPlaceholderText("A prompt from the training text's characters")
        self.show_button = QPushButton("Show Attention")
        self.show_button.setObjectName("showAttentionButton")
        self.show_button.clicked.connect(lambda: self.requested.emit(self.prompt.text()))
        self.prompt.returnPressed.connect(self.show_button.click)
        self.layer = QComboBox()
        self.layer.setObjectName("attentionLayerPicker")
        self.layer.setAccessibleName("attentionLayerPicker")
        self.layer.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.head = QComboBox()
        self.head.setObjectName("attentionHeadPicker")
        self.head.setAccessibleName("attentionHeadPicker")
        self.layer.currentIndexChanged.connect(self._layer_changed)
        self.head.currentIndexChanged.connect(lambda _index: self._draw())
        self.message = QLabel("Type a prompt and press Show Attention.")
        self.message.setObjectName("attentionMessage")
        self.message.setWordWrap(True)
        self.plot, self.image = self._heatmap()
        self._layout()

    def _heatmap(self) -> tuple[Any, Any]:
        plot = pg.PlotWidget()
        plot.setObjectName("attentionPlot")
        plot.setMenuEnabled(False)
        plot.setAspectLocked(True)
        plot.invertY(True)
        plot.setLabel("left", "token (query)")
        plot.setLabel("bottom", "attends to (key)")
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)
            plot.getAxis(side).setTicks([[]])  # the prompt's tokens, once there is a map
        plot.setRange(xRange=(0, 8), yRange=(0, 8), padding=0.02)
        image = pg.ImageItem(axisOrder="row-major")
        image.setColorMap(pg.colormap.get("viridis"))
        plot.addItem(image)
        bar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=pg.colormap.get("viridis"), width=12, interactive=False
        )
        bar.setImageItem(image, insert_in=plot.getPlotItem())
        return plot, image

    def _layout(self) -> None:
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Prompt:"))
        controls.addWidget(self.prompt, 1)
        controls.addWidget(self.show_button)
        controls.addWidget(QLabel("Layer:"))
        controls.addWidget(self.layer)
        controls.addWidget(QLabel("Head:"))
        controls.addWidget(self.head)
        box = QVBoxLayout(self)
        box.addLayout(controls)
        box.addWidget(self.message)
        box.addWidget(self.plot, 1)

    def set_available(self, available: bool, reason: str = "") -> None:
        self.show_button.setEnabled(available)
        if not available:
            self.message.setText(reason)

    def set_busy(self, busy: bool) -> None:
        self.show_button.setEnabled(not busy)
        if busy:
            self.message.setText("Computing the attention maps…")

    def show_error(self, message: str) -> None:
        self.message.setText(message)

    def set_attention(self, attention: PromptAttention) -> None:
        """Show the maps of `attention`, keeping the layer and head picked if they still exist."""
        layer, head = max(self.layer.currentIndex(), 0), max(self.head.currentIndex(), 0)
        self.attention = attention
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems([item.layer for item in attention.maps])
        self.layer.setCurrentIndex(min(layer, len(attention.maps) - 1))
        self.layer.blockSignals(False)
        self._fill_heads(head)
        ticks = token_ticks(attention.tokens)
        for side in ("left", "bottom"):
            self.plot.getAxis(side).setTicks(ticks)
        self.message.setText(
            f"{len(attention.tokens)} tokens, {len(attention.maps)} attention layer(s). Row i: "
            "how token i spreads its attention (each row sums to 1)."
        )

    def _layer_changed(self, _index: int) -> None:
        self._fill_heads(self.head.currentIndex())

    def _fill_heads(self, head: int) -> None:
        heads = self.current_map_heads()
        self.head.blockSignals(True)
        self.head.clear()
        self.head.addItems([str(index) for index in range(heads)])
        self.head.setCurrentIndex(min(max(head, 0), heads - 1))
        self.head.blockSignals(False)
        self._draw()

    def current_map_heads(self) -> int:
        if self.attention is None or self.layer.currentIndex() < 0:
            return 0
        return self.attention.maps[self.layer.currentIndex()].heads

    def shown_weights(self) -> np.ndarray[Any, np.dtype[np.float32]] | None:
        """The [tokens, tokens] map drawn now (None before any)."""
        if self.attention is None or self.layer.currentIndex() < 0 or self.head.currentIndex() < 0:
            return None
        weights = self.attention.maps[self.layer.currentIndex()].weights
        shown: np.ndarray[Any, np.dtype[np.float32]] = weights[self.head.currentIndex()]
        return shown

    def _draw(self) -> None:
        weights = self.shown_weights()
        if weights is None:
            self.image.clear()
            return
        self.image.setImage(weights, levels=(0.0, 1.0), autoLevels=False)
        self.plot.getViewBox().autoRange(padding=0.02)
