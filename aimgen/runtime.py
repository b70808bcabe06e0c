"""The code every generated model runs: the memory, its fits, the memory-reading layers and the
update blocks.

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


class MemoryUpdate(nn.Module):
    """Rewrite the memory from features pooled to its grid: mix both through a rank-r
    bottleneck (1x1, channels last), then a gated, bounded write."""

    def __init__(self, features: int, memory_channels: int, rank: int):
        super().__init__()
        self.from_features = nn.Linear(features, rank)
        self.from_memory = nn.Linear(memory_channels, rank, bias=False)
        self.to_memory = nn.Linear(rank, 2 * memory_channels)

    def forward(self, memory: MemoryState, features: torch.Tensor) -> MemoryState:
        m = memory.tensor.movedim(1, -1)
        z = torch.relu(self.from_features(features.movedim(1, -1)) + self.from_memory(m))
        gate, candidate = self.to_memory(z).chunk(2, dim=-1)
        gate = torch.sigmoid(gate)
        m = (1 - gate) * m + gate * torch.tanh(candidate)
        return MemoryState(m.movedim(-1, 1), batched=True)


class MemorySequential(nn.Sequential):
    """nn.Sequential of blocks that each take and return (x, memory); same state_dict keys."""

    def forward(self, x: torch.Tensor, memory: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        for block in self:
            x, memory = block(x, memory)
        return x, memory


def weight_parameter(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    """A weight drawn as PyTorch draws a layer's weights: uniform(-1/sqrt(fan_in),
    1/sqrt(fan_in)) over the (widened) layer's fan-in."""
    bound = 1 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


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


# --- the sum form: layer(cat([x, m])) == layer(x) + the memory's part ---------------------

