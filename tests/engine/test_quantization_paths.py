"""Which implementation runs each method, the maintained-API paths, and the pieces under them."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationError,
    QuantizationOptions,
    choose_path,
    inference_options,
    legacy_eager,
    load_quantized,
    machine_backend,
    maintained,
    methods,
    quantize_experiment,
    saving,
)
from workbench.engine.trainer import Trainer

FAST = MeasureSettings(repeats=2, warmup=1, threads=1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[Experiment, dict[str, torch.Tensor]]:
    experiment = load_experiment(ROOT / "resources" / "presets" / "digits-mlp.toml")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=4)
    )
    trainer = Trainer(experiment)
    trainer.fit()
    return experiment, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


# --------------------------------------------------------------------------- choosing


def test_auto_takes_the_eager_path_here_and_says_why() -> None:
    for method in ("dynamic", "static", "qat"):
        path, reason = choose_path(method)
        assert path == "eager"
        assert reason.startswith("auto: ")
    assert "torchao" in choose_path("dynamic")[1]
    assert "PT2E" in choose_path("static")[1]


def test_auto_falls_back_to_torchao_without_the_eager_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy_eager, "eager_api_available", lambda: False)
    assert choose_path("dynamic")[0] == "torchao"
    assert choose_path("static")[0] == "pt2e"
    assert choose_path("qat")[0] == "pt2e"
    with pytest.raises(QuantizationError, match=r"path 'eager'.*use path 'pt2e'"):
        choose_path("static", "eager")
    monkeypatch.setattr(maintained, "torchao_available", lambda: False)
    with pytest.raises(QuantizationError, match="install torchao"):
        choose_path("dynamic")


def test_backend_follows_the_cpu() -> None:
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert machine_backend() == "x86"
    every = ["qnnpack", "onednn", "x86", "fbgemm", "none"]
    assert machine_backend(every, "aarch64") == "qnnpack"
    assert machine_backend(every, "x86_64") == "x86"
    assert machine_backend(["fbgemm", "none"], "x86_64") == "fbgemm"
    with pytest.raises(QuantizationError, match="no quantized CPU engine"):
        machine_backend(["none"], "x86_64")


def test_output_folder_or_file() -> None:
    assert methods.resolve_output("out", "static", "eager") == Path("out/model-static-int8.pth")
    assert methods.resolve_output("out", "static", "pt2e") == Path("out/model-static-int8.pt2")
    assert methods.resolve_output("q.pth", "dynamic", "eager") == Path("q.pth")
    assert methods.report_path_for(Path("d/q.pth")) == Path("d/q.report.json")


# --------------------------------------------------------------------------- maintained paths


def test_torchao_dynamic_reloads_without_unpickling_torchao_classes(
    tmp_path: Path, digits_mlp: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = digits_mlp
    options = QuantizationOptions(method="dynamic", path="torchao")
    outcome = quantize_experiment(experiment, state, options, tmp_path, measure=FAST)
    report = outcome.report
    assert report.path == "torchao" and report.path_reason == "asked for"
    assert report.reload_identical is True
    assert report.accuracy_change_points is not None
    assert abs(report.accuracy_change_points) <= 2.0
    weight = outcome.model.get_submodule("1").weight
    assert type(weight).__name__ == "Int8Tensor"
    payload = torch.load(outcome.model_path, weights_only=True)  # plain tensors only
    assert payload["tensors"]["1.weight::qdata"].dtype == torch.int8


def test_pt2e_static_saves_an_exported_program(
    tmp_path: Path, digits_mlp: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = digits_mlp
    options = QuantizationOptions(method="static", path="pt2e", calibration_samples=64)
    outcome = quantize_experiment(experiment, state, options, tmp_path, measure=FAST)
    assert outcome.model_path.suffix == ".pt2"
    assert outcome.report.reload_identical is True
    assert outcome.report.accuracy_change_points is not None
    assert abs(outcome.report.accuracy_change_points) <= 2.0
    assert any("torch.compile" in note for note in outcome.report.notes)
    loaded = load_quantized(outcome.model_path)
    assert loaded.recipe.path == "pt2e" and loaded.experiment == experiment
    ops = {str(node.target) for node in loaded.module.graph.nodes}  # type: ignore[union-attr]
    assert any("dequantize" in op for op in ops)


def test_pt2e_keeps_unannotated_layers_float_with_a_note() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.SiLU(), nn.Linear(16, 4)).eval()
    prepared = maintained.pt2e_prepare(model, torch.randn(8, 1, 8, 8), "x86", "minmax", qat=False)
    assert maintained.pt2e_float_layers(prepared, model) == [2]
    assert "layer 2 (SiLU)" in maintained.pt2e_float_note(2, model[2], "x86")


def test_a_pt2_holding_pickled_weights_is_refused(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(8, 4)).eval()
    maintained.torchao_dynamic(model)  # torchao tensors are pickled inside a .pt2
    program = torch.export.export(model, (torch.randn(2, 8),))
    path = tmp_path / "unsafe.pt2"
    torch.export.save(program, path)
    with pytest.raises(QuantizationError, match=r"pickled object.*refusing"):
        saving.load_quantized(path)


# --------------------------------------------------------------------------- eager pieces


def test_quantized_tensors_round_trip_as_plain_tensors() -> None:
    weight = torch.randn(4, 3)
    with legacy_eager.quiet():  # creating quantized tensors is deprecated, and warns
        per_channel = torch.quantize_per_channel(
            weight, torch.rand(4) / 10 + 0.01, torch.zeros(4, dtype=torch.long), 0, torch.qint8
        )
        per_tensor = torch.quantize_per_tensor(weight, 0.05, 3, torch.quint8)
    state = {"a": per_channel, "b": (per_tensor, torch.ones(2)), "c": torch.qint8, "d": None}
    tensors, layout = legacy_eager.encode_state(state)
    assert all(not tensor.is_quantized for tensor in tensors.values())
    decoded = legacy_eager.decode_state(tensors, layout)
    assert torch.equal(decoded["a"].int_repr(), per_channel.int_repr())
    assert torch.equal(decoded["a"].q_per_channel_scales(), per_channel.q_per_channel_scales())
    assert decoded["b"][0].q_scale() == 0.05 and decoded["b"][0].q_zero_point() == 3
    assert decoded["c"] is torch.qint8 and decoded["d"] is None


def test_stubs_go_at_every_float_int8_boundary() -> None:
    layers = nn.Sequential(nn.Linear(4, 4), nn.SiLU(), nn.Linear(4, 4), nn.LogSoftmax(dim=1))
    stubbed = legacy_eager.with_stubs(layers, {1, 3})
    assert [name for name, _ in stubbed.named_children()] == [
        "quant_before_0",
        "0",
        "dequant_before_1",
        "1",
        "quant_before_2",
        "2",
        "dequant_before_3",
        "3",
    ]


def test_fusion_groups_follow_what_the_stack_allows() -> None:
    stack = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.BatchNorm2d(4, track_running_stats=False),  # nothing to fold
        nn.Flatten(),
        nn.Linear(4, 4),
        nn.ReLU(),
        nn.Linear(4, 4),
    )
    assert legacy_eager.fusion_groups(stack) == [["0", "1", "2"], ["3", "4"], ["8", "9"]]


def test_inference_options_guard_compile_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler found\nlong details")

    monkeypatch.setattr(torch, "compile", refuse)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))
    x = torch.randn(64, 1, 8, 8)
    settings = dataclasses.replace(FAST, compile=True)
    rows = {row.name: row for row in inference_options(model, x[:1], x, settings)}
    assert rows["torch.compile"].status == "not available"
    assert rows["torch.compile"].detail == "not available: no C++ compiler found"
    assert rows["channels_last"].status == "measured"


@pytest.mark.slow
def test_torch_compile_is_measured_when_asked() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.randn(64, 1, 8, 8)
    settings = dataclasses.replace(FAST, compile=True)
    row = {r.name: r for r in inference_options(model, x[:1], x, settings)}["torch.compile"]
    assert row.status in ("measured", "not available")
    assert (row.latency is not None) == (row.status == "measured")


def test_dynamic_covers_lstm_and_gru_where_present() -> None:
    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)
            self.gru = nn.GRU(16, 16, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden, _ = self.gru(self.lstm(x)[0])
            result: torch.Tensor = self.head(hidden[:, -1])
            return result

    torch.manual_seed(0)
    model = Recurrent().eval()
    x = torch.randn(4, 5, 8)
    quantized = legacy_eager.quantize_dynamic(model, "x86")
    kinds = {name: type(module).__module__ for name, module in quantized.named_children()}
    assert all(kind.startswith("torch.ao.nn.quantized.dynamic") for kind in kinds.values())
    assert torch.allclose(quantized(x), model(x), atol=0.05)
