"""What is inside a state_dict: a module tree with sizes, guessed layer types, lazy statistics."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch

from workbench.engine.checkpoints.tensor_data import CHUNK, as_float64, iter_chunks, plain_values

# Buffers that torch modules register; they are in a state_dict but are not parameters.
BUFFER_NAMES = frozenset({"running_mean", "running_var", "num_batches_tracked"})

_CHUNK = CHUNK  # elements per step (tests shrink it to check the chunked merge)


@dataclass(frozen=True)
class TensorInfo:
    key: str
    shape: tuple[int, ...]
    dtype: str  # "float32", "int64", ...
    numel: int
    nbytes: int
    device: str  # where it lives now (always "cpu" after opening)
    saved_device: str = "cpu"  # where it lived when the file was written

    @property
    def is_buffer(self) -> bool:
        return self.key.rsplit(".", 1)[-1] in BUFFER_NAMES


@dataclass
class ModuleNode:
    """One level of the dotted key hierarchy: `fc1` holds `fc1.weight` and `fc1.bias`."""

    name: str  # last path segment ("" for the root)
    path: str  # full dotted path ("" for the root)
    tensors: list[TensorInfo] = field(default_factory=list)  # direct tensors, file order
    children: list[ModuleNode] = field(default_factory=list)  # file order
    layer_type: str | None = None  # guessed from the direct tensors; None: no guess

    def walk(self) -> Iterator[ModuleNode]:
        """This node and every descendant, depth first, in file order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def all_tensors(self) -> Iterator[TensorInfo]:
        for node in self.walk():
            yield from node.tensors

    @property
    def numel(self) -> int:
        return sum(info.numel for info in self.all_tensors())

    @property
    def parameters(self) -> int:
        """Elements of every tensor below, not counting known buffers (BatchNorm statistics)."""
        return sum(info.numel for info in self.all_tensors() if not info.is_buffer)

    @property
    def nbytes(self) -> int:
        return sum(info.nbytes for info in self.all_tensors())

    def child(self, name: str) -> ModuleNode | None:
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True)
class TensorStats:
    """Over the finite values; NaN and ±Inf are counted apart, never mixed into the numbers."""

    min: float
    max: float
    mean: float
    std: float  # population standard deviation
    zero_fraction: float
    nan_count: int
    inf_count: int
    numel: int


@dataclass(frozen=True)
class Histogram:
    edges: tuple[float, ...]  # bins + 1 edges
    counts: tuple[int, ...]  # finite values per bin


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tensor_info(key: str, tensor: torch.Tensor, saved_device: str = "cpu") -> TensorInfo:
    return TensorInfo(
        key=key,
        shape=tuple(tensor.shape),
        dtype=dtype_name(tensor.dtype),
        numel=tensor.numel(),
        nbytes=tensor.numel() * tensor.element_size(),
        device=str(tensor.device),
        saved_device=saved_device,
    )


def tensor_infos(
    state_dict: Mapping[str, torch.Tensor], saved_devices: Mapping[str, str] | None = None
) -> list[TensorInfo]:
    """Shapes and sizes of every key, in file order; reads no tensor data."""
    devices = saved_devices or {}
    return [tensor_info(k, t, devices.get(k, "cpu")) for k, t in state_dict.items()]


def build_module_tree(
    state_dict: Mapping[str, torch.Tensor], saved_devices: Mapping[str, str] | None = None
) -> ModuleNode:
    """Group keys on '.' into a tree whose nodes carry their tensors and a guessed layer type."""
    root = ModuleNode(name="", path="")
    nodes = {"": root}  # by path, so wide modules (a ModuleList of 1000) stay linear
    for info in tensor_infos(state_dict, saved_devices):
        *parents, _leaf = info.key.split(".")
        node = root
        for part in parents:
            path = f"{node.path}.{part}" if node.path else part
            found = nodes.get(path)
            if found is None:
                found = nodes[path] = ModuleNode(name=part, path=path)
                node.children.append(found)
            node = found
        node.tensors.append(info)
    for node in root.walk():
        node.layer_type = guess_layer_type(node)
    return root


def guess_layer_type(node: ModuleNode) -> str | None:
    """Name the torch layer a module's own tensors look like (see docs/checkpoints.md).

    Only the shapes and leaf names are used, so look-alikes cannot be told apart: a Linear
    without bias looks like an Embedding, GroupNorm like LayerNorm, InstanceNorm with running
    statistics like BatchNorm. None when nothing fits.
    """
    shapes = {info.key.rsplit(".", 1)[-1]: info.shape for info in node.tensors}
    child_names = {child.name for child in node.children}
    return (
        _guess_norm(shapes)
        or _guess_recurrent(shapes)
        or _guess_attention(shapes, child_names)
        or _guess_weighted(shapes)
    )


