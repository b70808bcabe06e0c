# AiM version of tiny_cnn.py:TinyCNN, traced at input (1, 3, 32, 32).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1 budget=auto
# memory: (1, 16, 16) = 256 floats; taps: 3 of 3 weight layers; update blocks: 2; carry rate 0.1
# parameters: base 5,418 | aim 6,326 | delta +908 (memory 256, taps 592, updates 60)
# note: smallest configuration: even 1 memory channel costs +908 parameters (16.8% of the base), over the default 5% budget
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 32, 32)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {'format': 1,
 'kind': 'aim',
 'source': 'tiny_cnn.py:TinyCNN',
 'class': 'AimTinyCNN',
 'input_shapes': ['1,3,32,32'],
 'memory_shape': [1, 16, 16],
 'memory': 'memory',
 'base_params': 5418,
 'aim_params': 6326,
 'delta': {'memory': 256, 'taps': 592, 'updates': 60},
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


class AimTinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.memory = Memory((1, 16, 16), carry_rate=0.1)  # 256 floats, carried from batch to batch
        self.conv1 = nn.Conv2d(3 + 1, 16, 3, padding=1)  # + memory: 1 channel at 32x32
        self.pool = nn.MaxPool2d(2, stride=2)
        self.conv2 = nn.Conv2d(16 + 1, 32, 3, padding=1)  # + memory: 1 channel at 16x16
        self.drop = nn.Dropout(p=0.1)
        self.fc = nn.Linear(32 + 16, 10)  # + memory: 16 features
        self.update_relu = MemoryUpdate(16, 1, rank=1)  # update block after relu: +22 params
        self.update_relu_1 = MemoryUpdate(32, 1, rank=1)  # update block after relu_1: +38 params

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = memory.expand(x.shape[0], *memory.shape)
        conv1 = self.conv1(torch.cat([x, fit_memory(memory, 1, x.shape[2:])], 1))  # + memory: 1 channel at 32x32
        relu = torch.relu(conv1)
        memory = self.update_relu(memory, F.adaptive_avg_pool2d(relu, (16, 16)))  # update block: memory rewritten from relu (16 x 32x32)
        pool = self.pool(relu)
        conv2 = self.conv2(torch.cat([pool, fit_memory(memory, 1, pool.shape[2:])], 1))  # + memory: 1 channel at 16x16
        relu_1 = torch.relu(conv2)
        memory = self.update_relu_1(memory, F.adaptive_avg_pool2d(relu_1, (16, 16)))  # update block: memory rewritten from relu_1 (32 x 16x16)
        adaptive_avg_pool2d = F.adaptive_avg_pool2d(relu_1, 1)
        flatten = torch.flatten(adaptive_avg_pool2d, 1)
        drop = self.drop(flatten)
        fc = self.fc(torch.cat([drop, fit_features(memory, 16, drop)], -1))  # + memory: 16 features
        return fc, memory.mean(0)

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimTinyCNN:
    return AimTinyCNN()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 3, 32, 32, generator=g),
    )
