"""Hostile and odd checkpoints: formats told by structure, budgets, unreadable tensors, escaping."""

from __future__ import annotations

import collections
import os
import pickle
import stat
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from tests.checkpoint_crafting import (
    Storage,
    View,
    data_pickle,
    safetensors_with_header,
    write_legacy,
    write_torch_zip,
    write_zip_bomb,
)
from workbench.engine.checkpoints import (
    AnalysisCancelled,
    cast_floating,
    diff_state_dicts,
    find_unsafe_globals,
    open_checkpoint,
    save_state_dict,
    tensor_histogram,
    tensor_stats,
)
from workbench.engine.checkpoints.report import inspection_text, metadata_text
from workbench.engine.errors import CheckpointError
from workbench.engine.run_files import load_run_checkpoint
from workbench.engine.safe_text import safe_text

FLOATS = torch.arange(10.0).numpy().tobytes()


def refused(path: Path, *phrases: str) -> str:
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(path)
    message = str(caught.value)
    for phrase in phrases:
        assert phrase in message, message
    return message


# --- format by structure ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [640, 896, 1152, 1408])
def test_safetensors_whose_header_starts_like_a_pickle_open(tmp_path: Path, length: int) -> None:
    tensors = {"fc.weight": torch.arange(6.0).reshape(2, 3), "fc.bias": torch.ones(2)}
    path = safetensors_with_header(tmp_path / f"h{length}.safetensors", tensors, length)
    assert path.read_bytes()[0] == 0x80 and 2 <= path.read_bytes()[1] <= 5
    checkpoint = open_checkpoint(path)
    assert checkpoint.format == "safetensors"
    assert list(checkpoint.state_dict) == ["fc.bias", "fc.weight"]
    assert torch.equal(checkpoint.state_dict["fc.weight"], tensors["fc.weight"])
    assert find_unsafe_globals(path) == []
    other = tmp_path / "plain.safetensors"
    save_file({k: v * 2 for k, v in tensors.items()}, str(other))
    diff = diff_state_dicts(checkpoint.state_dict, open_checkpoint(other).state_dict)
    assert [c.key for c in diff.changed] == ["fc.bias", "fc.weight"]


def test_a_cut_safetensors_with_a_pickle_like_header_says_so(tmp_path: Path) -> None:
    tensors = {"w": torch.ones(4)}
    full = safetensors_with_header(tmp_path / "full.safetensors", tensors, 640).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(full[:300])
    refused(cut, "safetensors file whose header says 648 bytes", "download it again")


# --- budgets ------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    bomb = write_zip_bomb(tmp_path / "bomb.pth")
    assert bomb.stat().st_size < 8 << 20
    refused(bomb, "zip bomb", "6.0 GiB once unpacked", "archive/data.pkl")
    with pytest.raises(CheckpointError, match="zip bomb"):
        load_run_checkpoint(bomb)


def test_a_re_zipped_checkpoint_opens_without_mmap(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.arange(1000.0)}, plain)
    deflated = tmp_path / "deflated.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
    assert torch.equal(open_checkpoint(deflated).state_dict["w"], torch.arange(1000.0))


def test_a_zip_member_that_does_not_read_back_is_named(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.arange(1000.0)}, plain)
    data = bytearray(plain.read_bytes())
    pickle_start = data.index(b"\x80\x02}")  # the stored data.pkl
    data[pickle_start + 5] ^= 0xFF  # flip a byte of the pickle: its CRC no longer matches
    bad_crc = tmp_path / "bad_crc.pth"
    bad_crc.write_bytes(bytes(data))
    refused(bad_crc, "truncated or damaged")
    deflated = tmp_path / "deflated.pth"
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", data_pickle({"w": 1}))
        archive.writestr("archive/version", "3\n")
    raw = bytearray(deflated.read_bytes())
    raw[40:44] = b"\xff\xff\xff\xff"  # inside the deflate stream of data.pkl
    deflated.write_bytes(bytes(raw))
    refused(deflated, "truncated or damaged")


def test_stride_0_views_past_the_budget_are_refused_with_the_key(tmp_path: Path) -> None:
    path = write_torch_zip(
        tmp_path / "stride0.pth", {"w": View(Storage("0", 1), (10**9,), (0,))}, {"0": FLOATS[:4]}
    )
    assert path.stat().st_size < 1024
    refused(path, "views that repeat 4 B of stored values as 3.7 GiB", "'w'", "strides [0]")


