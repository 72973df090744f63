"""Spec helpers shared by tests."""

from __future__ import annotations

import dataclasses

from workbench.engine.experiment import Experiment, parse_experiment


def without_names(experiment: Experiment) -> Experiment:
    """The experiment with its layers unnamed: each prints and saves by position (`0.weight`),
    as files written before layers had names do."""
    layers = tuple(dataclasses.replace(layer, name=None) for layer in experiment.model.layers)
    model = dataclasses.replace(experiment.model, layers=layers)
    return dataclasses.replace(experiment, model=model)


# Two branches from the input: a gated convolution (Mul) joined to the input itself (Concat).
GATED_GRAPH = """
[model]
layers = [
  { name = "conv", type = "Conv2d", out_channels = 8, kernel_size = 3, padding = 1 },
  { name = "relu", type = "ReLU" },
  { name = "gate_conv", type = "Conv2d", out_channels = 8, kernel_size = 1, inputs = "input" },
  { name = "gate", type = "Sigmoid" },
  { name = "gated", type = "Mul", inputs = ["relu", "gate"] },
  { name = "both", type = "Concat", inputs = ["gated", "input"], dim = 1 },
  { name = "pool", type = "AdaptiveAvgPool2d", output_size = 2 },
  { name = "flatten", type = "Flatten" },
  { name = "fc", type = "Linear", out_features = 10 },
]

[data]
name = "digits"
batch_size = 32
val_batch_size = 512

[train]
epochs = 2
lr = 0.01
device = "cpu"
"""

# Names a hand-written class could not use as they are: positions, the forward's own `x`,
# `self`, `torch` and `getattr`, an ambiguous `l`, a mangled `__hidden`; and a block whose first
# convolution takes 8 channels in one use and 4 in the next.
AWKWARD_GRAPH = """
[model]
input_shape = [3, 8, 8]
layers = [
  { name = "getattr", type = "Conv2d", out_channels = 8, kernel_size = 3, padding = 1 },
  { name = "x", type = "ReLU" },
  { name = "layer1", type = "Down", repeat = 2 },
  { name = "self", type = "Down" },
  { name = "torch", type = "Conv2d", out_channels = 4, kernel_size = 1, inputs = ["layer1"] },
  { type = "Sigmoid" },
  { name = "gate", type = "Mul", inputs = ["torch", "5"] },
  { name = "l", type = "Concat", inputs = ["gate", "self"] },
  { name = "__hidden", type = "AdaptiveAvgPool2d", output_size = 1 },
  { type = "Flatten" },
  { name = "fc", type = "Linear", out_features = 3 },
]

[model.blocks.Down]
layers = [
  { name = "conv1", type = "Conv2d", out_channels = 4, kernel_size = 3, padding = 1 },
  { name = "bn1", type = "BatchNorm2d" },
  { name = "short", type = "Conv2d", out_channels = 4, kernel_size = 1, inputs = ["input"] },
  { name = "add", type = "Add", inputs = ["bn1", "short"] },
  { type = "ReLU" },
]

[data]
name = "digits"
"""

# A block inside a block: Stage holds two Downs, whose first takes 3 channels in the first
# Stage and 4 in the others; stage2 repeats one Stage three times.
NESTED_BLOCKS = """
[model]
input_shape = [3, 8, 8]
layers = [
  { name = "stage", type = "Stage", repeat = 2 },
  { name = "stage2", type = "Stage", repeat = 3 },
  { type = "Flatten" },
  { name = "fc", type = "Linear", out_features = 3 },
]

[model.blocks.Stage]
layers = [
  { name = "down", type = "Down", repeat = 2 },
  { name = "norm", type = "LayerNorm" },
]

[model.blocks.Down]
layers = [
  { name = "conv1", type = "Conv2d", out_channels = 4, kernel_size = 3, padding = 1 },
  { name = "bn1", type = "BatchNorm2d" },
  { name = "short", type = "Conv2d", out_channels = 4, kernel_size = 1, inputs = ["input"] },
  { name = "add", type = "Add", inputs = ["bn1", "short"] },
]

[data]
name = "digits"
"""


def gated_graph() -> Experiment:
    return parse_experiment(GATED_GRAPH, "gated-graph.toml")


def awkward_graph() -> Experiment:
    return parse_experiment(AWKWARD_GRAPH, "awkward-graph.toml")


def nested_blocks() -> Experiment:
    return parse_experiment(NESTED_BLOCKS, "nested-blocks.toml")
