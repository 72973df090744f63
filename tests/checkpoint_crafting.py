"""Hand-built checkpoint files for the hardening tests: bombs, crafted views, odd headers.

Every fixture is made here, byte by byte where torch.save would refuse to write it, so the
tests never depend on files from elsewhere.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Storage:
    """A storage record `data/{key}` as the pickle declares it (numel may lie)."""

    key: str
    numel: int
    kind: str = "FloatStorage"


class View:
    """A tensor pickled as torch.save does (`_rebuild_tensor_v2`) with any offset, size and
    stride; `build` adds a BUILD opcode with that state after the tensor is made."""

    def __init__(
        self,
        storage: Storage,
        size: tuple[int, ...],
        stride: tuple[int, ...],
        offset: int = 0,
        build: Any = None,
    ) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())
        self.build = build

    def __reduce__(self) -> tuple[Any, ...]:
        if self.build is None:
            return (torch._utils._rebuild_tensor_v2, self.args)
        return (torch._utils._rebuild_tensor_v2, self.args, self.build)


class _ZipPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel)
        return None


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel, None)
        return None


def data_pickle(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _ZipPickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_torch_zip(
    path: Path, obj: Any = None, records: dict[str, bytes] | None = None, pkl: bytes | None = None
) -> Path:
    """A torch.save-style zip: `archive/data.pkl` (the pickle of `obj`, or `pkl` as given)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pkl if pkl is not None else data_pickle(obj))
        archive.writestr("archive/byteorder", "little")
        for key, raw in (records or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return path


def write_legacy(path: Path, obj: Any, records: dict[str, tuple[int, bytes]]) -> Path:
    """A pre-1.6 torch.save file: magic, protocol and sys-info pickles, the object, the storage
    keys, then each storage as an 8-byte element count and its bytes."""
    buffer = io.BytesIO()
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}  # fmt: skip
    for value in (torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION, sys_info):
        pickle.dump(value, buffer, protocol=2)
    _LegacyPickler(buffer, protocol=2).dump(obj)
    pickle.dump(list(records), buffer, protocol=2)
    for numel, raw in records.values():
        buffer.write(struct.pack("<q", numel) + raw)
    path.write_bytes(buffer.getvalue())
    return path


def _deflated_zeros(gib: int) -> bytes:
    """A raw deflate stream of `gib` GiB of zero bytes, about 1 MB per GiB, built in a blink:
    every 1 MiB block is flushed so its compressed form repeats exactly."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + block * (gib * 1024 - 1) + compressor.flush(zlib.Z_FINISH)


def write_zip_bomb(path: Path, gib: int = 6) -> Path:
    """A ~6 MB torch-style zip whose `archive/data.pkl` really inflates to `gib` GiB (zip64)."""
    members = [
        ("archive/data.pkl", 8, _deflated_zeros(gib), gib << 30),
        ("archive/version", 0, b"3\n", 2),
    ]
    out = io.BytesIO()
    central = io.BytesIO()
    for name, method, data, size in members:
        offset = out.tell()
        encoded = name.encode()
        extra = struct.pack("<HHQQ", 1, 16, size, len(data))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, 0,
                              0xFFFFFFFF, 0xFFFFFFFF, len(encoded), len(extra)))  # fmt: skip
        out.write(encoded + extra + data)
        extra = struct.pack("<HHQQQ", 1, 24, size, len(data), offset)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21,
                                  0, 0xFFFFFFFF, 0xFFFFFFFF, len(encoded), len(extra), 0, 0, 0,
                                  0, 0xFFFFFFFF))  # fmt: skip
        central.write(encoded + extra)
    start, directory = out.tell(), central.getvalue()
    out.write(directory)
    end64 = out.tell()
    count = len(members)
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count,
                          len(directory), start))  # fmt: skip
    out.write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), start, 0))
    path.write_bytes(out.getvalue())
    return path


def safetensors_with_header(path: Path, tensors: dict[str, torch.Tensor], length: int) -> Path:
    """A valid .safetensors file whose JSON header is exactly `length` bytes (space-padded, as
    the format allows): 640 makes the file start 0x80 0x02, like a pickle."""
    header: dict[str, Any] = {}
    offset = 0
    blobs = []
    for key, tensor in tensors.items():
        data = tensor.contiguous().view(torch.uint8).numpy().tobytes()
        dtype = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}[tensor.dtype]
        header[key] = {"dtype": dtype, "shape": list(tensor.shape),
                       "data_offsets": [offset, offset + len(data)]}  # fmt: skip
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > length:
        raise ValueError(f"header of {len(text)} bytes does not fit in {length}")
    path.write_bytes(struct.pack("<Q", length) + text.ljust(length, b" ") + b"".join(blobs))
    return path


MEASURE = r"""
import json, os, sys, time
import torch
from workbench.cli import build_parser, main
import workbench.engine.trainer

build_parser()  # every verb imported before the baseline: only the work itself is measured

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

for command in json.loads(sys.argv[1]):
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = status("VmRSS")
    start = time.perf_counter()
    code = main(command)
    figures = {"code": code, "seconds": time.perf_counter() - start,
               "peak_growth": status("VmHWM") - before}
    print(json.dumps(figures), file=sys.stderr)  # after the command's own error lines
"""


@dataclass(frozen=True)
class Measured:
    code: int
    stderr: str  # what this command wrote to stderr
    seconds: float
    peak_growth: int  # bytes of resident memory above what the imports took


def run_cli_measured(*commands: list[object]) -> list[Measured]:
    """Run each `workbench COMMAND` in one fresh interpreter, one after the other; the peak
    resident memory is reset after the imports and between commands (Linux only)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    argv = json.dumps([[str(part) for part in command] for command in commands])
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, argv],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    measured, errors = [], ""
    for line in result.stderr.splitlines(keepends=True):
        if line.startswith('{"code"'):
            figures = json.loads(line)
            measured.append(
                Measured(figures["code"], errors, figures["seconds"], figures["peak_growth"])
            )
            errors = ""
        else:
            errors += line
    return measured
