"""The trainer on token data: next-token metrics, samples between epochs that leave the run as it
was, text classification from a CSV column, the task's refusals, and train.compile."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from workbench.engine.datasets.text import text_vocabulary
from workbench.engine.errors import ExperimentError, ModelBuildError, TrainingError
from workbench.engine.experiment import Experiment, parse_experiment
from workbench.engine.generation import EpochSampler, SamplingSettings
from workbench.engine.reports import FanOutObserver, RecordingObserver
from workbench.engine.trainer import Trainer

TEXT = "she sells sea shells by the sea shore, and the shells she sells are sea shells.\n" * 12


def text_experiment(path: Path, layers: str, **train: object) -> Experiment:
    path.write_text(TEXT, encoding="utf-8")
    extra = "".join(f"{key} = {value!r}\n" for key, value in train.items()).replace("'", '"')
    return parse_experiment(
        f"""
[model]
input_dtype = "long"
layers = [{layers}]
[data]
name = "text"
path = "{path}"
block_size = 12
batch_size = 8
[train]
epochs = 2
optimizer = "adam"
lr = 0.01
device = "cpu"
{extra}"""
    )


GPT = """
  { type = "Embedding", embedding_dim = 16 }, { type = "PositionalEmbedding" },
  { type = "TransformerBlock", heads = 2 }, { type = "Linear", out_features = "vocab" },
"""


def test_epoch_reports_carry_perplexity_and_bits_instead_of_accuracy(tmp_path: Path) -> None:
    recorder = RecordingObserver()
    summary = Trainer(text_experiment(tmp_path / "t.txt", GPT), observer=recorder).fit()
    last = recorder.epochs[-1]
    assert last.train_accuracy is None and last.val_accuracy is None
    assert last.val_perplexity == pytest.approx(math.exp(last.val_loss or 0.0))
    assert last.val_bits_per_char == pytest.approx((last.val_loss or 0.0) / math.log(2))
    assert last.tokens_per_second == pytest.approx(12 * last.samples_per_second)
    assert any(text.startswith("Unigram baseline:") for text in recorder.logs)
    assert summary["task"] == "next_token" and summary["compiled"] is False


def test_a_sample_after_each_epoch_leaves_the_run_unchanged(tmp_path: Path) -> None:
    experiment = text_experiment(tmp_path / "t.txt", GPT)
    plain = Trainer(experiment)
    plain.fit()
    samples: list[tuple[int, str]] = []
    sampler = EpochSampler(
        text_vocabulary(experiment.data),
        12,
        lambda epoch, text: samples.append((epoch, text)),
        prompt="she ",
        settings=SamplingSettings(tokens=10, seed=3),
    )
    sampled = Trainer(experiment, observer=FanOutObserver(RecordingObserver(), sampler))
    sampled.fit()
    assert [epoch for epoch, _ in samples] == [1, 2]
    assert all(text.startswith("she ") and len(text) == 14 for _, text in samples)
    for mine, other in zip(
        plain.model.state_dict().values(), sampled.model.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, other)  # sampling drew nothing from the run's generator


def test_text_classification_from_a_csv_column_with_an_lstm(tmp_path: Path) -> None:
    rows = ["text,label"] + [f"good fun {i},pos" for i in range(12)]
    rows += [f"bad and sad {i},neg" for i in range(12)]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    experiment = parse_experiment(
        f"""
[model]
layers = [
  {{ type = "Embedding", embedding_dim = 8 }}, {{ type = "LSTM", hidden_size = 16 }},
  {{ type = "LastStep" }}, {{ type = "Linear", out_features = 2 }},
]
[data]
name = "csv"
path = "{tmp_path / "reviews.csv"}"
text_column = "text"
block_size = 14
batch_size = 8
val_split = 0.25
[train]
epochs = 15
optimizer = "adam"
lr = 0.02
device = "cpu"
"""
    )
    summary = Trainer(experiment).fit()
    assert summary["task"] == "prediction" and summary["val_accuracy"] == 1.0


def test_a_next_token_run_refuses_a_loss_and_an_output_that_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"train\.loss: 'mse' cannot score next tokens"):
        Trainer(text_experiment(tmp_path / "t.txt", GPT, loss="mse")).prepare()
    last_step = GPT.replace('{ type = "Linear"', '{ type = "LastStep" }, { type = "Linear"')
    with pytest.raises(ModelBuildError) as caught:
        Trainer(text_experiment(tmp_path / "t.txt", last_step)).prepare()
    assert str(caught.value) == (
        "the model gives [16] per sample, but next-token training needs a score for each of "
        "the 16 tokens at each of the 12 positions: [12, 16]; end the model with a Linear with "
        'out_features = "vocab" (and no LastStep or Flatten before it)'
    )


def test_a_float_model_refuses_token_data_and_token_models_refuse_float_data(
    tmp_path: Path,
) -> None:
    floats = parse_experiment('[model]\ninput_dtype = "long"\nlayers = [{ type = "Embedding", '
                              'embedding_dim = 4 }]\n[data]\nname = "moons"')  # fmt: skip
    with pytest.raises(ModelBuildError, match=r'model\.input_dtype is "long" \(token ids\), but'):
        Trainer(floats).prepare()


def test_a_compiler_failure_is_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: object, **options: object) -> object:
        def run(*args: object) -> object:
            raise RuntimeError("InductorError: CppCompileError: no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    experiment = text_experiment(tmp_path / "t.txt", GPT)
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, compile=True)
    )
    recorder = RecordingObserver()
    with pytest.raises(TrainingError) as caught:
        Trainer(experiment, observer=recorder).fit()
    assert str(caught.value) == (
        "train.compile: torch.compile failed on this machine (InductorError: CppCompileError: "
        "no C++ compiler); set train.compile = false to train without it"
    )
    assert recorder.failure == str(caught.value)