def _guess_norm(shapes: dict[str, tuple[int, ...]]) -> str | None:
    if {"running_mean", "running_var"} <= shapes.keys():
        return "BatchNorm"
    return None


def _guess_recurrent(shapes: dict[str, tuple[int, ...]]) -> str | None:
    ih, hh = shapes.get("weight_ih_l0"), shapes.get("weight_hh_l0")
    if ih is None or hh is None or len(ih) != 2 or len(hh) != 2 or hh[1] == 0:
        return None
    gates = hh[0] // hh[1]
    return {4: "LSTM", 3: "GRU", 1: "RNN"}.get(gates)


def _guess_attention(shapes: dict[str, tuple[int, ...]], children: set[str]) -> str | None:
    if "in_proj_weight" in shapes or {"q_proj_weight", "k_proj_weight"} <= shapes.keys():
        return "MultiheadAttention" if "out_proj" in children else None
    return None


def _guess_weighted(shapes: dict[str, tuple[int, ...]]) -> str | None:
    weight, bias = shapes.get("weight"), shapes.get("bias")
    extra = set(shapes) - {"weight", "bias"}
    if weight is None or extra:
        return None
    if bias is not None and len(bias) != 1:
        return None
    rank = len(weight)
    if rank == 1:
        if bias is None:
            return "RMSNorm"
        return "LayerNorm" if bias == weight else None
    if rank == 2:
        if bias is None:
            return "Embedding"
        return "Linear" if bias[0] == weight[0] else None
    if rank in (3, 4, 5):
        dims = rank - 2
        if bias is not None and bias[0] != weight[0] and bias[0] % weight[1] == 0:
            return f"ConvTranspose{dims}d"
        return f"Conv{dims}d"
    return None


def tensor_stats(
    tensor: torch.Tensor, key: str = "tensor", stop: threading.Event | None = None
) -> TensorStats:
    """Min, max, mean, std, zero fraction and NaN/Inf counts, in chunks (float64, Chan's merge).

    A strided or expanded view is read a chunk at a time, never copied whole. `stop`: set it
    from another thread to end the work between chunks (AnalysisCancelled). A tensor without
    plain values (sparse, meta, a dtype torch cannot convert) raises CheckpointError naming
    `key`.
    """
    values = plain_values(key, tensor, "statistics")
    numel = values.numel()
    count = zeros = nans = infs = 0
    mean = m2 = 0.0
    low, high = math.inf, -math.inf
    for piece in iter_chunks(values, _CHUNK, stop):
        chunk = as_float64(piece)
        nans += int(torch.isnan(chunk).sum())
        infs += int(torch.isinf(chunk).sum())
        zeros += int((chunk == 0).sum())
        finite = chunk[torch.isfinite(chunk)]
        if not finite.numel():
            continue
        n_chunk = finite.numel()
        mean_chunk = float(finite.mean())
        m2_chunk = float(((finite - mean_chunk) ** 2).sum())
        delta = mean_chunk - mean
        merged = count + n_chunk
        mean += delta * n_chunk / merged
        m2 += m2_chunk + delta * delta * count * n_chunk / merged
        count = merged
        low = min(low, float(finite.min()))
        high = max(high, float(finite.max()))
    zero_fraction = _fraction(zeros, numel)
    if count == 0:
        return TensorStats(math.nan, math.nan, math.nan, math.nan, zero_fraction, nans, infs, numel)
    std = math.sqrt(m2 / count)
    return TensorStats(low, high, mean, std, zero_fraction, nans, infs, numel)


def tensor_histogram(
    tensor: torch.Tensor,
    bins: int = 50,
    key: str = "tensor",
    stop: threading.Event | None = None,
    stats: TensorStats | None = None,
) -> Histogram:
    """Counts of the finite values in `bins` equal-width bins between their min and max.

    `stats`: the tensor_stats already computed (saves a pass); `stop` as in tensor_stats.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    stats = stats or tensor_stats(tensor, key, stop)
    if math.isnan(stats.min):
        return Histogram(edges=(), counts=())
    low, high = stats.min, stats.max
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts = torch.zeros(bins, dtype=torch.float64)
    for piece in iter_chunks(plain_values(key, tensor, "histogram"), _CHUNK, stop):
        chunk = as_float64(piece)
        chunk = chunk[torch.isfinite(chunk)]
        counts += torch.histc(chunk, bins=bins, min=low, max=high)
    step = (high - low) / bins
    edges = (*(low + step * i for i in range(bins)), high)
    return Histogram(edges=edges, counts=tuple(int(c) for c in counts.tolist()))


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
