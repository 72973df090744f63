"""The Backbone layer: any torchvision classifier without its head, frozen by stage, with its
pretrained weights from a file or the torch hub cache (offline: random weights saved by tests)."""

from __future__ import annotations

import copy
import hashlib
import io
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from tests.transfer_helpers import RESNET18_FILE, save_random_resnet18
from workbench.engine import backbone_weights
from workbench.engine.backbone_catalogue import backbone_info, backbone_stages
from workbench.engine.backbone_weights import (
    BackboneWeightsError,
    check_weights,
    load_pretrained_backbones,
    preprocessing_for,
)
from workbench.engine.backbones import Backbone, arch_names
from workbench.engine.experiment import parse_experiment
from workbench.engine.model_builder import build_model, plan_model
from workbench.engine.model_spec import LayerSpec, ModelSpec


def backbone_model(**params: Any) -> ModelSpec:
    values = {"arch": "resnet18", "weights": "none", **params}
    return ModelSpec(
        layers=(
            LayerSpec("Backbone", values, name="backbone"),
            LayerSpec("Linear", {"out_features": 5}, name="fc"),
        )
    )


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_resnet18(tmp_path_factory.mktemp("weights") / RESNET18_FILE)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, and a machine that is offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(url: str) -> Any:
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(backbone_weights, "_open_url", offline)
    return tmp_path / "hub" / "checkpoints"


# --------------------------------------------------------------------------- planning


def test_the_resnet18_example_counts_11_179_077_parameters_2_565_trainable() -> None:
    plan = plan_model(backbone_model(freeze=True), (3, 224, 224))
    assert plan.ok, plan.problems
    backbone, head = plan.rows
    assert backbone.output_shape == (512,) and head.output_shape == (5,)
    assert (backbone.parameters, backbone.trainable) == (11_176_512, 0)
    assert sum(row.parameters for row in plan.rows) == 11_179_077
    assert sum(row.trainable for row in plan.rows) == 2_565
    assert backbone.macs == 1_813_561_344  # torchvision publishes 1.814 GFLOPS (multiply-adds)


@pytest.mark.parametrize(
    ("arch", "features"),
    [("mobilenet_v3_small", 1024), ("efficientnet_b0", 1280), ("densenet121", 1024)],
)
def test_the_feature_size_is_the_removed_classifiers_input(arch: str, features: int) -> None:
    plan = plan_model(backbone_model(arch=arch), (3, 64, 64))
    assert plan.ok, plan.problems
    assert plan.rows[0].output_shape == (features,)


def test_a_vision_transformer_needs_its_image_size_and_gives_its_width() -> None:
    assert plan_model(backbone_model(arch="vit_b_16"), (3, 224, 224)).rows[0].output_shape == (768,)
    (problem,) = plan_model(backbone_model(arch="vit_b_16"), (3, 64, 64)).problems
    assert str(problem) == (
        "layer 0 (Backbone) receives [3, 64, 64], but vit_b_16 needs images of at least "
        "224x224; set data.image_size = 224 or more"
    )


def test_every_torchvision_classifier_is_offered() -> None:
    models = torchvision.models
    assert arch_names() == tuple(models.list_models(module=models))
    assert {"resnet18", "mobilenet_v3_large", "vit_b_16", "convnext_tiny"} <= set(arch_names())


@pytest.mark.parametrize(
    ("params", "shape", "message"),
    [
        (
            {"arch": "resnet19"},
            (3, 32, 32),
            "layer 0 (Backbone): arch = 'resnet19' is not a torchvision classification model; "
            "did you mean 'resnet18'",
        ),
        (
            {"weights": "IMAGENET"},
            (3, 32, 32),
            "layer 0 (Backbone): weights = 'IMAGENET': not a weights name of resnet18; use "
            '"DEFAULT", one of IMAGENET1K_V1, the path of a state_dict file',
        ),
        (
            {"weights": "missing/resnet18.pth"},
            (3, 32, 32),
            "layer 0 (Backbone): weights = 'missing/resnet18.pth': no such file;",
        ),
        (
            {"freeze": "last:7"},
            (3, 32, 32),
            "layer 0 (Backbone): freeze = 'last:7': the network has 6 stages; use \"last:1\" "
            'to "last:6"',
        ),
        (
            {"freeze": "half"},
            (3, 32, 32),
            "layer 0 (Backbone): freeze = 'half' is not allowed; use true",
        ),
        (
            {"freeze": 3},
            (3, 32, 32),
            'layer 0 (Backbone): freeze = 3 is not true, false or a name in quotes, e.g. "last:1"',
        ),
        (
            {},
            (1, 28, 28),
            "layer 0 (Backbone) receives [1, 28, 28], but resnet18 takes RGB images [3, height, "
            'width]; use an image folder (data.name = "image-folder": its images are converted '
            "to RGB) or cifar10",
        ),
    ],
)
def test_mistakes_are_named_against_the_layer(
    params: dict[str, Any], shape: tuple[int, ...], message: str
) -> None:
    (problem,) = plan_model(backbone_model(**params), shape).problems
    assert str(problem).startswith(message), str(problem)


