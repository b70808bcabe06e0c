# AiM version of swin_tiny.py:SwinTiny, traced at input (1, 3, 32, 32).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1
#   budget=auto
# memory: (1, 8, 8) = 64 floats; taps: 10 of 10 weight layers; update blocks: 1; carry rate 0.1
# parameters: base 27,370 | aim 28,570 | delta +1,200 (memory 64, taps 1,098, updates 38)
# note: Linear layers read 1 memory feature each (not 8) to stay within the 5% parameter budget
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 32, 32)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'aim', 'source': 'swin_tiny.py:SwinTiny', 'class': 'AimSwinTiny',
    'input_shapes': ['1,3,32,32'], 'memory_shape': [1, 8, 8], 'memory': 'memory', 'form': 'sum',
    'base_params': 27370, 'aim_params': 28570,
    'delta': {'memory': 64, 'taps': 1098, 'updates': 38}, 'update_blocks': 1, 'depends': [],
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


def per_window(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A memory read (1 or N rows) for an x whose N * w rows are windows of the samples, sample
    by sample (window attention): each sample's row repeated for its w windows."""
    n = m.shape[0]
    return m.unsqueeze(1).expand(n, x.shape[0] // n, *m.shape[1:]).flatten(0, 1)


def weight_parameter(shape: tuple[int, ...], fan_in: int | None = None) -> nn.Parameter:
    """As PyTorch draws a layer's weights: uniform(+-1/sqrt(fan_in)), by default of shape[1:]."""
    bound = 1 / math.sqrt(fan_in or math.prod(shape[1:]))
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class MemoryLinear(nn.Linear):
    """nn.Linear that also reads ``memory_features`` fitted memory features: linear(cat([x, m],
    -1)) as linear(x) + linear(m, memory_weight), m broadcast over the middle axes, not copied."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.in_features + memory_features
        self.memory_weight = weight_parameter((self.out_features, memory_features), fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(m, self.memory_weight)


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


class MemorySequential(nn.Sequential):
    """nn.Sequential of blocks that each take and return (x, memory); same state_dict keys."""

    def forward(self, x: torch.Tensor, memory: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        for block in self:
            x, memory = block(x, memory)
        return x, memory


# Copied from swin_tiny.py: code the model or its __init__ runs, not traced by torch.fx.


def partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window * window, C), each sample's windows in turn."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def make_mask(*, shift, resolution, window):
    if not shift:
        return None
    regions = torch.zeros(1, resolution, resolution, 1)
    label = 0
    for rows in ((0, -window), (-window, -shift), (-shift, None)):
        for cols in ((0, -window), (-window, -shift), (-shift, None)):
            regions[:, rows[0]:rows[1], cols[0]:cols[1], :] = label
            label += 1
    windows = partition(regions, window).squeeze(-1)
    mask = windows[:, None, :] - windows[:, :, None]
    return mask.masked_fill(mask != 0, -100.0)


class WindowAttention(nn.Module):
    """WindowAttention of the base model (1 instance: blocks.0.attn). Reads the memory at proj,
    qkv (1 memory feature each)."""

    def __init__(self):
        super().__init__()
        self.qkv = MemoryLinear(32, 96, memory_features=1)
        self.proj = MemoryLinear(32, 32, memory_features=1)

    def forward(self, x, memory):
        b, n, c = x.shape
        # = qkv(cat([x, m], -1)), each window with its sample's m
        qkv = self.qkv(x, per_window(memory.features(1, x), x))
        q, k, v = qkv.reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // 2) ** -0.5
        reshape = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        # = proj(cat([reshape, m], -1)), each window with its sample's m
        proj = self.proj(reshape, per_window(memory.features(1, reshape), reshape))
        return proj, memory


class WindowAttention2(nn.Module):
    """WindowAttention of the base model (1 instance: blocks.1.attn), a variant of
    WindowAttention: its forward takes (x, attn_mask, memory); 3 lines of its forward
    differ. Reads the memory at proj, qkv (1 memory feature each)."""

    def __init__(self):
        super().__init__()
        self.qkv = MemoryLinear(32, 96, memory_features=1)
        self.proj = MemoryLinear(32, 32, memory_features=1)

    def forward(self, x, attn_mask, memory):
        b, n, c = x.shape
        # = qkv(cat([x, m], -1)), each window with its sample's m
        qkv = self.qkv(x, per_window(memory.features(1, x), x))
        q, k, v = qkv.reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // 2) ** -0.5
        windows = attn_mask.shape[0]
        attn = attn.view(b // windows, windows, 2, n, n) + attn_mask.view(1, windows, 1, n, n)
        attn = attn.view(b, 2, n, n)
        reshape = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        # = proj(cat([reshape, m], -1)), each window with its sample's m
        proj = self.proj(reshape, per_window(memory.features(1, reshape), reshape))
        return proj, memory


class SwinBlock(nn.Module):
    """SwinBlock of the base model (1 instance: blocks.0). Reads the memory at attn.proj,
    attn.qkv, mlp.0, mlp.2 (1 memory feature each)."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(32)
        self.attn = WindowAttention()
        self.norm2 = nn.LayerNorm(32)
        self.mlp = nn.Sequential(
            MemoryLinear(32, 128, memory_features=1),
            nn.GELU(),
            MemoryLinear(128, 32, memory_features=1),
        )

    def forward(self, x, memory):
        _, h, w, _ = x.shape
        shifted = self.norm1(x)
        b, h_1, w_1, c = shifted.shape
        permute = shifted.view(b, h_1 // 4, 4, w_1 // 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, 16, c)
        attn, memory = self.attn(out, memory)
        c = attn.shape[-1]
        permute = attn.view(-1, h // 4, w // 4, 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, h, w, c)
        x = x + out
        norm2 = self.norm2(x)
        linear = self.mlp[0](norm2, memory.features(1, norm2))  # = mlp.0(cat([norm2, m], -1))
        gelu = self.mlp[1](linear)
        linear = self.mlp[2](gelu, memory.features(1, gelu))  # = mlp.2(cat([gelu, m], -1))
        return x + linear, memory


class SwinBlock2(nn.Module):
    """SwinBlock of the base model (1 instance: blocks.1), a variant of SwinBlock: also has
    attn_mask; its attn is a WindowAttention2; 3 lines of its forward differ. Reads the
    memory at attn.proj, attn.qkv, mlp.0, mlp.2 (1 memory feature each)."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(32)
        self.attn = WindowAttention2()
        self.norm2 = nn.LayerNorm(32)
        self.mlp = nn.Sequential(
            MemoryLinear(32, 128, memory_features=1),
            nn.GELU(),
            MemoryLinear(128, 32, memory_features=1),
        )
        # as its module's __init__ computes it
        self.attn_mask = nn.Buffer(make_mask(shift=2, resolution=8, window=4), persistent=False)

    def forward(self, x, memory):
        _, h, w, _ = x.shape
        shifted = self.norm1(x)
        shifted = torch.roll(shifted, (-2, -2), (1, 2))
        b, h_1, w_1, c = shifted.shape
        permute = shifted.view(b, h_1 // 4, 4, w_1 // 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, 16, c)
        attn, memory = self.attn(out, self.attn_mask, memory)
        c = attn.shape[-1]
        permute = attn.view(-1, h // 4, w // 4, 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, h, w, c)
        out = torch.roll(out, (2, 2), (1, 2))
        x = x + out
        norm2 = self.norm2(x)
        linear = self.mlp[0](norm2, memory.features(1, norm2))  # = mlp.0(cat([norm2, m], -1))
        gelu = self.mlp[1](linear)
        linear = self.mlp[2](gelu, memory.features(1, gelu))  # = mlp.2(cat([gelu, m], -1))
        return x + linear, memory


class AimSwinTiny(nn.Module):
    """AiM version of SwinTiny: the memory, its readers and its update blocks."""

    def __init__(self):
        super().__init__()
        self.memory = Memory((1, 8, 8), carry_rate=0.1)  # 64 floats, carried from batch to batch
        self.patch_embed = MemoryConv2d(3, 32, 4, stride=4, memory_channels=1)
        self.blocks = MemorySequential(
            SwinBlock(),
            SwinBlock2(),
        )
        self.norm = nn.LayerNorm(32)
        self.head = MemoryLinear(32, 10, memory_features=1)
        self.update_norm = MemoryUpdate(32, 1, rank=1)

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = MemoryState(memory)
        x = self.patch_embed(x, memory.channels(1, x))  # = patch_embed(cat([x, m], 1))
        x = x.permute(0, 2, 3, 1)
        x, memory = self.blocks(x, memory)
        norm = self.norm(x)
        memory = self.update_norm(memory, pool_to_grid(norm.movedim(-1, 1), (8, 8)))
        mean = norm.mean((1, 2))
        head = self.head(mean, memory.features(1, mean))  # = head(cat([mean, m], -1))
        return head, memory.final()

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimSwinTiny:
    return AimSwinTiny()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, 32, 32, generator=g),)
