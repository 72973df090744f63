"""The layer catalogue: complete, named as torch.nn names things, and grouped for the GUI."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from torch import nn

from workbench.engine import backbones, merge_layers, sequence_layers
from workbench.engine.errors import ModelBuildError
from workbench.engine.layers import CATALOGUE, CATEGORIES, PARAM_KINDS, categories, layer_type

REQUIRED_TYPES = {
    *("Linear", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"),
    *("BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "Dropout2d", "Flatten", "Identity"),
    *("ReLU", "LeakyReLU", "GELU", "SiLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"),
}
INFERRED_SIZES = {"in_features", "in_channels", "num_features", "normalized_shape"}
# Sequence layers: sizes from the input's features, its length, or the data's vocabulary.
INFERRED_SIZES |= {"input_size", "embed_dim", "d_model", "num_positions", "num_embeddings"}
INFERRED_BY_TYPE = {("PositionalEmbedding", "embedding_dim")}  # Embedding's is the user's
# Where the catalogue's default deliberately differs from torch's (torch's is missing or unsafe).
OWN_DEFAULTS = {("Softmax", "dim"), ("LogSoftmax", "dim")}


def test_catalogue_has_every_required_type() -> None:
    assert set(CATALOGUE) >= REQUIRED_TYPES


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_entry_names_a_torch_class_and_its_real_arguments(name: str) -> None:
    entry = CATALOGUE[name]
    # Merges join branches, which torch.nn has no class for: they are our own small modules;
    # so are the sequence layers torch.nn lacks (PositionalEmbedding, TransformerBlock, ...);
    # a backbone is a torchvision network, made by our own Backbone class.
    owner = {"Merge": merge_layers, "Pretrained": backbones}.get(entry.category, nn)
    if entry.module is not None and entry.category == "Sequence":
        owner = sequence_layers
    assert entry.module_class is getattr(owner, name)
    constructor = entry.module_class.__init__
    if issubclass(entry.module_class, nn.RNNBase):  # nn.LSTM(*args, **kwargs) documents these
        constructor = nn.RNNBase.__init__
    signature = inspect.signature(constructor).parameters
    for param in entry.params:
        assert param.name in signature, f"{name}.{param.name} is not a torch argument"
        assert param.kind in PARAM_KINDS
        torch_default = signature[param.name].default
        if param.required or param.inferred:
            assert param.default is None
        elif (name, param.name) not in OWN_DEFAULTS:
            assert param.default == torch_default, f"{name}.{param.name}"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_only_sizes_that_follow_from_the_input_are_inferred(name: str) -> None:
    for param in CATALOGUE[name].params:
        inferred = param.name in INFERRED_SIZES or (name, param.name) in INFERRED_BY_TYPE
        assert param.inferred == inferred
        if param.required:
            assert param.initial is not None  # a new layer's editor starts with a usable value


def test_categories_group_every_entry_once_in_menu_order() -> None:
    grouped = categories()
    assert tuple(grouped) == CATEGORIES
    listed = [entry.name for entries in grouped.values() for entry in entries]
    assert sorted(listed) == sorted(CATALOGUE)
    assert [entry.name for entry in grouped["Pooling"]][:2] == ["MaxPool1d", "MaxPool2d"]
    assert "Conv2d" in [entry.name for entry in grouped["Convolution"]]


def test_layer_type_looks_up_and_suggests() -> None:
    assert layer_type("ReLU").category == "Activation"
    with pytest.raises(ModelBuildError, match=r"unknown layer type 'relu'; did you mean 'ReLU'\?"):
        layer_type("relu")
    with pytest.raises(ModelBuildError, match="known types: Linear, Conv1d"):
        layer_type("Wavelet")


def test_param_lookup_and_shared_help() -> None:
    conv = layer_type("Conv2d")
    assert conv.param_names[:3] == ("in_channels", "out_channels", "kernel_size")
    assert conv.param("padding").choices == ("valid", "same")
    assert conv.spatial_dims == 2 and conv.input_ranks == (3,)
    with pytest.raises(KeyError):
        conv.param("p")


def test_docs_list_every_catalogue_entry() -> None:
    text = (Path(__file__).parents[2] / "docs" / "layers.md").read_text(encoding="utf-8")
    for name in CATALOGUE:
        assert f"| {name} |" in text, f"docs/layers.md does not list {name}"
