"""Build an experiment's model, taking the input shape, dtype and vocabulary from its dataset."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.engine.datasets import DatasetInfo, Loaders, describe_dataset, make_loaders
from workbench.engine.datasets.image_transforms import Preprocessing
from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import Experiment, ModelSpec
from workbench.engine.model_builder import BuiltModel, build_model


def _data_info(experiment: Experiment) -> DatasetInfo | None:
    """The dataset's description, unless the model says all it needs (a float input layer)."""
    model = experiment.model
    if model.input_shape is not None and model.input_dtype == "float32":
        return None
    return describe_dataset(experiment.data, experiment_preprocessing(experiment))


def experiment_input_shape(experiment: Experiment) -> tuple[int, ...]:
    if experiment.model.input_shape:
        return tuple(experiment.model.input_shape)
    return tuple(
        describe_dataset(experiment.data, experiment_preprocessing(experiment)).input_shape
    )


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


def experiment_preprocessing(experiment: Experiment) -> Preprocessing | None:
    """The preprocessing of the model's first backbone's weights (None without a backbone).

    A backbone whose arch or weights are wrong gets None here: planning the model names the
    problem against its layer.
    """
    layers = [
        *experiment.model.layers,
        *(layer for block in experiment.model.blocks.values() for layer in block.layers),
    ]
    for layer in layers:
        if layer.type == "Backbone":
            from workbench.engine.backbone_weights import preprocessing_for

            arch = str(layer.params.get("arch", "resnet18"))
            weights = str(layer.params.get("weights", "DEFAULT"))
            try:
                return preprocessing_for(arch, weights)
            except ValueError:
                return None
    return None


def experiment_loaders(experiment: Experiment, *, rank: int = 0, world_size: int = 1) -> Loaders:
    """The experiment's batches as its model needs them (a backbone's preprocessing applied)."""
    return make_loaders(
        experiment.data,
        experiment.train.seed,
        rank=rank,
        world_size=world_size,
        preprocessing=experiment_preprocessing(experiment),
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
