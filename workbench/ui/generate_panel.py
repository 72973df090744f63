"""The Generate tab: text from the current model as it is made, samples while training, attention."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.current_model import CurrentModelHolder
from workbench.controllers.generation import ATTENTION, GenerationController, is_text_model
from workbench.controllers.run_session import RunSession
from workbench.engine.errors import WorkbenchError
from workbench.engine.generation import MAX_TOKENS, SamplingSettings
from workbench.engine.reports import RunStarted
from workbench.ui.insight.attention_view import AttentionView

RANDOM_SEED = -1  # the seed box's "random" value


Named = TypeVar("Named", bound=QWidget)


def _named(widget: Named, name: str) -> Named:
    widget.setObjectName(name)
    widget.setAccessibleName(name)
    return widget


class GeneratePanel(QWidget):
    """Generate text from the window's current model (a run, a loaded file or a fresh one), see
    a sample at each epoch's end of a text run, and look at the attention maps of a prompt."""

    def __init__(
        self, current: CurrentModelHolder, session: RunSession, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("generatePanel")
        self.current = current
        self.controller = GenerationController(current, self)
        self.controller.attach(session)
        self.attention_view = AttentionView()
        self._build()
        self._connect(session)
        self.refresh()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.model_label = QLabel()
        self.model_label.setObjectName("generateModelLabel")
        self.notice = QLabel()
        self.notice.setObjectName("generateNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #B00020;")
        self.prompt = _named(QLineEdit("Shall I"), "generatePrompt")
        self.prompt.setPlaceholderText("Empty: start from a new line")
        self.tokens = self._spin("generateTokens", 1, MAX_TOKENS, 200)
        self.top_k = self._spin("generateTopK", 0, MAX_TOKENS, 40)
        self.top_k.setSpecialValueText("all")
        self.seed = self._spin("generateSeed", RANDOM_SEED, 2**31 - 1, RANDOM_SEED)
        self.seed.setSpecialValueText("random")
        self.temperature = QDoubleSpinBox()
        _named(self.temperature, "generateTemperature")
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.8)
        self.temperature.setToolTip("0: always the most likely token; higher: more surprising")
        self.generate_button = QPushButton("Generate")  # Alt+G is the tab's
        self.generate_button.setObjectName("generateButton")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopGenerationButton")
        self.stop_button.setEnabled(False)
        self.message = QLabel()
        self.message.setObjectName("generateMessage")
        self.message.setWordWrap(True)
        self.output = self._text_view(
            "generatedText", "Generated text appears here, token by token."
        )
        self.samples = self._text_view(
            "epochSamples", "While a text model trains, a sample appears at each epoch's end."
        )
        self.inner_tabs = QTabWidget()
        self.inner_tabs.setObjectName("generateTabs")
        self.inner_tabs.addTab(self._text_page(), "Text")
        self.inner_tabs.addTab(self.attention_view, "Attention")
        box = QVBoxLayout(self)
        box.addWidget(self.model_label)
        box.addWidget(self.notice)
        box.addWidget(self.inner_tabs, 1)

    def _spin(self, name: str, low: int, high: int, value: int) -> QSpinBox:
        spin = QSpinBox()
        _named(spin, name)
        spin.setRange(low, high)
        spin.setValue(value)
        return spin

    def _text_view(self, name: str, placeholder: str) -> QPlainTextEdit:
        view = QPlainTextEdit()
        _named(view, name)
        view.setReadOnly(True)
        view.setPlaceholderText(placeholder)
        view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        return view

    def _text_page(self) -> QWidget:
        settings = QHBoxLayout()
        for label, widget in (
            ("Tokens", self.tokens),
            ("Temperature", self.temperature),
            ("Top-k", self.top_k),
            ("Seed", self.seed),
        ):
            form = QFormLayout()
            form.addRow(label, widget)
            settings.addLayout(form)
        settings.addStretch(1)
        settings.addWidget(self.generate_button)
        settings.addWidget(self.stop_button)
        prompt_row = QFormLayout()
        prompt_row.addRow("Prompt", self.prompt)
        top = QWidget()
        top_box = QVBoxLayout(top)
        top_box.setContentsMargins(0, 0, 0, 0)
        top_box.addLayout(prompt_row)
        top_box.addLayout(settings)
        top_box.addWidget(self.message)
        top_box.addWidget(self.output, 1)
        bottom = QWidget()
        bottom_box = QVBoxLayout(bottom)
        bottom_box.setContentsMargins(0, 0, 0, 0)
        bottom_box.addWidget(QLabel("Samples at each epoch's end (prompt: a new line, seed 0)"))
        bottom_box.addWidget(self.samples, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setSizes([300, 200])
        return splitter

    def _connect(self, session: RunSession) -> None:
        controller = self.controller
        self.generate_button.clicked.connect(self.generate)
        self.prompt.returnPressed.connect(self.generate)
        self.stop_button.clicked.connect(controller.stop)
        controller.piece.connect(self._append_piece)
        controller.running_changed.connect(self._set_running)
        controller.finished.connect(self._finished)
        controller.failed.connect(self._failed)
        controller.sample_ready.connect(self.add_sample)
        controller.attention_ready.connect(self.attention_view.set_attention)
        controller.attention_failed.connect(self.attention_view.show_error)
        controller.jobs.ended.connect(lambda _key: self.refresh())
        self.attention_view.requested.connect(self.show_attention)
        self.current.changed.connect(lambda _model: self.refresh())
        session.run_started.connect(self._run_started)

    # ------------------------------------------------------------------ state

    def refresh(self) -> None:
        """Follow the current model: name it, and refuse generation from a non-text one."""
        model = self.current.model
        text = is_text_model(model)
        self.model_label.setText(f"Generating from: {model.description}")
        self.notice.setVisible(not text)
        self.notice.setText(
            ""
            if text
            else 'Generation needs a text model: a project with data.name = "text" (try '
            f"File > Presets > tiny-gpt). The current model trains on {model.experiment.data.name!r}."
        )
        busy = self.controller.is_generating
        self.generate_button.setEnabled(text and not busy)
        self.stop_button.setEnabled(busy)
        self.attention_view.set_available(
            text and not self.controller.jobs.is_running(ATTENTION),
            "" if text else "Attention maps need a text model with attention layers.",
        )

    def settings(self) -> SamplingSettings:
        """The sampling settings the form shows (GenerationError for a value out of range)."""
        return SamplingSettings(
            tokens=self.tokens.value(),
            temperature=self.temperature.value(),
            top_k=self.top_k.value() or None,
            seed=None if self.seed.value() == RANDOM_SEED else self.seed.value(),
        )

    # ------------------------------------------------------------------ generating

    def generate(self) -> None:
        if not self.generate_button.isEnabled():
            return
        try:
            settings = self.settings()
        except WorkbenchError as exc:
            self._failed(str(exc))
            return
        self.output.setPlainText(self.prompt.text())
        self.message.setText("Generating…")
        self.controller.generate(self.prompt.text(), settings)

    def _append_piece(self, piece: str) -> None:
        cursor = self.output.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.output.setTextCursor(cursor)
        self.output.ensureCursorVisible()

    def _set_running(self, running: bool) -> None:
        self.refresh()
        self.stop_button.setEnabled(running)

    def _finished(self, text: str) -> None:
        self.message.setText(f"Done: {len(text)} characters after the prompt.")

    def _failed(self, message: str) -> None:
        self.message.setText(message)

    # ------------------------------------------------------------------ while training

    def _run_started(self, started: RunStarted) -> None:
        del started
        self.samples.clear()

    def add_sample(self, epoch: int, text: str) -> None:
        self.samples.appendPlainText(f"— Epoch {epoch} —\n{text}\n")
        self.samples.ensureCursorVisible()

    # ------------------------------------------------------------------ attention

    def show_attention(self, prompt: str) -> None:
        if self.controller.show_attention(prompt):
            self.attention_view.set_busy(True)

    def shutdown(self) -> None:
        self.controller.shutdown()
