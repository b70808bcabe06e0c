# AiM version of text_transformer.py:TextTransformer, traced at input (1, 12, 16).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1
#   budget=auto
# memory: (1,) = 1 float; taps: 8 of 8 weight layers; update blocks: 1; carry rate 0.1
# parameters: base 17,861 | aim 18,385 | delta +524 (memory 1, taps 485, updates 38)
# note: memory shrunk to 1 float to stay within the 5% parameter budget
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 12, 16)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'aim', 'source': 'text_transformer.py:TextTransformer',
    'class': 'AimTextTransformer', 'input_shapes': ['1,12,16'], 'memory_shape': [1],
    'memory': 'memory', 'form': 'sum', 'base_params': 17861, 'aim_params': 18385,
    'delta': {'memory': 1, 'taps': 485, 'updates': 38}, 'update_blocks': 1, 'depends': [],
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


def additive_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """A boolean attention mask as the float mask it means (-inf where True), as torch.nn does."""
    if mask is None or mask.is_floating_point():
        return mask
    zeros = torch.zeros(mask.shape, dtype=like.dtype, device=like.device)
    return zeros.masked_fill(mask, float("-inf"))


def project(query, key, value, weight, bias):
    """q, k, v from the packed in_proj weight, as nn.MultiheadAttention computes them (one
    product where the inputs are one tensor, so the numbers are its own to the last bit)."""
    e = query.shape[-1]
    if key is value and query is key:
        qkv = F.linear(query, weight, bias).unflatten(-1, (3, e))
        return qkv.unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous().unbind(0)
    if key is value:
        b_q, b_kv = (None, None) if bias is None else bias.split([e, 2 * e])
        w_q, w_kv = weight.split([e, 2 * e])
        kv = F.linear(key, w_kv, b_kv).unflatten(-1, (2, e))
        kv = kv.unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        return (F.linear(query, w_q, b_q), *kv.unbind(0))
    biases = (None, None, None) if bias is None else bias.chunk(3)
    inputs = (query, key, value)
    return tuple(F.linear(x, w, b) for x, w, b in zip(inputs, weight.chunk(3), biases))


