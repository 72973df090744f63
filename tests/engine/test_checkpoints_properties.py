"""Property tests: every valid layout opens; no pickle built from opcodes runs code or escapes.

Hypothesis writes random safetensors layouts (header lengths included, so some start with
0x80 0x02..0x05 like a pickle) and random state_dicts, plain or nested, and opens every one.
Another strategy assembles pickles from the opcode set, with globals that would run code,
and checks that opening them ends in a Checkpoint or a CheckpointError, never anything else,
and that the marker file the payloads try to create never appears.
"""

from __future__ import annotations

import contextlib
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from tests.checkpoint_crafting import data_pickle
from workbench.engine.checkpoints import open_checkpoint, tensor_stats
from workbench.engine.checkpoints.report import inspection_text
from workbench.engine.errors import CheckpointError

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DTYPES = [
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
    torch.int8, torch.uint8, torch.bool, torch.float8_e4m3fn,
]  # fmt: skip
KEY_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24
)


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 5), max_size=3))
    seed = draw(st.integers(0, 2**31 - 1))
    values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 10
    return values.to(dtype)


STATE_DICTS = st.dictionaries(KEY_TEXT, tensors(), min_size=1, max_size=6)
# float8 and newer dtypes cannot be read back from the legacy format by torch itself.
LEGACY_STATE_DICTS = st.dictionaries(
    KEY_TEXT, tensors().filter(lambda t: t.dtype != torch.float8_e4m3fn), min_size=1, max_size=6
)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    as_bytes = [side.reshape(-1).contiguous().view(torch.uint8) for side in (a, b)]
    return bool(torch.equal(*as_bytes))


def assert_opens_as(path: Path, expected: dict[str, torch.Tensor]) -> None:
    checkpoint = open_checkpoint(path)
    assert set(checkpoint.state_dict) == set(expected)
    for key, tensor in expected.items():
        assert same(checkpoint.state_dict[key], tensor), key
        stats = tensor_stats(checkpoint.state_dict[key], key)
        assert stats.numel == tensor.numel()
    assert "Tensors:" in inspection_text(checkpoint)


@SETTINGS
@given(state=STATE_DICTS, padding=st.integers(0, 1500), metadata_key=KEY_TEXT)
def test_every_valid_safetensors_layout_opens(
    tmp_path: Path, state: dict[str, torch.Tensor], padding: int, metadata_key: str
) -> None:
    path = tmp_path / "random.safetensors"
    save_file(state, str(path), metadata={metadata_key: "x" * padding})
    assert_opens_as(path, state)


@SETTINGS
@given(
    data=st.data(),
    legacy=st.booleans(),
    wrapper=st.none() | KEY_TEXT.filter(lambda key: key != "epoch"),
)
def test_every_state_dict_opens_plain_or_nested(
    tmp_path: Path, data: st.DataObject, legacy: bool, wrapper: str | None
) -> None:
    state = data.draw(LEGACY_STATE_DICTS if legacy else STATE_DICTS)
    path = tmp_path / "random.pth"
    saved: object = state if wrapper is None else {wrapper: state, "epoch": 3}
    torch.save(saved, path, _use_new_zipfile_serialization=not legacy)
    assert_opens_as(path, state)
    if wrapper is not None:
        assert open_checkpoint(path).location == wrapper


# --- pickles assembled from opcodes -------------------------------------------------------------

MARKER_NAME = "ran-code"
GLOBALS = [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("__builtin__", "eval"), ("pathlib", "Path"), ("subprocess", "call"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("collections", "OrderedDict"), ("torch", "FloatStorage"), ("torch", "Size"),
    ("torch.storage", "TypedStorage"), ("builtins", "bytearray"), ("torch", "Tensor"),
    ("torch", "device"), ("torch", "float32"), ("_codecs", "encode"), ("builtins", "set"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("torch._utils", "_rebuild_sparse_tensor"),
]  # fmt: skip
OPCODES = [
    b"(", b")", b"]", b"}", b"N", b"\x88", b"\x89", b"t", b"\x85", b"\x86", b"\x87", b"R",
    b"b", b"s", b"u", b"a", b"e", b"0", b"2", b"1", b"Q", b"\x81", b"\x93", b"\x94", b"l",
    b"d", b"\x8f", b"\x90", b"\x91",
]  # fmt: skip


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


@st.composite
def snippets(draw: st.DrawFn, marker: str) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.sampled_from(OPCODES))
    if kind == 1:
        module, name = draw(st.sampled_from(GLOBALS))
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    if kind == 2:
        words = ["storage", "0", "cpu", "w", marker, f"touch {marker}", "os", "system",
                 "pathlib", "Path", "touch", "torch._utils", "_rebuild_tensor_v2"]  # fmt: skip
        return _unicode(draw(st.sampled_from(words)))
    if kind == 3:
        return b"K" + bytes([draw(st.integers(0, 255))])
    if kind == 4:
        return b"J" + struct.pack("<i", draw(st.integers(-(2**31), 2**31 - 1)))
    if kind == 5:
        size = draw(st.integers(0, 9))
        return b"\x8a" + bytes([size]) + draw(st.binary(min_size=size, max_size=size))
    return draw(st.sampled_from([b"q", b"h"])) + bytes([draw(st.integers(0, 3))])


@st.composite
def fuzzed_pickles(draw: st.DrawFn, marker: str) -> bytes:
    if draw(st.booleans()):
        body = b"".join(draw(st.lists(snippets(marker), max_size=40)))
        return b"\x80\x02" + body + b"."
    # A real torch.save pickle with a few bytes flipped, cut or inserted.
    base = bytearray(data_pickle({"w": torch.ones(2)}))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(base) - 1))
        change = draw(st.integers(0, 2))
        if change == 0:
            base[where] = draw(st.integers(0, 255))
        elif change == 1:
            base[where:where] = draw(snippets(marker))
        else:
            del base[where : where + draw(st.integers(1, 8))]
    return bytes(base)


def write_zip(path: Path, pkl: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/data/0", bytes(40))
        archive.writestr("archive/version", "3\n")


def write_legacy_header(path: Path, pkl: bytes) -> None:
    magic = data_pickle(torch.serialization.MAGIC_NUMBER)
    protocol = data_pickle(torch.serialization.PROTOCOL_VERSION)
    info = data_pickle({"protocol_version": 1001, "little_endian": True, "type_sizes": {}})
    path.write_bytes(magic + protocol + info + pkl + data_pickle(["0"]) + bytes(48))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), legacy=st.booleans())
def test_fuzzed_pickles_never_run_code_and_fail_only_with_named_errors(
    sandbox: Path, data: st.DataObject, legacy: bool
) -> None:
    marker = sandbox / MARKER_NAME
    pkl = data.draw(fuzzed_pickles(str(marker)))
    path = sandbox / "fuzz.pth"
    (write_legacy_header if legacy else write_zip)(path, pkl)
    with contextlib.suppress(CheckpointError):  # a Checkpoint or a named error, nothing else
        open_checkpoint(path)
    assert not marker.exists()
