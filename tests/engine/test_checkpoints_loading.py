"""Opening checkpoint files: formats, wrappers, the unsafe-globals refusal and damaged files."""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from workbench.engine.checkpoints import (
    UnsafeCheckpointError,
    find_unsafe_globals,
    open_checkpoint,
)
from workbench.engine.checkpoints.pickle_scan import globals_in_pickle
from workbench.engine.checkpoints.report import inspection_text
from workbench.engine.errors import CheckpointError


def small_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    return model.state_dict()


class TouchesMarker:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"echo pwned > {self.marker}",))


def test_plain_state_dict_opens_with_keys_in_file_order(tmp_path: Path) -> None:
    state = small_state_dict()
    path = tmp_path / "plain.pth"
    torch.save(state, path)
    checkpoint = open_checkpoint(path)
    assert list(checkpoint.state_dict) == list(state)
    assert all(torch.equal(checkpoint.state_dict[k], state[k]) for k in state)
    assert (checkpoint.format, checkpoint.layout, checkpoint.location) == (
        "zip",
        "plain state_dict",
        None,
    )
    assert checkpoint.metadata == {}


def test_zip_files_are_memory_mapped_and_weights_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plain.pt"
    torch.save(small_state_dict(), path)
    calls: list[dict[str, Any]] = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    open_checkpoint(path)
    assert calls and calls[0]["weights_only"] is True and calls[0]["mmap"] is True


def test_device_at_save_time_is_reported_and_tensors_open_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a GPU here, record "cuda:0" as the save location the way torch.save would.
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    path = tmp_path / "gpu.pth"
    torch.save({"w": torch.ones(2)}, path)
    monkeypatch.undo()
    checkpoint = open_checkpoint(path)
    assert checkpoint.saved_devices == {"w": "cuda:0"}
    assert checkpoint.state_dict["w"].device == torch.device("cpu")
    table = inspection_text(checkpoint).splitlines()
    assert table[5].split() == ["key", "shape", "dtype", "numel", "size", "saved", "on"]
    assert table[6].split() == ["w", "[2]", "float32", "2", "8", "B", "cuda:0"]


def test_legacy_format_opens(tmp_path: Path) -> None:
    state = small_state_dict()
    path = tmp_path / "legacy.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    checkpoint = open_checkpoint(path)
    assert checkpoint.format == "legacy"
    assert all(torch.equal(checkpoint.state_dict[k], state[k]) for k in state)


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model", "module"])
def test_state_dict_found_inside_common_wrappers(tmp_path: Path, wrapper: str) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({wrapper: small_state_dict(), "epoch": 7, "best_acc": 0.91}, path)
    checkpoint = open_checkpoint(path)
    assert checkpoint.location == wrapper
    assert list(checkpoint.state_dict) == list(small_state_dict())
    assert checkpoint.metadata == {"epoch": 7, "best_acc": 0.91}


def test_nested_wrapper_is_found(tmp_path: Path) -> None:
    path = tmp_path / "nested.pth"
    torch.save({"model": {"state_dict": small_state_dict(), "arch": "mlp"}}, path)
    checkpoint = open_checkpoint(path)
    assert checkpoint.location == "model.state_dict"
    assert checkpoint.metadata == {"model": {"arch": "mlp"}}


def lightning_checkpoint() -> dict[str, Any]:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}},
        "callbacks": {},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 0.01, "hidden": [64, 32]},
    }