def weight_parameter(shape: tuple[int, ...], fan_in: int | None = None) -> nn.Parameter:
    """As PyTorch draws a layer's weights: uniform(+-1/sqrt(fan_in)), by default of shape[1:]."""
    bound = 1 / math.sqrt(fan_in or math.prod(shape[1:]))
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class MemoryMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention whose query, key, value and output projections also read
    ``memory_features`` fitted memory features m (broadcast over the sequence): each
    projection p(x) is p(x) + F.linear(m, its rows of ``memory_weight``), = p(cat([x, m], -1)).
    The rest is what torch.nn computes, step for step (F.multi_head_attention_forward),
    sequence first."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.embed_dim + memory_features
        self.memory_weight = weight_parameter((4 * self.embed_dim, memory_features), fan_in)

    def forward(self, query, key, value, m, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        # to (L, N, E), keeping which inputs are one tensor (as torch.nn does)
        if self.batch_first:
            if key is value and query is key:
                query = key = value = query.transpose(1, 0)
            elif key is value:
                query, key = query.transpose(1, 0), key.transpose(1, 0)
                value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        length, n, e = query.shape
        heads, d = self.num_heads, e // self.num_heads
        m = m.transpose(0, 1)   # (N or 1, 1, k) -> (1, N or 1, k): the batch is the second axis
        memory_weights = self.memory_weight.chunk(4)   # q, k, v, output
        projected = project(query, key, value, self.in_proj_weight, self.in_proj_bias)
        q, k, v = (p + F.linear(m, w) for p, w in zip(projected, memory_weights))
        mask, pad = additive_mask(attn_mask, q), additive_mask(key_padding_mask, q)
        mask = mask.unsqueeze(0) if mask is not None and mask.dim() == 2 else mask
        q = q.view(length, n * heads, d).transpose(0, 1)
        k = k.view(k.shape[0], n * heads, d).transpose(0, 1)
        v = v.view(v.shape[0], n * heads, d).transpose(0, 1)
        if pad is not None:
            pad = pad.view(n, 1, 1, k.shape[1]).expand(-1, heads, -1, -1)
            pad = pad.reshape(n * heads, 1, k.shape[1])
            mask = pad if mask is None else mask + pad
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scaled = q * math.sqrt(1.0 / d)
            scores = torch.bmm(scaled, k.transpose(-2, -1)) if mask is None else \
                torch.baddbmm(mask, scaled, k.transpose(-2, -1))
            attn = torch.softmax(scores, dim=-1)
            attn = F.dropout(attn, p=dropout) if dropout > 0.0 else attn
            out = torch.bmm(attn, v).transpose(0, 1).contiguous().view(length * n, e)
            attn = attn.view(n, heads, length, k.shape[1])
            attn = attn.mean(dim=1) if average_attn_weights else attn
        else:
            causal = is_causal and pad is None   # torch's hint: the mask is then left to it
            if mask is not None and not causal:
                shared = mask.shape[0] == 1 and mask.dim() == 3
                mask = mask.unsqueeze(0) if shared else mask.view(n, heads, -1, k.shape[1])
            q, k, v = q.view(n, heads, length, d), k.view(n, heads, -1, d), v.view(n, heads, -1, d)
            mask = None if causal else mask
            out = F.scaled_dot_product_attention(q, k, v, mask, dropout, causal)
            out, attn = out.permute(2, 0, 1, 3).contiguous().view(length * n, e), None
        out = self.out_proj(out).view(length, n, e) + F.linear(m, memory_weights[3])
        return (out.transpose(1, 0) if self.batch_first else out), attn


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


class TransformerEncoderLayer(nn.Module):
    """TransformerEncoderLayer of the base model (2 instances: encoder.layers.0,
    encoder.layers.1). Reads the memory at linear1, linear2, self_attn (1 memory feature
    each)."""

    def __init__(self):
        super().__init__()
        self.self_attn = MemoryMultiheadAttention(32, 4, dropout=0.1, memory_features=1)
        self.linear1 = MemoryLinear(32, 64, memory_features=1)
        self.dropout = nn.Dropout(p=0.1)
        self.linear2 = MemoryLinear(64, 32, memory_features=1)
        self.norm1 = nn.LayerNorm((32,))
        self.norm2 = nn.LayerNorm((32,))
        self.dropout1 = nn.Dropout(p=0.1)
        self.dropout2 = nn.Dropout(p=0.1)

    def forward(self, x, memory):
        # = self_attn with cat([., m], -1) into its q, k, v and output projections
        self_attn = self.self_attn(x, x, x, memory.features(1, x), attn_mask=None,
                                   key_padding_mask=None, need_weights=False, is_causal=False)
        x_1 = self_attn[0]
        dropout1 = self.dropout1(x_1)
        x = self.norm1(x + dropout1)
        # = linear1(cat([x, m], -1))
        linear1 = self.linear1(x, memory.features(1, x).transpose(0, 1))
        relu = F.relu(linear1)
        dropout = self.dropout(relu)
        # = linear2(cat([dropout, m], -1))
        linear2 = self.linear2(dropout, memory.features(1, dropout).transpose(0, 1))
        dropout2 = self.dropout2(linear2)
        x = self.norm2(x + dropout2)
        return x, memory


class TransformerEncoder(nn.Module):
    """TransformerEncoder of the base model (1 instance: encoder). Reads the memory at
    layers.0.linear1, layers.0.linear2, layers.0.self_attn, layers.1.linear1,
    layers.1.linear2, layers.1.self_attn (1 memory feature each)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                TransformerEncoderLayer(),
                TransformerEncoderLayer(),
            ],
        )
        self.norm = nn.LayerNorm(32)

    def forward(self, src, memory):
        x, memory = self.layers[0](src, memory)
        x, memory = self.layers[1](x, memory)
        output = self.norm(x)
        return output, memory


class AimTextTransformer(nn.Module):
    """AiM version of TextTransformer: the memory, its readers and its update blocks."""

    def __init__(self):
        super().__init__()
        self.memory = Memory((1,), carry_rate=0.1)  # 1 float, carried from batch to batch
        self.embed = MemoryLinear(16, 32, memory_features=1)
        self.encoder = TransformerEncoder()
        self.head = MemoryLinear(32, 5, memory_features=1)
        self.update_mean = MemoryUpdate(32, 1, rank=1)

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = MemoryState(memory)
        x = self.embed(x, memory.features(1, x))  # = embed(cat([x, m], -1))
        x = x.transpose(0, 1)
        x, memory = self.encoder(x, memory)
        mean = x.mean(0)
        memory = self.update_mean(memory, mean)
        head = self.head(mean, memory.features(1, mean))  # = head(cat([mean, m], -1))
        return head, memory.final()

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimTextTransformer:
    return AimTextTransformer()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 12, 16, generator=g),)
