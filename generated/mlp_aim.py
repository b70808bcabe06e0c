# AiM version of mlp.py:MLP, traced at input (1, 784).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1
#   budget=auto
# memory: (192,) = 192 floats; taps: 3 of 3 weight layers; update blocks: 1; carry rate 0.1
# parameters: base 235,146 | aim 246,878 | delta +11,732 (memory 192, taps 5,516, updates 6,024)
# note: memory shrunk to 192 floats to stay within the 5% parameter budget
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 784)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'aim', 'source': 'mlp.py:MLP', 'class': 'AimMLP',
    'input_shapes': ['1,784'], 'memory_shape': [192], 'memory': 'memory', 'form': 'sum',
    'base_params': 235146, 'aim_params': 246878,
    'delta': {'memory': 192, 'taps': 5516, 'updates': 6024}, 'update_blocks': 1, 'depends': [],
}


# --- the memory: what every AiM model runs (aimgen's runtime, copied here) ---


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


def weight_parameter(shape: tuple[int, ...], fan_in: int | None = None) -> nn.Parameter:
    """As PyTorch draws a layer's weights: uniform(+-1/sqrt(fan_in)), by default of shape[1:]."""
    bound = 1 / math.sqrt(fan_in or math.prod(shape[1:]))
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


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


class MemoryLinear(nn.Linear):
    """nn.Linear that also reads ``memory_features`` fitted memory features: linear(cat([x, m],
    -1)) as linear(x) + linear(m, memory_weight), m broadcast over the middle axes, not copied."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.in_features + memory_features
        self.memory_weight = weight_parameter((self.out_features, memory_features), fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(m, self.memory_weight)


class AimMLP(nn.Module):
    """AiM version of MLP: the memory, its readers and its update blocks."""

    def __init__(self):
        super().__init__()
        self.memory = Memory((192,), carry_rate=0.1)  # 192 floats, carried from batch to batch
        self.fc1 = MemoryLinear(784, 256, memory_features=14)
        self.act1 = nn.ReLU()
        self.fc2 = MemoryLinear(256, 128, memory_features=14)
        self.act2 = nn.ReLU()
        self.drop = nn.Dropout(p=0.2)
        self.head = MemoryLinear(128, 10, memory_features=14)
        self.update_drop = MemoryUpdate(128, 192, rank=8)

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = MemoryState(memory)
        x = x.flatten(1)
        x = self.fc1(x, memory.features(14, x))  # = fc1(cat([x, m], -1))
        x = self.act1(x)
        x = self.fc2(x, memory.features(14, x))  # = fc2(cat([x, m], -1))
        x = self.drop(self.act2(x))
        memory = self.update_drop(memory, x)
        head = self.head(x, memory.features(14, x))  # = head(cat([x, m], -1))
        return head, memory.final()

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimMLP:
    return AimMLP()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 784, generator=g),)
