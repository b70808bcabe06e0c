"""The code every generated model runs: the memory, its fits and the update blocks (the layers
that read the memory belong to their tap kinds, in aimgen/taps/).

This module is real, tested code of the package, and it is also the *source* of those pieces
in generated files: aimgen copies the definitions a model needs into its output, text for
text (see ``aimgen.codegen.runtime_source``), so a generated file stays standalone (it
imports torch and never aimgen). Everything here must therefore only use ``torch``,
``torch.nn`` (as ``nn``), ``torch.nn.functional`` (as ``F``) and ``math``.

Shapes: the memory is ``(C, *grid)`` for models with convolutions and ``(D,)`` otherwise.
During a forward it is held with a leading batch axis: one row for all samples until an
update block has read per-sample features (so the fits and memory reads before the first
update are done once, at batch 1, and broadcast), then one row per sample.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def fit_memory(memory: torch.Tensor, channels: int, size: tuple[int, ...]) -> torch.Tensor:
    """(N, ...) memory -> (N, channels, *size): flatten, zero-pad to whole folds of
    channels x size, and add the folds up, so a small map still sees all of the memory.
    Branch-free: the same code is right at every input size and in ONNX."""
    n = memory.shape[0]
    per_fold = channels * math.prod(size)
    flat = memory.reshape(n, -1)
    folds = -(-flat.shape[1] // per_fold)
    flat = F.pad(flat, (0, folds * per_fold - flat.shape[1]))
    return flat.reshape(n, folds, channels, *size).sum(1)


class MemoryState:
    """The memory during one forward pass: its value (one row for every sample until an update
    block reads per-sample features, then a row per sample), and its fits, each made once."""

    def __init__(self, memory: torch.Tensor, batched: bool = False):
        self.tensor = memory if batched else memory.unsqueeze(0)
        self.fits: dict[tuple, torch.Tensor] = {}

    def fit(self, k: int, size: tuple[int, ...]) -> torch.Tensor:
        if (k, *size) not in self.fits:
            self.fits[(k, *size)] = fit_memory(self.tensor, k, size)
        return self.fits[(k, *size)]

    def channels(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """k memory channels at the spatial size of x: (1 or N, k, *x.shape[2:])."""
        return self.fit(k, x.shape[2:])

    def features(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """k memory features, shaped to broadcast over the middle axes of an (N, ..., D) x."""
        m = self.fit(k, ())
        return m.reshape(m.shape[0], *([1] * (x.dim() - 2)), k)

    def final(self) -> torch.Tensor:
        """What is handed on (to the carry, or out of a stateful graph): the batch mean."""
        return self.tensor.mean(0)


def per_window(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A memory read (1 or N rows) for an x whose N * w rows are windows of the samples, sample
    by sample (window attention): each sample's row repeated for its w windows."""
    n = m.shape[0]
    return m.unsqueeze(1).expand(n, x.shape[0] // n, *m.shape[1:]).flatten(0, 1)


def per_view(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A memory read (1 or N rows) for an x whose v * N rows are views of the samples, view
    after view (``torch.cat([image1, image2])``): the N rows repeated for each view."""
    return m.repeat(x.shape[0] // m.shape[0], *([1] * (m.dim() - 1)))


class Memory(nn.Module):
    """The learned memory (seed) plus what training carried over from earlier batches."""

    def __init__(self, shape: tuple[int, ...], carry_rate: float):
        super().__init__()
        self.seed = nn.Parameter(torch.randn(shape) * 0.02)
        self.register_buffer("carry", torch.zeros(shape))
        self.carry_rate = carry_rate

    def read(self) -> torch.Tensor:
        return self.seed + self.carry

    @torch.no_grad()
    def write(self, memory: torch.Tensor) -> None:
        """After a training forward, move the carry toward the final memory (a batch mean).
        Frozen in eval(); averaged over ranks under torch.distributed."""
        if not self.training or self.carry_rate == 0:
            return
        target = memory.detach() - self.seed
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(target)
            target /= torch.distributed.get_world_size()
        self.carry.lerp_(target, self.carry_rate)

    @torch.no_grad()
    def reset(self) -> None:
        self.carry.zero_()


def weight_parameter(shape: tuple[int, ...], fan_in: int | None = None) -> nn.Parameter:
    """As PyTorch draws a layer's weights: uniform(+-1/sqrt(fan_in)), by default of shape[1:]."""
    bound = 1 / math.sqrt(fan_in or math.prod(shape[1:]))
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


def add_product(out: torch.Tensor, m: torch.Tensor, weight: torch.Tensor, stride=()):
    """out + weight @ m per sample, m (1 or N, K, ...) one memory channel read at every stride-th
    value (K = 1) or as k x k patches: one batched GEMM, 2-3x faster to train than addcmul."""
    if any(s > 1 for s in stride):
        m = m[(..., *(slice(None, None, s) for s in stride))]
    n, c = out.shape[:2]
    w = weight.reshape(1, c, -1).expand(n, -1, -1)
    m = m.expand(n, *m.shape[1:]).reshape(n, w.shape[2], -1)
    if not out.is_contiguous():  # channels last: flattening it would copy it
        return out + torch.bmm(w, m).view(out.shape)
    return torch.baddbmm(out.flatten(2), w, m).view_as(out)


class MemoryUpdate(nn.Module):
    """Rewrite the memory from features pooled to its grid: mix both through a rank-r
    bottleneck, then a gated, bounded write (weights drawn as nn.Linear's)."""

    def __init__(self, features: int, memory_channels: int, rank: int):
        super().__init__()
        self.weight_features = weight_parameter((rank, features), features)
        self.bias_features = weight_parameter((rank,), features)
        self.weight_memory = weight_parameter((rank, memory_channels), memory_channels)
        self.weight_write = weight_parameter((2 * memory_channels, rank), rank)
        self.bias_write = weight_parameter((2 * memory_channels,), rank)

    def forward(self, memory: MemoryState, features: torch.Tensor) -> MemoryState:
        # (N, channels, cells) throughout, no transposes; the features' product a batched matmul,
        # so their gradient comes back in their layout (a transposed one made the pooling's
        # backward copy the map it pooled); the memory's broadcast over the batch
        f = features.reshape(*features.shape[:2], -1)
        m = memory.tensor.reshape(*memory.tensor.shape[:2], -1)
        w = self.weight_features.expand(f.shape[0], -1, -1)
        z = torch.relu(torch.baddbmm(self.bias_features[:, None], w, f) + self.weight_memory @ m)
        gate, candidate = (self.weight_write @ z + self.bias_write[:, None]).chunk(2, 1)
        # the gated, bounded write: (1 - gate) * m + gate * tanh(candidate)
        m = torch.lerp(m, torch.tanh(candidate), torch.sigmoid(gate))
        return MemoryState(m.reshape(-1, *memory.tensor.shape[1:]), batched=True)


def pool_to_grid(x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """The mean of x over each cell of the memory's grid, F.adaptive_avg_pool{1,2,3}d(x, grid), in
    its cheapest form: a copy where x has the grid's size (the pooling is then the identity, yet
    costs what a real one costs: 22 ms a training step at resnet50's last stage); whole windows
    where the size divides evenly; else adaptive pooling, a 3-d one as two 2-d ones (which the
    ONNX exporter supports: each window is a box, so its mean is a mean of per-frame means)."""
    size = tuple(x.shape[2:])
    if size == tuple(grid):
        return x.clone()  # a copy: the base model may change x in place afterwards
    if all(s % g == 0 for s, g in zip(size, grid)):
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(grid) - 1]
        return pool(x, tuple(s // g for s, g in zip(size, grid)))
    if len(grid) < 3:
        return (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d)[len(grid) - 1](x, grid)
    n, c, d = x.shape[:3]
    x = F.adaptive_avg_pool2d(x.flatten(1, 2), grid[1:]).reshape(n, c, d, -1)
    return F.adaptive_avg_pool2d(x, (grid[0], x.shape[-1])).reshape(n, c, *grid)


class MemorySequential(nn.Sequential):
    """nn.Sequential of blocks that each take and return (x, memory); same state_dict keys."""

    def forward(self, x: torch.Tensor, memory: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        for block in self:
            x, memory = block(x, memory)
        return x, memory


# --- the literal form: the memory concatenated onto the input -------------------------------

def cat_channels(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """torch.cat([x, m], 1), the memory (1 or N rows) broadcast over the batch."""
    return torch.cat([x, m.expand(x.shape[0], *m.shape[1:])], 1)


def cat_grouped(x: torch.Tensor, m: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate the memory's channels onto every one of the ``groups`` channel groups of x,
    so a grouped or depthwise conv sees the memory in every group."""
    n, size = x.shape[0], x.shape[2:]
    m = m.unsqueeze(1).expand(n, groups, *m.shape[1:])
    return torch.cat([x.reshape(n, groups, -1, *size), m], 2).flatten(1, 2)


def cat_features(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """torch.cat([x, m], -1), the memory features broadcast over the batch and middle axes."""
    return torch.cat([x, m.expand(*x.shape[:-1], m.shape[-1])], -1)