def test_lightning_layout_keeps_metadata_as_json(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    torch.save(lightning_checkpoint(), path)
    checkpoint = open_checkpoint(path)
    assert checkpoint.layout == "Lightning checkpoint"
    assert checkpoint.location == "state_dict"
    assert list(checkpoint.state_dict) == ["model.weight", "model.bias"]
    meta = checkpoint.metadata
    assert (meta["epoch"], meta["global_step"]) == (3, 120)
    assert meta["hyper_parameters"] == {"lr": 0.01, "hidden": [64, 32]}
    optimizer = meta["optimizer_states"][0]
    assert optimizer["state"] == "2 parameters with step, exp_avg, exp_avg_sq"
    assert optimizer["param_groups"][0]["lr"] == 0.01
    assert optimizer["param_groups"][0]["params"] == 2
    assert json.loads(json.dumps(meta)) == meta


def test_safetensors_open_with_header_metadata(tmp_path: Path) -> None:
    state = {"layer10.w": torch.ones(2), "layer9.w": torch.zeros(3, dtype=torch.bfloat16)}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path), metadata={"source": "test"})
    checkpoint = open_checkpoint(path)
    assert checkpoint.format == "safetensors"
    assert list(checkpoint.state_dict) == ["layer9.w", "layer10.w"]  # natural order
    assert checkpoint.state_dict["layer9.w"].dtype == torch.bfloat16
    assert checkpoint.metadata == {"safetensors_metadata": {"source": "test"}}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_file_that_would_run_code_is_refused_and_code_never_runs(
    tmp_path: Path, legacy: bool
) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    payload = {"weight": torch.zeros(2), "extra": TouchesMarker(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError) as caught:
        open_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "refused" in message
    assert "pathlib.Path" in caught.value.unsafe_globals
    assert "  - pathlib.Path" in message
    assert "--trust-this-file" in message
    assert not marker.exists()


def test_os_system_payload_is_refused_with_the_global_named(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "shell.pt"
    torch.save({"w": torch.ones(1), "x": RunsShell(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as caught:
        open_checkpoint(path)
    system = [g for g in caught.value.unsafe_globals if g.endswith(".system")]
    assert system and system[0] in str(caught.value)
    assert not marker.exists()


def test_protocol_4_pickles_are_scanned_too(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    scanned = globals_in_pickle(io.BytesIO(pickle.dumps(TouchesMarker(marker), protocol=4)))
    assert any(name.startswith("pathlib.") for name in scanned)
    path = tmp_path / "p4.pth"
    torch.save({"w": torch.ones(1), "x": TouchesMarker(marker)}, path, pickle_protocol=4)
    assert any(name.startswith("pathlib.") for name in find_unsafe_globals(path))
    with pytest.raises(UnsafeCheckpointError):
        open_checkpoint(path)
    assert not marker.exists()


def test_plain_checkpoint_has_no_unsafe_globals(tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    torch.save(lightning_checkpoint(), path)
    assert find_unsafe_globals(path) == []


def test_trust_for_another_file_does_not_open_this_one(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"x": TouchesMarker(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="which is not this file"):
        open_checkpoint(path, trust_file=tmp_path / "other.pth")
    assert not marker.exists()


def test_trusted_file_is_unpickled_in_another_process_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    path = tmp_path / "whole_model.pth"
    torch.save({"model": model, "epoch": 2}, path)  # a pickled nn.Module: needs unsafe globals
    real_load = torch.load

    def weights_only_here(*args: Any, **kwargs: Any) -> Any:
        assert kwargs.get("weights_only") is True, "this process must never unpickle code"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", weights_only_here)
    checkpoint = open_checkpoint(path, trust_file=str(path))
    assert checkpoint.loaded_in_subprocess
    assert list(checkpoint.state_dict) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(checkpoint.state_dict[key], value)
    assert checkpoint.location == "model"
    assert checkpoint.metadata == {"epoch": 2}


# --- damaged and wrong files ------------------------------------------------------------------


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def saved_bytes(tmp_path: Path, legacy: bool = False) -> bytes:
    path = tmp_path / "source.pth"
    torch.save(small_state_dict(), path, _use_new_zipfile_serialization=not legacy)
    return path.read_bytes()


def assert_refused(path: Path, *phrases: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message


def test_truncated_zip_checkpoint(tmp_path: Path) -> None:
    data = saved_bytes(tmp_path)
    path = write_bytes(tmp_path, "cut.pth", data[: len(data) // 2])
    assert_refused(path, "truncated or damaged", "download it again")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_truncated_legacy_checkpoint(tmp_path: Path, fraction: float) -> None:
    data = saved_bytes(tmp_path, legacy=True)
    path = write_bytes(tmp_path, "cut.pth", data[: int(len(data) * fraction)])
    assert_refused(path, "truncated or damaged")


def test_random_bytes(tmp_path: Path) -> None:
    data = bytes([0x13]) + random.Random(0).randbytes(4096)
    path = write_bytes(tmp_path, "noise.pth", data)
    assert_refused(path, "not a PyTorch checkpoint or safetensors file", "first bytes 13")


def test_empty_file(tmp_path: Path) -> None:
    assert_refused(write_bytes(tmp_path, "empty.pth", b""), "empty (0 bytes)")


def test_text_file(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "notes.pth", b"epoch 3, loss 0.2\nmore notes\n")
    assert_refused(path, "is text", "epoch 3, loss 0.2")


def test_git_lfs_pointer(tmp_path: Path) -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    assert_refused(write_bytes(tmp_path, "model.bin", pointer), "git lfs pull")


def test_html_page_saved_instead_of_weights(tmp_path: Path) -> None:
    assert_refused(write_bytes(tmp_path, "m.pth", b"<!DOCTYPE html><html>"), "HTML")


def test_zip_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert_refused(path, "zip archive but not a PyTorch checkpoint", "readme.txt")


def test_plain_pickle_not_from_torch_save(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "plain.pkl", pickle.dumps({"a": 1}, protocol=2))
    assert_refused(path, "not one written by torch.save")


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "full.safetensors"
    save_file({"w": torch.ones(1000)}, str(path))
    data = path.read_bytes()
    assert_refused(write_bytes(tmp_path, "cut.safetensors", data[:-100]), "damaged")
    assert_refused(write_bytes(tmp_path, "head.safetensors", data[:40]), "header")


def test_missing_file_names_nearby_checkpoints(tmp_path: Path) -> None:
    torch.save(small_state_dict(), tmp_path / "model_best.pth")
    assert_refused(tmp_path / "model_bst.pth", "no such file", "model_best.pth")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    assert_refused(tmp_path, "is a folder")


def test_file_without_tensors(tmp_path: Path) -> None:
    path = tmp_path / "config.pth"
    torch.save({"lr": 0.1, "epochs": 3}, path)
    assert_refused(path, "no tensors")