def test_overlapping_views_past_the_budget_are_refused(tmp_path: Path) -> None:
    views = {f"v{i}": View(Storage("0", 80_000), (40_000, 40_000), (1, 1)) for i in range(3)}
    path = write_torch_zip(tmp_path / "overlap.pth", views, {"0": bytes(320_000)})
    refused(path, "views that repeat 312.5 KiB", "strides [1, 1]")


def test_small_views_are_analysed_exactly_and_cast_through_their_storage(tmp_path: Path) -> None:
    views = {
        "broadcast": View(Storage("0", 10), (300, 4), (0, 1), 2),
        "overlap": View(Storage("0", 10), (5, 4), (1, 1)),
    }
    path = write_torch_zip(tmp_path / "views.pth", views, {"0": FLOATS})
    state = open_checkpoint(path).state_dict
    for tensor in state.values():
        dense = tensor.contiguous()
        stats, expected = tensor_stats(tensor), tensor_stats(dense)
        assert stats == expected
        assert tensor_histogram(tensor, 5) == tensor_histogram(dense, 5)
    half = cast_floating(state, "float16")
    assert half["broadcast"].stride() == (0, 1)
    assert half["broadcast"].untyped_storage().nbytes() == 4 * 2
    assert torch.equal(half["broadcast"], state["broadcast"].half())
    out = save_state_dict(state, tmp_path / "dense.safetensors")
    assert torch.equal(open_checkpoint(out).state_dict["overlap"], state["overlap"])


def test_exporting_huge_views_to_safetensors_is_refused(tmp_path: Path) -> None:
    state = {"w": torch.zeros(1).expand(1 << 28), "b": torch.ones(3)}
    out = tmp_path / "out.safetensors"
    with pytest.raises(CheckpointError, match="cannot hold views") as caught:
        save_state_dict(state, out)
    assert "Save to .pth instead" in str(caught.value) and not out.exists()
    save_state_dict(state, tmp_path / "out.pth")
    assert (tmp_path / "out.pth").stat().st_size < 4096


def test_a_build_opcode_that_resizes_a_storage_is_refused(tmp_path: Path) -> None:
    grow = (Storage("0", 10), 0, (10**9,), (1,))
    tensor = View(Storage("0", 10), (10,), (1,), build=grow)
    refused(write_torch_zip(tmp_path / "zip.pth", {"w": tensor}, {"0": FLOATS}), "needs more data")
    legacy = write_legacy(tmp_path / "legacy.pth", {"w": tensor}, {"0": (10, FLOATS)})
    refused(legacy, "needs more data")


def test_a_build_opcode_with_junk_state_is_a_named_error(tmp_path: Path) -> None:
    tensor = View(Storage("0", 10), (10,), (1,), build=("junk",))
    path = write_torch_zip(tmp_path / "junk.pth", {"w": tensor}, {"0": FLOATS})
    message = refused(path, "cannot follow", "TypeError", "Nothing in it was run")
    assert "cut off" not in message


