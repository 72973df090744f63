"""Training a pretrained backbone on your own images: what stays frozen, the feature cache, the
command line's messages, and the rest of the run (precision, resume, reconcile, Grad-CAM)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.transfer_helpers import (
    RESNET18_FILE,
    experiment_text,
    save_random_resnet18,
    write_image_folder,
)
from workbench.cli import main
from workbench.engine import backbone_weights, feature_cache
from workbench.engine.errors import TrainingError
from workbench.engine.experiment import Experiment, parse_experiment
from workbench.engine.insight.grad_cam import GradCamError, grad_cam
from workbench.engine.model_builder import build_model
from workbench.engine.model_spec import LayerSpec, ModelSpec
from workbench.engine.reports import BaseObserver
from workbench.engine.trainer import Trainer


class Log(BaseObserver):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of five classes (a gray, an RGBA and a corrupt file among them) and a resnet18
    weights file with random weights."""
    root = tmp_path_factory.mktemp("transfer")
    write_image_folder(root / "photos")
    save_random_resnet18(root / RESNET18_FILE)
    return root


def experiment(place: Path, freeze: str = "true") -> Experiment:
    text = experiment_text(place / "photos", str(place / RESNET18_FILE), freeze, batch_size=4)
    return parse_experiment(text)


def trained(exp: Experiment) -> tuple[Trainer, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    trainer = Trainer(exp, observer=Log())
    trainer.prepare()
    before = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    trainer.fit()
    return trainer, before, trainer.model.state_dict()


def changed_modules(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    """`backbone.layer4`, `fc`: the modules with a tensor that is not bit-identical."""
    names = set()
    for key, value in before.items():
        if not torch.equal(value, after[key]):
            parts = key.split(".")
            names.add(".".join(parts[:2]) if parts[0] == "backbone" else parts[0])
    return names


def test_summary_of_the_resnet18_example_counts_frozen_and_trainable(
    place: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "transfer.toml"
    file.write_text(experiment_text(place / "photos", str(place / RESNET18_FILE)))
    assert main(["summary", str(file)]) == 0
    out = capsys.readouterr().out
    assert "Parameters: 11,179,077, of which 2,565 trainable (11,176,512 frozen)\n" in out
    assert "0  backbone  Backbone  [512]         11,176,512" in out
    assert f"Skipped 1 unreadable image(s):\n  {place / 'photos' / 'cat' / 'broken.png'}:" in out
    assert "Class balance (training / validation images): ant " in out
    assert (
        "Images: Resize(37, bilinear) → CenterCrop(32) → Normalize(mean=[0.485, 0.456, 0.406], "
        "std=[0.229, 0.224, 0.225]) (resnet18 IMAGENET1K_V1 weights' preprocessing)"
    ) in out
    assert "Backbone 'backbone': resnet18, 11,176,512 parameters, all frozen" in out


def test_one_epoch_frozen_changes_the_head_only(place: Path) -> None:
    trainer, before, after = trained(experiment(place))
    assert changed_modules(before, after) == {"fc"}
    lines = trainer.observer.lines  # type: ignore[attr-defined]
    assert any(line.startswith("Feature cache: resnet18 features of 26 training") for line in lines)
    assert f"Backbone 'backbone': resnet18 weights from {place / RESNET18_FILE}" in "\n".join(lines)
    assert not trainer.model.backbone.takes_features  # back to images after the run


def test_last_1_trains_layer4_and_the_head_at_their_learning_rates(place: Path) -> None:
    trainer, before, after = trained(experiment(place, freeze='"last:1"'))
    assert changed_modules(before, after) == {"backbone.layer4", "fc"}
    head, backbone = trainer.optimizer.param_groups
    assert (head["lr"], backbone["lr"]) == (0.05, pytest.approx(0.005))
    assert sum(p.numel() for p in backbone["params"]) == 8_393_728
    lines = "\n".join(trainer.observer.lines)  # type: ignore[attr-defined]
    assert "Feature cache off: 'backbone' is not fully frozen (freeze = 'last:1')" in lines
    assert "8,393,728 trainable at lr x 0.1" in lines


def test_the_feature_cache_trains_exactly_like_recomputing(
    place: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exp = dataclasses.replace(
        experiment(place), train=dataclasses.replace(experiment(place).train, epochs=3)
    )
    cached, _, with_cache = trained(exp)
    monkeypatch.setattr(feature_cache, "MEMORY_BUDGET_BYTES", 0)  # to a file in the run folder
    on_disk = Trainer(exp, observer=Log(), out_dir=tmp_path / "run")
    on_disk.fit()
    monkeypatch.setattr(
        "workbench.engine.trainer.cacheable_backbone", lambda built, exp: (None, "")
    )
    recomputed, _, without = trained(exp)
    assert [row["val_accuracy"] for row in cached.history] == [
        row["val_accuracy"] for row in recomputed.history
    ]
    for first, second in zip(cached.history, recomputed.history, strict=True):
        assert first["train_loss"] == pytest.approx(second["train_loss"], rel=1e-5)
    torch.testing.assert_close(with_cache["fc.weight"], without["fc.weight"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(on_disk.model.state_dict()["fc.weight"], with_cache["fc.weight"])
    assert "in " + str(tmp_path / "run" / "feature-cache") in "\n".join(on_disk.observer.lines)  # type: ignore[attr-defined]
    assert not (tmp_path / "run" / "feature-cache").exists()  # removed when the run ends


def test_random_augmentation_turns_the_cache_off(place: Path) -> None:
    exp = experiment(place)
    augment = parse_experiment(
        "[data]\naugment = { horizontal_flip = 0.5, brightness = 0.2 }\n"
    ).data.augment
    exp = dataclasses.replace(exp, data=dataclasses.replace(exp.data, augment=augment))
    trainer, before, after = trained(exp)
    lines = "\n".join(trainer.observer.lines)  # type: ignore[attr-defined]
    assert "Feature cache off: data.augment changes the images every epoch" in lines
    assert (
        "Augmentation (training images only): Resize(37, bilinear) → CenterCrop(32) → "
        "RandomHorizontalFlip(p=0.5) → ColorJitter(brightness=0.2)"
    ) in lines
    assert changed_modules(before, after) == {"fc"}


def test_default_weights_offline_with_an_empty_cache_exit_2_with_one_message(
    place: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import urllib.error

    def offline(url: str) -> object:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(backbone_weights, "_open_url", offline)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    file = tmp_path / "transfer.toml"
    file.write_text(experiment_text(place / "photos", "DEFAULT"))
    assert main(["train", str(file)]) == 2
    out, err = capsys.readouterr()
    target = tmp_path / "hub" / "checkpoints" / RESNET18_FILE
    assert err == (
        "error: the resnet18 weights IMAGENET1K_V1 are not in the torch hub cache and could not "
        "be downloaded ([Errno -3] Temporary failure in name resolution); download "
        f"https://download.pytorch.org/models/resnet18-f37072fd.pth and put it at {target} "
        '(TORCH_HOME moves that folder), or set weights to a local file or "none"\n'
    )
    assert "Epoch" not in out


def test_bf16_mixed_and_resume_continue_like_one_run(place: Path, tmp_path: Path) -> None:
    exp = experiment(place)
    train = dataclasses.replace(exp.train, precision="bf16-mixed", epochs=2)
    exp = dataclasses.replace(exp, train=train)
    whole = Trainer(exp, out_dir=tmp_path / "whole")
    whole.fit()
    first = Trainer(
        dataclasses.replace(exp, train=dataclasses.replace(train, epochs=1)),
        out_dir=tmp_path / "half",
    )
    first.fit()
    resumed = Trainer(exp, out_dir=tmp_path / "half", resume_from=tmp_path / "half/checkpoint.pt")
    resumed.fit()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert resumed.history[-1]["val_accuracy"] == whole.history[-1]["val_accuracy"]
    assert whole.precision.name == "bf16-mixed"


def test_reconcile_says_a_torchvision_file_fits_the_backbone_node(
    place: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "transfer.toml"
    file.write_text(experiment_text(place / "photos", "none"))
    weights = place / RESNET18_FILE
    assert main(["reconcile", str(weights), str(file)]) == 1
    out = capsys.readouterr().out
    assert (
        "The file holds resnet18 weights for the Backbone layer 'backbone': its 120 tensors fit "
        "under the prefix 'backbone.'; its classifier (fc.weight, fc.bias) is not used. Use it "
        f'as the layer\'s weights (weights = "{weights}"), or add the prefix: workbench edit '
        f"{weights} -o OUT --drop fc.weight --drop fc.bias --add-prefix backbone."
    ) in out


def test_grad_cam_points_at_the_evidence_without_touching_the_model(place: Path) -> None:
    exp = experiment(place, freeze="false")
    trainer = Trainer(exp)
    trainer.prepare()
    model = trainer.model
    image = torch.zeros(3, 64, 64)
    image[:, 8:24, 40:56] = 3.0  # one bright patch
    state = {key: value.clone() for key, value in model.state_dict().items()}
    cam = grad_cam(model, image, target=2)
    assert cam.heatmap.shape == (64, 64) and cam.layer == "backbone.layer4"
    assert cam.target == 2 and cam.probabilities.shape == (5,)
    assert cam.heatmap.min() >= 0.0 and cam.heatmap.max() == pytest.approx(1.0)
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in state.items())
    assert all(parameter.grad is None for parameter in model.parameters())
    # at 32x32, layer4's map is 1x1: the last larger one is layer3's 2x2
    assert grad_cam(model, torch.zeros(3, 32, 32)).layer == "backbone.layer3"
    flat = build_model(
        ModelSpec(layers=(LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 2}))),
        (3, 8, 8),
    )
    with pytest.raises(GradCamError, match="needs a convolutional feature map larger than 1x1"):
        grad_cam(flat.module, torch.zeros(3, 8, 8))


def test_static_pt2e_quantizes_a_resnet_backbone(place: Path) -> None:
    """torchvision's ResNet blocks call one ReLU twice; the quantizer must still take them."""
    import copy

    from workbench.engine.quantization import maintained

    exp = experiment(place)
    trainer = Trainer(exp)
    trainer.prepare()
    model = trainer.model.eval()
    x = torch.randn(4, 3, 32, 32)
    prepared = maintained.pt2e_prepare(copy.deepcopy(model), x, "x86", "minmax", qat=False)
    maintained.pt2e_observe(prepared, [x])
    converted = maintained.pt2e_convert(prepared, qat=False)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), atol=0.1, rtol=0.1)


def test_a_batch_of_one_for_a_training_batchnorm_is_explained(place: Path) -> None:
    text = experiment_text(place / "photos", str(place / RESNET18_FILE), '"last:1"', batch_size=5)
    with pytest.raises(TrainingError) as caught:
        Trainer(parse_experiment(text)).fit()  # 26 training images: 5 batches of 5, then 1
    assert str(caught.value) == (
        "a training batch of 1 sample reached a BatchNorm layer that is training, and BatchNorm "
        "needs at least 2; set data.drop_last = true, or a data.batch_size that does not leave "
        "1 sample over (26 training samples per process)"
    )


def test_a_backbone_is_one_node_of_a_graph(place: Path) -> None:
    text = experiment_text(place / "photos", str(place / RESNET18_FILE)).replace(
        '  { name = "fc", type = "Linear", out_features = 5 },\n',
        '  { name = "wide", type = "Linear", out_features = 5 },\n'
        '  { name = "deep1", type = "Linear", out_features = 32, inputs = ["backbone"] },\n'
        '  { name = "relu", type = "ReLU" },\n'
        '  { name = "deep2", type = "Linear", out_features = 5 },\n'
        '  { name = "sum", type = "Add", inputs = ["wide", "deep2"] },\n',
    )
    exp = parse_experiment(text.replace("batch_size = 5", "batch_size = 4"))
    trainer, before, after = trained(exp)
    assert not trainer.built.is_chain
    assert [row.name for row in trainer.built.rows] == [
        *("backbone", "wide", "deep1", "relu", "deep2", "sum"),
    ]
    assert changed_modules(before, after) == {"wide", "deep1", "deep2"}
    assert any(line.startswith("Feature cache:") for line in trainer.observer.lines)  # type: ignore[attr-defined]


@pytest.mark.cuda
def test_the_feature_cache_on_a_gpu_in_16_mixed(place: Path) -> None:
    exp = experiment(place)
    exp = dataclasses.replace(
        exp, train=dataclasses.replace(exp.train, device="cuda", precision="16-mixed", epochs=2)
    )
    trainer, before, after = trained(exp)
    assert changed_modules(before, after) == {"fc"}
    assert trainer.loaders.train.x.device.type == "cuda"  # type: ignore[attr-defined]