def test_the_experiment_file_takes_the_issues_example() -> None:
    experiment = parse_experiment(
        '[model]\nlayers = [\n  { name = "backbone", type = "Backbone", arch = "resnet18", '
        'weights = "DEFAULT", freeze = true },\n  { name = "fc", type = "Linear", '
        "out_features = 5 },\n]\n[train]\nbackbone_lr_factor = 0.1\n"
        '[data]\nname = "image-folder"\npath = "x"\nimage_size = 64\n'
        "augment = { random_resized_crop = true, horizontal_flip = 0.5, rotation = 15 }\n"
    )
    assert experiment.model.layers[0].params == {
        "arch": "resnet18",
        "weights": "DEFAULT",
        "freeze": True,
    }
    assert experiment.train.backbone_lr_factor == 0.1 and experiment.data.image_size == 64
    assert experiment.data.augment is not None and experiment.data.augment.is_random


# --------------------------------------------------------------------------- freezing


def _changes_requires_grad(backbone: nn.Module) -> set[str]:
    return {name.split(".")[0] for name, p in backbone.named_parameters() if p.requires_grad}


def test_stages_and_last_n_freeze_whole_stages() -> None:
    assert [stage.name for stage in backbone_stages("resnet18")] == [
        *("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"),
    ]
    assert backbone_stages("resnet18")[-1].parameters == 8_393_728
    assert len(backbone_stages("mobilenet_v2")) == 19
    assert backbone_stages("vit_b_16")[-1].name == "encoder.layers.encoder_layer_11"
    built = build_model(backbone_model(freeze="last:2"), (3, 32, 32))
    assert _changes_requires_grad(built.module.backbone) == {"layer3", "layer4"}
    assert built.trainable_parameters == 2_099_712 + 8_393_728 + 2_565


def test_frozen_batchnorm_stays_in_eval_mode_across_train_calls() -> None:
    model = build_model(backbone_model(freeze="last:1"), (3, 32, 32)).module
    for _ in range(2):
        model.train()
        assert model.backbone.layer4[0].bn1.training and model.fc.training
        assert not model.backbone.bn1.training and not model.backbone.layer3[1].bn2.training
        model.eval()
        assert not model.backbone.layer4[0].bn1.training


def test_a_fully_frozen_backbone_is_a_fixed_feature_extractor() -> None:
    model = build_model(backbone_model(freeze=True), (3, 32, 32)).module
    model.train()
    assert model.fc.training and not any(m.training for m in model.backbone.modules())
    before = model.backbone.bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(model.backbone.bn1.running_mean, before)
    open_model = build_model(backbone_model(freeze=False), (3, 32, 32)).module
    open_model.train()
    assert all(m.training for m in open_model.backbone.modules())


def test_a_built_backbone_is_the_torchvision_network_with_its_keys() -> None:
    model = build_model(backbone_model(), (3, 32, 32)).module
    backbone = model.backbone
    assert isinstance(backbone, Backbone) and isinstance(backbone, torchvision.models.ResNet)
    assert isinstance(backbone.fc, nn.Identity)
    assert str(backbone).startswith("ResNet(\n  (conv1): Conv2d(3, 64")
    assert list(model.state_dict())[:2] == ["backbone.conv1.weight", "backbone.bn1.weight"]
    copied = copy.deepcopy(model)  # as the profiler and quantization copy a model
    assert type(copied.backbone) is type(backbone) and copied.backbone.always_eval
    copied.train()
    assert not copied.backbone.bn1.training
    assert all(
        torch.equal(a, b)
        for a, b in zip(copied.state_dict().values(), model.state_dict().values(), strict=True)
    )


# --------------------------------------------------------------------------- weights


