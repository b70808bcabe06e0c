# AiM version of torchvision_models.py:vgg16, traced at input (1, 3, 224, 224).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1
#   budget=auto
# memory: (256, 14, 14) = 50,176 floats; taps: 16 of 16 weight layers; update blocks: 5; carry rate
#   0.1
# parameters: base 134,752,184 | aim 136,514,624 | delta +1,762,440 (memory 50,176, taps 1,667,168,
#   updates 45,096)
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 224, 224)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'aim', 'source': 'torchvision_models.py:vgg16', 'class': 'AimVGG',
    'input_shapes': ['1,3,224,224'], 'memory_shape': [256, 14, 14], 'memory': 'memory',
    'form': 'sum', 'base_params': 134752184, 'aim_params': 136514624,
    'delta': {'memory': 50176, 'taps': 1667168, 'updates': 45096}, 'update_blocks': 5,
    'depends': [],
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


class _MemoryConv:
    """conv(cat([x, m], 1)) computed as conv(x) + conv(m, memory_weight): ``weight`` keeps its
    base shape and ``memory_weight`` holds what the memory channels would get in a widened
    layer (and is drawn the way PyTorch would draw them there)."""

    def __init__(self, *args, memory_channels: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        shape = (self.out_channels, memory_channels, *self.kernel_size)
        fan_in = (self.in_channels // self.groups + memory_channels) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter(shape, fan_in)
        # one memory channel: a product added to the output (add_product) of its values (1x1)
        # or its k x k patches (2-d); in ONNX always a conv, which onnxruntime fuses
        self.memory_read = "conv"
        if memory_channels == 1 and self.padding_mode == "zeros":
            unpadded = isinstance(self.padding, str) or not any(self.padding)
            if math.prod(self.kernel_size) == 1 and unpadded:
                self.memory_read = "value"
            elif len(self.kernel_size) == 2 and not isinstance(self.padding, str):
                self.memory_read = "patches"

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(x, self.weight, self.bias)
        # a memory shared by the batch (before the first update) is convolved once, at batch 1
        shared = self.memory_read == "patches" and m.shape[0] < out.shape[0]
        if self.memory_read == "conv" or shared or torch.onnx.is_in_onnx_export():
            return out + self._conv_forward(m, self.memory_weight, None)
        if self.memory_read == "patches":
            m = F.unfold(m, self.kernel_size, self.dilation, self.padding, self.stride)
            return add_product(out, m, self.memory_weight)
        return add_product(out, m, self.memory_weight, self.stride)


class MemoryConv2d(_MemoryConv, nn.Conv2d):
    """nn.Conv2d that also reads ``memory_channels`` fitted memory channels."""


class MemoryLinear(nn.Linear):
    """nn.Linear that also reads ``memory_features`` fitted memory features: linear(cat([x, m],
    -1)) as linear(x) + linear(m, memory_weight), m broadcast over the middle axes, not copied."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.in_features + memory_features
        self.memory_weight = weight_parameter((self.out_features, memory_features), fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(m, self.memory_weight)


class AimVGG(nn.Module):
    """AiM version of VGG: the memory, its readers and its update blocks."""

    def __init__(self):
        super().__init__()
        # 50,176 floats, carried from batch to batch
        self.memory = Memory((256, 14, 14), carry_rate=0.1)
        self.features = nn.Sequential(
            MemoryConv2d(3, 64, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(64, 64, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            MemoryConv2d(64, 128, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(128, 128, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            MemoryConv2d(128, 256, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(256, 256, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(256, 256, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            MemoryConv2d(256, 512, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(512, 512, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(512, 512, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            MemoryConv2d(512, 512, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(512, 512, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            MemoryConv2d(512, 512, 3, padding=1, memory_channels=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            MemoryLinear(25088, 4096, memory_features=196),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            MemoryLinear(4096, 4096, memory_features=196),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            MemoryLinear(4096, 120, memory_features=196),
        )
        self.update_features_3 = MemoryUpdate(64, 256, rank=8)
        self.update_features_8 = MemoryUpdate(128, 256, rank=8)
        self.update_features_15 = MemoryUpdate(256, 256, rank=8)
        self.update_features_22 = MemoryUpdate(512, 256, rank=8)
        self.update_features_29 = MemoryUpdate(512, 256, rank=8)

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = MemoryState(memory)
        x = self.features[0](x, memory.channels(1, x))  # = features.0(cat([x, m], 1))
        x = self.features[1](x)
        x = self.features[2](x, memory.channels(1, x))  # = features.2(cat([x, m], 1))
        x = self.features[3](x)
        memory = self.update_features_3(memory, pool_to_grid(x, (14, 14)))
        x = self.features[4](x)
        x = self.features[5](x, memory.channels(1, x))  # = features.5(cat([x, m], 1))
        x = self.features[6](x)
        x = self.features[7](x, memory.channels(1, x))  # = features.7(cat([x, m], 1))
        x = self.features[8](x)
        memory = self.update_features_8(memory, pool_to_grid(x, (14, 14)))
        x = self.features[9](x)
        x = self.features[10](x, memory.channels(1, x))  # = features.10(cat([x, m], 1))
        x = self.features[11](x)
        x = self.features[12](x, memory.channels(1, x))  # = features.12(cat([x, m], 1))
        x = self.features[13](x)
        x = self.features[14](x, memory.channels(1, x))  # = features.14(cat([x, m], 1))
        x = self.features[15](x)
        memory = self.update_features_15(memory, pool_to_grid(x, (14, 14)))
        x = self.features[16](x)
        x = self.features[17](x, memory.channels(1, x))  # = features.17(cat([x, m], 1))
        x = self.features[18](x)
        x = self.features[19](x, memory.channels(1, x))  # = features.19(cat([x, m], 1))
        x = self.features[20](x)
        x = self.features[21](x, memory.channels(1, x))  # = features.21(cat([x, m], 1))
        x = self.features[22](x)
        memory = self.update_features_22(memory, pool_to_grid(x, (14, 14)))
        x = self.features[23](x)
        x = self.features[24](x, memory.channels(1, x))  # = features.24(cat([x, m], 1))
        x = self.features[25](x)
        x = self.features[26](x, memory.channels(1, x))  # = features.26(cat([x, m], 1))
        x = self.features[27](x)
        x = self.features[28](x, memory.channels(1, x))  # = features.28(cat([x, m], 1))
        x = self.features[29](x)
        memory = self.update_features_29(memory, pool_to_grid(x, (14, 14)))
        x = self.features[30](x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier[0](x, memory.features(196, x))  # = classifier.0(cat([x, m], -1))
        x = self.classifier[1](x)
        x = self.classifier[2](x)
        x = self.classifier[3](x, memory.features(196, x))  # = classifier.3(cat([x, m], -1))
        x = self.classifier[4](x)
        x = self.classifier[5](x)
        x = self.classifier[6](x, memory.features(196, x))  # = classifier.6(cat([x, m], -1))
        return x, memory.final()

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimVGG:
    return AimVGG()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, 224, 224, generator=g),)
