"""Build an experiment's model, taking the input shape, dtype and vocabulary from its dataset."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.engine.datasets import DatasetInfo, describe_dataset
from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import Experiment, ModelSpec
from workbench.engine.model_builder import BuiltModel, build_model


def _data_info(experiment: Experiment) -> DatasetInfo | None:
    """The dataset's description, unless the model says all it needs (a float input layer)."""
    model = experiment.model
    if model.input_shape is not None and model.input_dtype == "float32":
        return None
    return describe_dataset(experiment.data)


def experiment_input_shape(experiment: Experiment) -> tuple[int, ...]:
    shape = experiment.model.input_shape or describe_dataset(experiment.data).input_shape
    return tuple(shape)


def build_experiment_model(experiment: Experiment) -> BuiltModel:
    info = _data_info(experiment)
    if info is None:
        return build_model(experiment.model, experiment_input_shape(experiment))
    return build_data_model(experiment.model, info)


def build_data_model(spec: ModelSpec, info: DatasetInfo) -> BuiltModel:
    """The model for this data: its sample shape, dtype and vocabulary (checked against the
    model's own input layer where it has one)."""
    return build_model(
        spec,
        model_input_shape(spec, info.input_shape, info.name),
        vocab_size=info.vocab_size,
        input_dtype=model_input_dtype(spec, info),
    )


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


def model_input_dtype(spec: ModelSpec, info: DatasetInfo) -> str:
    """Token ids when the data gives them (a model of float inputs could not take them);
    a model that wants token ids refuses data of floats."""
    if info.input_dtype == "long":
        return "long"
    if spec.input_dtype == "long":
        raise ModelBuildError(
            f'model.input_dtype is "long" (token ids), but the {info.name} data gives float '
            'samples; use text data (data.name = "text", or csv with data.text_column), or '
            "remove model.input_dtype"
        )
    return spec.input_dtype
