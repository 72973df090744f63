"""Build an experiment's model, taking the input shape from its dataset when the file omits it."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.engine.datasets import describe_dataset
from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import Experiment, ModelSpec
from workbench.engine.model_builder import BuiltModel, build_model


def experiment_input_shape(experiment: Experiment) -> tuple[int, ...]:
    shape = experiment.model.input_shape or describe_dataset(experiment.data).input_shape
    return tuple(shape)


def build_experiment_model(experiment: Experiment) -> BuiltModel:
    return build_model(experiment.model, experiment_input_shape(experiment))


def model_input_shape(spec: ModelSpec, data_shape: Sequence[int], dataset: str) -> tuple[int, ...]:
    """The shape the model is built for: its input layer's (model.input_shape), which the
    data must then give, or else the data's own."""
    if spec.input_shape is None:
        return tuple(data_shape)
    if tuple(spec.input_shape) != tuple(data_shape):
        wanted, given = list(spec.input_shape), list(data_shape)
        raise ModelBuildError(
            f"model.input_shape is {wanted}, but the {dataset} data gives samples of {given}; "
            f"remove model.input_shape to build the model for the data, or use data whose "
            f"samples are {wanted}"
        )
    return tuple(spec.input_shape)
