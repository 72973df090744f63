"""The Generate tab: samples while a tiny GPT trains, streamed text, clear prompt errors,
attention maps, and the text metrics (perplexity, bits per character) in place of accuracy."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from workbench.ui.main_window import MainWindow

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30

TINY_GPT = """
[model]
input_dtype = "long"
layers = [
  {{ name = "tok", type = "Embedding", embedding_dim = 16 }},
  {{ name = "pos", type = "PositionalEmbedding" }},
  {{ name = "blocks", type = "TransformerBlock", heads = 2, repeat = 2 }},
  {{ name = "ln_f", type = "LayerNorm" }},
  {{ name = "head", type = "Linear", out_features = "vocab" }},
]

[data]
name = "text"
path = {path!r}
tokenizer = "char"
block_size = 12
val_split = 0.2
batch_size = 32

[train]
epochs = 2
optimizer = "adamw"
lr = 0.01
loss = "cross_entropy"
seed = 1
device = "cpu"
"""


def open_tiny_gpt(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    project = tmp_path / "tiny-gpt.toml"
    project.write_text(TINY_GPT.format(path=str(corpus)), encoding="utf-8")
    assert window.open_project(project)
    qtbot.waitUntil(lambda: window.train_action.isEnabled())  # the stack knows the vocabulary
    assert window.train_problems() == []


def train_tiny_gpt(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> list[tuple[int, bool]]:
    """Train it for two epochs; returns (epoch, run still going?) for each sample the tab got."""
    open_tiny_gpt(qtbot, window, tmp_path)
    seen: list[tuple[int, bool]] = []
    panel = window.generate_panel
    panel.controller.sample_ready.connect(
        lambda epoch, _text: seen.append((epoch, window.session.is_running))
    )
    with qtbot.waitSignal(window.session.run_ended, timeout=120_000):
        window.start_training()
    return seen


def generate(qtbot: QtBot, window: MainWindow, prompt: str, seed: int) -> tuple[str, list[str]]:
    """Press Generate; returns the text view's final text and its text after each piece."""
    panel = window.generate_panel
    panel.prompt.setText(prompt)
    panel.seed.setValue(seed)
    panel.tokens.setValue(40)
    seen: list[str] = []

    # The text view, read on the GUI thread as it changes: `piece` is emitted on the worker
    # thread, and a plain function connected to it would run there.
    def record() -> None:
        text = panel.output.toPlainText()
        if len(text) > len(prompt):  # a piece arrived (not the prompt being put in place)
            seen.append(text)

    panel.output.textChanged.connect(record)
    ended = panel.controller.running_changed
    with qtbot.waitSignal(ended, timeout=60_000, check_params_cb=lambda running: not running):
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
        assert panel.stop_button.isEnabled() and not panel.generate_button.isEnabled()
    panel.output.textChanged.disconnect(record)
    qtbot.waitUntil(lambda: panel.generate_button.isEnabled())
    return panel.output.toPlainText(), seen