class AllocatesOnLoad:
    """`bytearray(10**10)`: allowed by torch's weights-only unpickler, 20 bytes of pickle."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (bytearray, (10**10,))


class LegacyConstructor:
    def __reduce__(self) -> tuple[Any, ...]:
        return (torch.FloatTensor, (10**9,))


@pytest.mark.parametrize("payload", [AllocatesOnLoad(), LegacyConstructor()], ids=type)
def test_allocating_constructors_are_refused_before_loading(tmp_path: Path, payload: Any) -> None:
    path = write_torch_zip(tmp_path / "alloc.pth", {"w": payload})
    message = refused(path, "refused to open", "--trust-this-file")
    assert "bytearray" in message or "torch.FloatTensor" in message
    assert find_unsafe_globals(path)


class StorageConstructor:
    """`TypedStorage(n)` called by the pickle: 4n bytes the file does not hold."""

    def __init__(self, numel: int) -> None:
        self.numel = numel

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch.storage.TypedStorage, (self.numel,))


class TensorOn:
    def __init__(self, storage: Any, numel: int) -> None:
        self.args = (storage, 0, (numel,), (1,), False, collections.OrderedDict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch._utils._rebuild_tensor_v2, self.args)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_storages_the_file_does_not_hold_are_refused(tmp_path: Path) -> None:
    tensor = TensorOn(StorageConstructor(100_000_000), 100_000_000)
    path = write_torch_zip(tmp_path / "made.pth", {"w": tensor})
    refused(path, "declare 381.5 MiB of storage, but the file holds only")
    with pytest.raises(CheckpointError, match=r"declare 381\.5 MiB of storage"):
        load_run_checkpoint(path)
    huge = write_torch_zip(tmp_path / "huge.pth", {"w": TensorOn(StorageConstructor(1 << 50), 1)})
    refused(huge, "asks for more memory than this machine has")


# --- unreadable tensors -----------------------------------------------------------------------


def odd_tensors() -> dict[str, torch.Tensor]:
    return {
        "sparse": torch.eye(3).to_sparse(),
        "meta": torch.empty(3, 3, device="meta"),
        "float8": torch.linspace(-1, 1, 9).to(torch.float8_e4m3fn),
        "w": torch.ones(3),
    }


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_odd_tensors_open_and_say_what_cannot_be_done(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save(odd_tensors(), path)
    checkpoint = open_checkpoint(path)
    assert checkpoint.saved_devices["meta"] == "meta"
    text = inspection_text(checkpoint, with_stats=True)
    assert "sparse: it is a sparse tensor (sparse_coo)" in text
    assert "meta: it is a meta tensor" in text
    assert tensor_stats(checkpoint.state_dict["float8"]).max == 1.0
    with pytest.raises(CheckpointError, match="sparse: no statistics: it is a sparse tensor"):
        tensor_stats(checkpoint.state_dict["sparse"], "sparse")
    diff = diff_state_dicts(checkpoint.state_dict, checkpoint.state_dict)
    assert diff.identical
    other = dict(checkpoint.state_dict, sparse=torch.eye(3).mul(2).to_sparse())
    changed = {c.key: c for c in diff_state_dicts(checkpoint.state_dict, other).changes}
    assert changed["sparse"].note.startswith("values not compared: A is a sparse tensor")
    with pytest.raises(CheckpointError, match=r"cannot write 'sparse' to \.safetensors"):
        save_state_dict(checkpoint.state_dict, tmp_path / "out.safetensors")


def test_a_dtype_torch_cannot_convert_is_named_by_cast_and_stats() -> None:
    state = {"packed": torch.zeros(4, dtype=torch.float4_e2m1fn_x2)}
    with pytest.raises(CheckpointError, match="cast: 'packed' is float4_e2m1fn_x2"):
        cast_floating(state, "float16")
    with pytest.raises(CheckpointError, match="no statistics: it is of dtype float4_e2m1fn_x2"):
        tensor_stats(state["packed"], "packed")


# --- damaged, unreadable and misleading ---------------------------------------------------------


def test_a_truncated_resume_file_says_it_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "workbench-checkpoint/1", "model": {"w": torch.ones(1000)}}, path)
    for cut in (200, len(path.read_bytes()) // 2, len(path.read_bytes()) - 30):
        short = tmp_path / f"cut{cut}.pt"
        short.write_bytes(path.read_bytes()[:cut])
        with pytest.raises(CheckpointError, match="truncated or damaged") as caught:
            load_run_checkpoint(short)
        assert "Errno" not in str(caught.value)


def test_a_pickle_the_scanner_cannot_follow_is_not_called_cut_off(tmp_path: Path) -> None:
    pkl = data_pickle({"w": 1})[:-1] + b"\xff."  # an opcode that does not exist, then STOP
    message = refused(write_torch_zip(tmp_path / "odd.pth", pkl=pkl), "cannot be followed")
    assert "cut off" not in message
    cut = write_torch_zip(tmp_path / "cut.pth", pkl=data_pickle({"w": 1})[:-3])
    refused(cut, "truncated or damaged", "ends before its end mark")


def test_refusals_never_repeat_torchs_advice_to_load_unsafely(tmp_path: Path) -> None:
    # BUILD on a list: no global at all, refused by torch's unpickler with its advice text.
    pkl = b"\x80\x02]}b."
    with pytest.raises(pickle.UnpicklingError, match="will likely succeed"):
        torch.load(write_torch_zip(tmp_path / "torch.pth", pkl=pkl), weights_only=True)
    message = refused(write_torch_zip(tmp_path / "build.pth", pkl=pkl), "Can only build")
    assert "weights_only" not in message and "will likely succeed" not in message


def test_dev_zero_is_not_called_empty() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    message = refused(Path("/dev/zero"), "not a regular file")
    assert "empty" not in message


def test_a_file_of_zero_bytes_is_named(tmp_path: Path) -> None:
    path = tmp_path / "zeros.pth"
    path.write_bytes(bytes(4096))
    refused(path, "only zero bytes")


def test_an_unreadable_file_is_a_named_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.pth"
    torch.save({"w": torch.ones(1)}, path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make open() refuse as it would
        real_open = open

        def denying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(str(file)) == path:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", denying_open)
    refused(path, "permission denied", "ls -l")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)


# --- where the weights are -------------------------------------------------------------------


def test_a_state_dict_under_any_key_is_found_and_located(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    path = tmp_path / "pretrained.pt"  # Resemblyzer's layout
    state = {
        "step": 1000,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
    }
    torch.save(state, path)
    checkpoint = open_checkpoint(path)
    assert checkpoint.location == "model_state"
    assert list(checkpoint.state_dict) == ["weight", "bias"]
    assert checkpoint.metadata["step"] == 1000
    assert "(weights under 'model_state')" in inspection_text(checkpoint)


def test_several_candidate_state_dicts_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "gan.pt"
    torch.save({"generator": {"w": torch.ones(2)}, "discriminator": {"v": torch.ones(3)}}, path)
    refused(path, "several sets of weights", "'generator' (1 tensors)", "'discriminator'")


# --- text from files is escaped -----------------------------------------------------------------


def test_safe_text_makes_control_and_bidi_characters_visible() -> None:
    assert safe_text("conv1.weight") == "conv1.weight"
    assert safe_text("naïve.权重") == "naïve.权重"
    assert safe_text("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert safe_text("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert safe_text("x\u200by\u2028") == "x\\u200by\\u2028"
    assert safe_text("one\ntwo", multiline=True) == "one\ntwo"
    assert safe_text("one\ntwo") == "one\\x0atwo"


def test_keys_and_metadata_reach_the_report_escaped(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    evil = "fc\x1b[31m.weight\u202e"
    torch.save({"state_dict": {evil: torch.ones(2)}, "note\x1b]0;x\x07": "red\x1b[31m"}, path)
    checkpoint = open_checkpoint(path)
    assert list(checkpoint.state_dict) == [evil]  # the key itself is kept for editing
    text = inspection_text(checkpoint, with_stats=True)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "fc\\x1b[31m" in text and "\\u202e" in text
    assert "\x1b" not in metadata_text(checkpoint.metadata)


def test_global_names_in_a_refusal_are_escaped(tmp_path: Path) -> None:
    pkl = b"\x80\x02cos\nsystem\x1b[2J\n)R."
    message = refused(write_torch_zip(tmp_path / "g.pth", pkl=pkl), "refused to open")
    assert "\x1b" not in message and "os.system\\x1b[2J" in message


# --- cancellation -----------------------------------------------------------------------------


class StopAfter(threading.Event):
    """A stop event that reads as set from the `calls`-th check on."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_long_analyses_stop_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.engine.checkpoints import diffing, inspection

    monkeypatch.setattr(inspection, "_CHUNK", 100)
    monkeypatch.setattr(diffing, "_CHUNK", 100)
    tensor = torch.randn(10_000)
    stop = StopAfter(3)
    with pytest.raises(AnalysisCancelled):
        tensor_stats(tensor, stop=stop)
    assert stop.calls == -1  # stopped at the fourth check, not at the end
    with pytest.raises(AnalysisCancelled):
        tensor_histogram(tensor, stop=StopAfter(5))
    with pytest.raises(AnalysisCancelled):
        diff_state_dicts({"w": tensor}, {"w": tensor + 1}, stop=StopAfter(2))
    done = threading.Event()
    assert tensor_stats(tensor, stop=done).numel == 10_000  # never set: runs to the end


def test_pickles_of_odd_types_stay_named(tmp_path: Path) -> None:
    # A protocol-2 pickle of a plain OrderedDict of ints: no tensors, a clear message.
    path = write_torch_zip(tmp_path / "ints.pth", collections.OrderedDict(a=1))
    refused(path, "no tensors in it")
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    refused(path, "not one written by torch.save")
