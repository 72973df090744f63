"""Predict: logits and softmax probabilities for a drawn digit, a clicked point or a row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from workbench.engine.experiment import DataSpec
from workbench.engine.insight.predict import (
    drawing_to_input,
    input_normalization,
    point_input,
    predict,
    row_input,
)


def test_probabilities_sum_to_one_and_match_the_classic_softmax() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    x = point_input(0.5, -1.0)
    prediction = predict(model, x, ["a", "b", "c"])
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    expected = torch.softmax(model(x.unsqueeze(0)), dim=1)[0].detach().numpy()
    assert prediction.probabilities == pytest.approx(expected, abs=1e-6)
    assert prediction.outputs == pytest.approx(model(x.unsqueeze(0))[0].detach().numpy())
    assert prediction.output_kind == "logits"
    assert prediction.predicted_name == ["a", "b", "c"][int(np.argmax(expected))]
    assert prediction.ranked()[0][0] == prediction.predicted_name


def test_models_ending_in_logsoftmax_or_softmax_give_the_same_probabilities() -> None:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(4, 5))
    x = row_input([1.0, 2.0, -1.0, 0.5])
    plain = predict(body, x, [])
    for last, kind in (
        (nn.LogSoftmax(dim=1), "log-probabilities"),
        (nn.Softmax(dim=1), "probabilities"),
    ):
        wrapped = predict(nn.Sequential(body, last), x, [])
        assert wrapped.output_kind == kind
        assert wrapped.probabilities == pytest.approx(plain.probabilities, abs=1e-6)
    assert plain.class_names == ("class 0", "class 1", "class 2", "class 3", "class 4")


def test_a_single_logit_is_read_as_a_binary_classifier() -> None:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(2.0)
    prediction = predict(model, point_input(0, 0), ["no", "yes"])
    assert prediction.probabilities == pytest.approx([1 - 0.8808, 0.8808], abs=1e-4)
    assert prediction.predicted_name == "yes"


def stroke_one(size: int = 280) -> np.ndarray:
    """A drawn '1': a thick vertical bar in the upper-left part of a big canvas."""
    canvas = np.zeros((size, size), dtype=np.float32)
    canvas[30:200, 60:85] = 1.0
    return canvas


def test_drawing_becomes_an_mnist_sample_centred_by_mass_and_normalised() -> None:
    spec = DataSpec(name="mnist")
    normalization = input_normalization(spec)
    assert normalization == ((0.1307,), (0.3081,))
    sample = drawing_to_input(stroke_one(), (1, 28, 28), normalization)
    assert sample.shape == (1, 28, 28)
    pixels = sample[0] * 0.3081 + 0.1307  # back to 0..1
    assert float(pixels.min()) == pytest.approx(0.0, abs=1e-5)
    assert float(pixels.max()) == pytest.approx(1.0, abs=1e-3)
    rows = torch.nonzero(pixels.amax(dim=1) > 0.5).view(-1)
    assert int(rows[-1] - rows[0] + 1) == 20  # the 20x20 box of MNIST
    ys, xs = torch.nonzero(pixels > 0.5, as_tuple=True)
    assert (
        abs(float(xs.float().mean()) - 13.5) <= 1.0 and abs(float(ys.float().mean()) - 13.5) <= 1.0
    )
    assert input_normalization(DataSpec(name="mnist", options={"normalize": False})) is None


def test_drawing_of_a_digit_is_recognised_by_a_model_of_the_8x8_digits() -> None:
    """Draw each digit of scikit-learn's set large, as a user would; most must come out right."""
    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).div(16).unsqueeze(1)
    y = torch.as_tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    right = 0
    for index in range(10):
        drawn = np.kron(digits.images[index] / 16, np.ones((30, 30)))  # a 240x240 drawing
        drawn = np.pad(drawn, ((40, 20), (10, 50)))  # off-centre on the pad
        sample = drawing_to_input(drawn, (1, 8, 8), input_normalization(DataSpec(name="digits")))
        assert (
            sample.shape == (1, 8, 8) and 0.0 <= float(sample.min()) <= float(sample.max()) <= 1.0
        )
        right += predict(model, sample, [str(d) for d in range(10)]).predicted == y[index].item()
    assert right >= 8


def test_an_empty_drawing_is_a_blank_sample_and_colour_inputs_repeat_gray() -> None:
    blank = drawing_to_input(np.zeros((50, 50)), (1, 28, 28))
    assert float(blank.abs().sum()) == 0.0
    colour = drawing_to_input(stroke_one(), (3, 32, 32))
    assert colour.shape == (3, 32, 32) and torch.equal(colour[0], colour[2])
    with pytest.raises(ValueError, match="image input"):
        drawing_to_input(stroke_one(), (64,))
