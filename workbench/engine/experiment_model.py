"""Build an experiment's model, taking the input shape from its dataset when the file omits it."""

from __future__ import annotations

from workbench.engine.datasets import describe_dataset
from workbench.engine.experiment import Experiment
from workbench.engine.model_builder import BuiltModel, build_model


def experiment_input_shape(experiment: Experiment) -> tuple[int, ...]:
    shape = experiment.model.input_shape or describe_dataset(experiment.data).input_shape
    return tuple(shape)


def build_experiment_model(experiment: Experiment) -> BuiltModel:
    return build_model(experiment.model, experiment_input_shape(experiment))
