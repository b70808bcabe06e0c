# AiM version of mlp.py:MLP, traced at input (1, 784).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1 budget=auto
# memory: (89,) = 89 floats; taps: 3 of 3 weight layers; update blocks: 2; carry rate 0.1
# parameters: base 235,146 | aim 246,891 | delta +11,745 (memory 89, taps 3,940, updates 7,716)
# note: memory shrunk to 89 floats to stay within the 5% parameter budget
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 784)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {'format': 1,
 'kind': 'aim',
 'source': 'mlp.py:MLP',
 'class': 'AimMLP',
 'input_shapes': ['1,784'],
 'memory_shape': [89],
 'memory': 'memory',
 'base_params': 235146,
 'aim_params': 246891,
 'delta': {'memory': 89, 'taps': 3940, 'updates': 7716},
 'update_blocks': 2,
 'depends': []}


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


def fit_features(memory: torch.Tensor, features: int, x: torch.Tensor) -> torch.Tensor:
    """(N, ...) memory -> `features` values on the last axis of x, broadcast over the
    middle axes of an (N, ..., D) input."""
    m = fit_memory(memory, features, ())
    return m.reshape(m.shape[0], *([1] * (x.dim() - 2)), features).expand(*x.shape[:-1], features)


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

    def forward(self, memory: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = memory.movedim(1, -1)
        z = torch.relu(self.from_features(features.movedim(1, -1)) + self.from_memory(m))
        gate, candidate = self.to_memory(z).chunk(2, dim=-1)
        gate = torch.sigmoid(gate)
        return ((1 - gate) * m + gate * torch.tanh(candidate)).movedim(-1, 1)


class AimMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.memory = Memory((89,), carry_rate=0.1)  # 89 floats, carried from batch to batch
        self.fc1 = nn.Linear(784 + 10, 256)  # + memory: 10 features
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(256 + 10, 128)  # + memory: 10 features
        self.act2 = nn.ReLU()
        self.drop = nn.Dropout(p=0.2)
        self.head = nn.Linear(128 + 10, 10)  # + memory: 10 features
        self.update_act1 = MemoryUpdate(256, 89, rank=8)  # update block after act1: +4,370 params
        self.update_drop = MemoryUpdate(128, 89, rank=8)  # update block after drop: +3,346 params

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = memory.expand(x.shape[0], *memory.shape)
        flatten = x.flatten(1)
        fc1 = self.fc1(torch.cat([flatten, fit_features(memory, 10, flatten)], -1))  # + memory: 10 features
        act1 = self.act1(fc1)
        memory = self.update_act1(memory, act1)  # update block: memory rewritten from act1 (256 x vector)
        fc2 = self.fc2(torch.cat([act1, fit_features(memory, 10, act1)], -1))  # + memory: 10 features
        act2 = self.act2(fc2)
        drop = self.drop(act2)
        memory = self.update_drop(memory, drop)  # update block: memory rewritten from drop (128 x vector)
        head = self.head(torch.cat([drop, fit_features(memory, 10, drop)], -1))  # + memory: 10 features
        return head, memory.mean(0)

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimMLP:
    return AimMLP()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 784, generator=g),
    )