def test_a_local_file_loads_without_its_classifier(resnet18_file: Path) -> None:
    model = build_model(backbone_model(weights=str(resnet18_file)), (3, 32, 32)).module
    (note,) = load_pretrained_backbones(model)
    assert note == (
        f"Backbone 'backbone': resnet18 weights from {resnet18_file}, 2 classifier tensors not used"
    )
    saved = torch.load(resnet18_file, weights_only=True)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert "fc.weight" in saved and model.fc.weight.shape == (5, 512)


def test_a_file_of_another_network_is_refused_with_its_keys(tmp_path: Path) -> None:
    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), other)
    model = build_model(backbone_model(weights=str(other)), (3, 32, 32)).module
    with pytest.raises(BackboneWeightsError) as caught:
        load_pretrained_backbones(model)
    message = str(caught.value)
    assert message.startswith(f"'backbone' (resnet18): {other} does not fit the network: ")
    assert "unexpected (layer1.2.conv1.weight" in message
    assert "`workbench reconcile FILE EXP.toml` shows every key" in message


def test_a_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": io.StringIO("x")}, hostile)
    model = build_model(backbone_model(weights=str(hostile)), (3, 32, 32)).module
    with pytest.raises(BackboneWeightsError) as caught:
        load_pretrained_backbones(model)
    assert "weights of the resnet18 backbone:" in str(caught.value)
    assert "io.StringIO" in str(caught.value)


def test_default_weights_come_from_the_torch_hub_cache(hub: Path, resnet18_file: Path) -> None:
    hub.mkdir(parents=True)
    (hub / RESNET18_FILE).write_bytes(resnet18_file.read_bytes())
    assert backbone_info("resnet18").cached
    model = build_model(backbone_model(weights="DEFAULT"), (3, 32, 32)).module
    (note,) = load_pretrained_backbones(model)
    assert note.startswith(f"Backbone 'backbone': resnet18 weights from {hub / RESNET18_FILE}")


def test_default_weights_offline_with_an_empty_cache_say_what_to_fetch(hub: Path) -> None:
    model = build_model(backbone_model(weights="DEFAULT"), (3, 32, 32)).module
    with pytest.raises(BackboneWeightsError) as caught:
        load_pretrained_backbones(model)
    assert str(caught.value) == (
        "the resnet18 weights IMAGENET1K_V1 are not in the torch hub cache and could not be "
        "downloaded (no network here); download "
        "https://download.pytorch.org/models/resnet18-f37072fd.pth and put it at "
        f"{hub / RESNET18_FILE} (TORCH_HOME moves that folder), or set weights to a local "
        'file or "none"'
    )
    assert not hub.exists() or not any(hub.iterdir())


class _Response(io.BytesIO):
    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def test_an_online_machine_downloads_into_the_cache_and_checks_the_hash(
    hub: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.pth"
    save_random_resnet18(payload)
    data = payload.read_bytes()
    fetched: list[str] = []

    def online(url: str) -> _Response:
        fetched.append(url)
        return _Response(data)

    monkeypatch.setattr(backbone_weights, "_open_url", online)
    choice = check_weights("resnet18", "DEFAULT")
    digest = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(backbone_weights.WeightsChoice, "file_name", f"resnet18-{digest[:8]}.pth")
    assert backbone_weights.fetch(choice) == hub / f"resnet18-{digest[:8]}.pth"
    assert fetched == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    monkeypatch.setattr(backbone_weights.WeightsChoice, "file_name", "resnet18-00000000.pth")
    with pytest.raises(BackboneWeightsError, match="checksum does not match resnet18-00000000"):
        backbone_weights.fetch(choice)
    assert sorted(path.name for path in hub.iterdir()) == [f"resnet18-{digest[:8]}.pth"]


def test_the_weights_preprocessing_and_published_facts() -> None:
    prep = preprocessing_for("resnet18", "DEFAULT")
    assert (prep.crop_size, prep.resize_size, prep.interpolation) == (224, 256, "bilinear")
    assert prep.mean == (0.485, 0.456, 0.406) and prep.std == (0.229, 0.224, 0.225)
    info = backbone_info("resnet18")
    assert (info.weights, info.parameters, info.input_size, info.top1) == (
        "IMAGENET1K_V1",
        11_689_512,
        224,
        69.758,
    )
    assert info.file_name == RESNET18_FILE
    assert check_weights("resnet18", "ResNet18_Weights.IMAGENET1K_V1").short_name == "IMAGENET1K_V1"
    assert check_weights("resnet18", "none").kind == "none"