def test_the_generate_tab_shows_a_sample_at_each_epochs_end_while_a_text_model_trains(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    seen = train_tiny_gpt(qtbot, window, tmp_path)

    assert seen == [(1, True), (2, True)]  # during the run, one per epoch
    samples = window.generate_panel.samples.toPlainText()
    assert "— Epoch 1 —" in samples and "— Epoch 2 —" in samples
    sample_text = samples.split("— Epoch 2 —")[1].strip()
    assert len(sample_text) > 20 and set(sample_text) <= set(TEXT) | {"\n"}
    assert window.generate_panel.model_label.text() == "Generating from: run 1"
    table = window.data_panel.table  # the data preview shows text, not token ids
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["next tokens", "text"]
    first = table.item(0, 1).text()
    assert len(first) == 12 and first in TEXT
    assert table.item(0, 0).text() == TEXT[TEXT.index(first) + 1 :][:12]


def test_text_runs_show_perplexity_and_bits_per_character_instead_of_accuracy(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    shown: list[str] = []  # what the run panel says at each epoch's end
    window.session.epoch_ended.connect(lambda _r: shown.append(window.run_panel.progress_text()))
    train_tiny_gpt(qtbot, window, tmp_path)
    assert window.session.last_result is not None
    report = window.session.last_result.history[-1]
    assert report.val_accuracy is None and report.val_perplexity is not None

    status = shown[-1]
    assert f"val loss {report.val_loss:.3f}" in status
    assert f"perplexity {report.val_perplexity:.2f}" in status
    assert f"{report.val_bits_per_char:.2f} bits/char" in status
    assert "acc" not in status
    plots = window.plots
    assert plots.accuracy_plot.getPlotItem().titleLabel.text == "Perplexity per epoch"
    x, y = plots.val_accuracy_curve.getData()
    assert list(x) == [1.0, 2.0] and y[-1] == report.val_perplexity
    described = plots._describe_metric(2.0)
    assert described is not None
    assert described[2] == (
        f"epoch 2\ntrain perplexity {report.train_perplexity:.2f}\n"
        f"validation perplexity {report.val_perplexity:.2f}"
    )
    runs = window.runs_panel.model
    assert runs.data(runs.index(0, 4)) == f"perplexity {report.val_perplexity:.2f}"
    assert runs.data(runs.index(0, 5)) == f"{report.val_loss:.4f}"
    plots.reset(None)  # the next run may be a classifier again
    assert plots.accuracy_plot.getPlotItem().titleLabel.text == "Accuracy per epoch"


def test_generate_streams_text_token_by_token_and_a_seed_makes_it_reproducible(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    train_tiny_gpt(qtbot, window, tmp_path)
    first, partial = generate(qtbot, window, "the ", seed=7)

    assert first.startswith("the ") and len(first) == len("the ") + 40
    assert len(partial) >= 10  # many updates, each longer than the last
    assert all(len(a) < len(b) for a, b in itertools.pairwise(partial))
    assert partial[0] != first
    assert window.generate_panel.message.text() == "Done: 40 characters after the prompt."
    again, _ = generate(qtbot, window, "the ", seed=7)
    assert again == first
    other, _ = generate(qtbot, window, "the ", seed=8)
    assert other != first


def test_stop_ends_a_long_generation_early(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    open_tiny_gpt(qtbot, window, tmp_path)  # the fresh initialisation is the current model
    panel = window.generate_panel
    panel.prompt.setText("the ")
    panel.tokens.setValue(100_000)
    panel.generate()
    qtbot.waitUntil(lambda: len(panel.output.toPlainText()) > len("the "), timeout=60_000)
    ended = panel.controller.running_changed
    with qtbot.waitSignal(ended, timeout=60_000, check_params_cb=lambda running: not running):
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert len(panel.output.toPlainText()) < 100_000
    assert panel.message.text().startswith("Done: ")
    assert panel.generate_button.isEnabled() and not panel.stop_button.isEnabled()


def test_a_prompt_with_characters_outside_the_vocabulary_gets_the_engines_message(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    open_tiny_gpt(qtbot, window, tmp_path)
    panel = window.generate_panel
    panel.prompt.setText("the QUEEN")
    with qtbot.waitSignal(panel.controller.failed, timeout=60_000):
        panel.generate()
    qtbot.waitUntil(lambda: panel.generate_button.isEnabled())
    message = panel.message.text()
    assert message.startswith("the prompt: 'E', 'N', 'Q', 'U' are not in the vocabulary")
    assert "use only characters that occur in it" in message


def test_a_project_that_is_not_text_says_generation_needs_a_text_model(window: MainWindow) -> None:
    panel = window.generate_panel
    assert window.document.experiment.data.name != "text"
    assert not panel.notice.isHidden()
    assert panel.notice.text().startswith("Generation needs a text model")
    assert not panel.generate_button.isEnabled()
    assert not panel.attention_view.show_button.isEnabled()


def test_the_attention_map_of_a_prompt_is_drawn_per_layer_and_head(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    train_tiny_gpt(qtbot, window, tmp_path)
    window.tabs.setCurrentWidget(window.generate_panel)
    view = window.generate_panel.attention_view
    window.generate_panel.inner_tabs.setCurrentWidget(view)
    view.prompt.setText("the cat sat")
    with qtbot.waitSignal(window.generate_panel.controller.attention_ready, timeout=60_000):
        qtbot.mouseClick(view.show_button, Qt.MouseButton.LeftButton)

    assert [view.layer.itemText(i) for i in range(view.layer.count())] == [
        "blocks.0.attn",
        "blocks.1.attn",
    ]
    assert view.head.count() == 2
    view.layer.setCurrentIndex(1)
    view.head.setCurrentIndex(1)
    drawn = view.image.image
    assert drawn is not None and drawn.shape == (11, 11)  # tokens x tokens
    assert np.array_equal(drawn, view.shown_weights())
    assert drawn.min() >= 0.0 and drawn.max() <= 1.0
    assert np.allclose(drawn.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.triu(drawn, k=1) == 0.0)  # causal: no token looks ahead
    labels = [label for _, label in view.plot.getAxis("bottom")._tickLevels[0]]
    assert labels == ["t", "h", "e", "␣", "c", "a", "t", "␣", "s", "a", "t"]
    window.generate_panel.resize(1000, 700)
    window.generate_panel.grab().save(str(tmp_path / "attention.png"))


def test_a_model_without_attention_layers_says_so(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    open_tiny_gpt(qtbot, window, tmp_path)
    lstm = window.document.experiment.model.layers
    window.document.set_layers(
        (lstm[0], dataclasses.replace(lstm[2], type="LSTM", params={"hidden_size": 16}), lstm[4]),
        "LSTM instead of blocks",
    )
    view = window.generate_panel.attention_view
    view.prompt.setText("the cat")
    with qtbot.waitSignal(window.generate_panel.controller.attention_failed, timeout=60_000):
        view.show_button.click()
    assert view.message.text() == (
        "fresh initialisation has no attention layer (TransformerBlock or "
        "TransformerEncoderLayer): there is no attention map to show"
    )
    assert view.shown_weights() is None