class _MemoryConv:
    """conv(cat([x, m], 1)) computed as conv(x) + conv(m, memory_weight): ``weight`` keeps its
    base shape and ``memory_weight`` holds what the memory channels would get in a widened
    layer (and is drawn the way PyTorch would draw them there)."""

    def __init__(self, *args, memory_channels: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        shape = (self.out_channels, memory_channels, *self.kernel_size)
        fan_in = (self.in_channels // self.groups + memory_channels) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter(shape, fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        memory = self._conv_forward(m, self.memory_weight, None)
        return self._conv_forward(x, self.weight, self.bias) + memory


class MemoryConv1d(_MemoryConv, nn.Conv1d):
    """nn.Conv1d that also reads ``memory_channels`` fitted memory channels."""


class MemoryConv2d(_MemoryConv, nn.Conv2d):
    """nn.Conv2d that also reads ``memory_channels`` fitted memory channels."""


class MemoryConv3d(_MemoryConv, nn.Conv3d):
    """nn.Conv3d that also reads ``memory_channels`` fitted memory channels."""


def center_tap_pads(kernel_size, padding, dilation) -> tuple[int, ...]:
    """F.pad amounts (last axis first; negative ones crop) after which a 1x1 convolution of
    the memory reads what the center tap of a k x k kernel with this padding reads."""
    if padding == "valid":
        padding = (0,) * len(kernel_size)
    pads = []
    for i in reversed(range(len(kernel_size))):
        k, d = kernel_size[i], dilation[i]
        total = d * (k - 1)
        before = total // 2 if padding == "same" else padding[i]
        after = total - total // 2 if padding == "same" else padding[i]
        pads += [before - d * ((k - 1) // 2), after - d * (k - 1 - (k - 1) // 2)]
    return tuple(pads)


class _GroupedMemoryConv:
    """A grouped or depthwise conv that reads the memory in every group. Every group reads the
    same memory channels, so the memory's part is one ungrouped convolution; by default
    (``memory_kernel='pointwise'``) through the kernel's center tap only: the widened layer
    with its other memory taps fixed at zero, k x k times fewer weights."""

    def __init__(self, *args, memory_channels: int = 1, memory_kernel: str = "pointwise",
                 **kwargs):
        super().__init__(*args, **kwargs)
        kernel = self.kernel_size if memory_kernel == "full" else (1,) * len(self.kernel_size)
        fan_in = (self.in_channels // self.groups + memory_channels) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter((self.out_channels, memory_channels, *kernel), fan_in)
        self.memory_kernel = memory_kernel
        padding = self.padding if self.padding_mode == "zeros" else "valid"  # others pad first
        self.memory_pads = center_tap_pads(self.kernel_size, padding, self.dilation)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[len(self.kernel_size) - 1]
        if self.padding_mode != "zeros":
            m = F.pad(m, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        if self.memory_kernel == "full":
            padding = self.padding if self.padding_mode == "zeros" else 0
            memory = conv(m, self.memory_weight, None, self.stride, padding, self.dilation)
        else:
            memory = conv(F.pad(m, self.memory_pads), self.memory_weight, None, self.stride)
        return self._conv_forward(x, self.weight, self.bias) + memory


class GroupedMemoryConv1d(_GroupedMemoryConv, nn.Conv1d):
    """A grouped or depthwise nn.Conv1d that reads the memory in every group."""


class GroupedMemoryConv2d(_GroupedMemoryConv, nn.Conv2d):
    """A grouped or depthwise nn.Conv2d that reads the memory in every group."""


class GroupedMemoryConv3d(_GroupedMemoryConv, nn.Conv3d):
    """A grouped or depthwise nn.Conv3d that reads the memory in every group."""


class _MemoryConvTranspose:
    """conv_transpose(cat([x, m], 1)) computed as conv_transpose(x) plus one ungrouped
    transposed convolution of the memory with ``memory_weight`` (k, out, *kernel)."""

    def __init__(self, *args, memory_channels: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        shape = (memory_channels, self.out_channels, *self.kernel_size)
        fan_in = (self.out_channels // self.groups) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter(shape, fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        dims = len(self.kernel_size)
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
        memory = conv(m, self.memory_weight, None, self.stride, self.padding, self.output_padding,
                      1, self.dilation)
        return super().forward(x) + memory


class MemoryConvTranspose1d(_MemoryConvTranspose, nn.ConvTranspose1d):
    """nn.ConvTranspose1d that also reads ``memory_channels`` fitted memory channels."""


class MemoryConvTranspose2d(_MemoryConvTranspose, nn.ConvTranspose2d):
    """nn.ConvTranspose2d that also reads ``memory_channels`` fitted memory channels."""


class MemoryConvTranspose3d(_MemoryConvTranspose, nn.ConvTranspose3d):
    """nn.ConvTranspose3d that also reads ``memory_channels`` fitted memory channels."""


class MemoryLinear(nn.Linear):
    """nn.Linear that also reads ``memory_features`` fitted memory features: linear(cat([x, m],
    -1)) as linear(x) + linear(m, memory_weight), m broadcast over the middle axes, not copied."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.in_features + memory_features
        self.memory_weight = weight_parameter((self.out_features, memory_features), fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(m, self.memory_weight)


def read_conv_memory(m: torch.Tensor, weight: torch.Tensor, conv, stride=1, padding=0, dilation=1,
                     kernel_size: tuple[int, ...] | None = None) -> torch.Tensor:
    """The memory's part of a functional convolution (``F.conv2d(x, self.weight, ...)``) in the
    sum form, ``weight`` the memory's own (out, k, ...); with ``kernel_size`` (the layer's) it
    reads through that kernel's center tap only (a pointwise memory kernel)."""
    if kernel_size is None:
        return conv(m, weight, None, stride, padding, dilation)
    n = len(kernel_size)
    if not isinstance(padding, str):
        padding = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * n
    dilation = tuple(dilation) if isinstance(dilation, (tuple, list)) else (dilation,) * n
    return conv(F.pad(m, center_tap_pads(kernel_size, padding, dilation)), weight, None, stride)
