"""Library modules whose layers torch.fx cannot see, traced through a forward of the same function.

torchvision's Swin attention (``ShiftedWindowAttention``, ``ShiftedWindowAttentionV2`` and the
video models' ``ShiftedWindowAttention3d``) hands
its ``qkv`` and ``proj`` weights to ``shifted_window_attention``, a function torchvision
registers with ``torch.fx.wrap``: torch.fx records one call of it, and the two Linear layers
inside could not read the memory (swin_t: 24 of its 53 weight layers). The function cannot be
traced as it is written either: it turns the shift off where the window covers the padded map
(``if window_size[0] >= pad_H: shift_size[0] = 0``), a branch on a size.

What torch.fx follows instead is the same computation, step for step, with two changes that
leave every value as it was:
- the layers are called as layers (``self.qkv(x)``, ``self.proj(x)``), or, where V2 zeroes the
  key's bias, as ``F.linear`` on the layer's own weight;
- the size test is arithmetic, ``shift * (pad_h > window)``: a shift of 0 rolls nothing, and
  the mask it builds is then zero everywhere (every position falls in one region), as
  torchvision's unmasked path computes.

Keyed by the class's module and name, so nothing here imports torchvision.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _relative_position_bias(table: torch.Tensor, index: torch.Tensor, window: list[int]) -> torch.Tensor:
    n = window[0] * window[1]
    bias = table[index].view(n, n, -1)
    bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
    return bias


def _window_mask(x: torch.Tensor, padded: tuple, window: list, shift: list) -> torch.Tensor:
    """Shifted windows must not attend across the wrap-around: -100 between positions that
    came from different regions of the rolled map, 0 within one. Each axis is cut into three
    regions, as torchvision builds the mask in 2-d and in 3-d."""
    mask = x.new_zeros(padded)
    bounds = []
    for win, step in zip(window, shift):
        back = -step
        bounds.append(((0, -win), (-win, back), (back, None)))
    for region, corner in enumerate(itertools.product(*bounds)):
        mask[tuple(slice(a, b) for a, b in corner)] = region
    axes = len(window)
    mask = mask.view([size for n, win in zip(padded, window) for size in (n // win, win)])
    mask = mask.permute(*range(0, 2 * axes, 2), *range(1, 2 * axes, 2)).flatten(0, axes - 1).flatten(1)
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
    return mask


def swin_attention(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ShiftedWindowAttention(V2).forward with shifted_window_attention inlined."""
    v2 = hasattr(self, "logit_scale")
    window, heads = self.window_size, self.num_heads
    if v2:
        table = self.cpb_mlp(self.relative_coords_table).view(-1, heads)
        position_bias = 16 * torch.sigmoid(_relative_position_bias(table, self.relative_position_index, window))
    else:
        position_bias = _relative_position_bias(self.relative_position_bias_table, self.relative_position_index,
                                                 window)
    b, h, w, c = x.shape
    pad_r = (window[1] - w % window[1]) % window[1]
    pad_b = (window[0] - h % window[0]) % window[0]
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_h, pad_w, _ = x.shape
    shifted = sum(self.shift_size) > 0
    if shifted:  # no shift where the window covers the map (torchvision sets it to 0 there)
        shift_h = self.shift_size[0] * (pad_h > window[0])
        shift_w = self.shift_size[1] * (pad_w > window[1])
        x = torch.roll(x, shifts=(-shift_h, -shift_w), dims=(1, 2))
    windows = (pad_h // window[0]) * (pad_w // window[1])
    x = x.view(b, pad_h // window[0], window[0], pad_w // window[1], window[1], c)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b * windows, window[0] * window[1], c)
    if v2 and self.qkv.bias is not None:  # V2 gives the keys no bias
        q_bias, k_bias, v_bias = self.qkv.bias.chunk(3)
        qkv = F.linear(x, self.qkv.weight, torch.cat((q_bias, torch.zeros_like(k_bias), v_bias)))
    else:
        qkv = self.qkv(x)
    tokens = x.shape[1]
    qkv = qkv.reshape(-1, tokens, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q = qkv[0]
    k = qkv[1]
    v = qkv[2]
    if v2:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
    else:
        attn = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))
    attn = attn + position_bias
    if shifted:
        mask = _window_mask(x, (pad_h, pad_w), window, (shift_h, shift_w))
        attn = attn.view(-1, windows, heads, tokens, tokens) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, tokens, tokens)
    attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
    x = attn.matmul(v).transpose(1, 2).reshape(-1, tokens, c)
    x = F.dropout(self.proj(x), p=self.dropout, training=self.training)
    x = x.view(b, pad_h // window[0], pad_w // window[1], window[0], window[1], c)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, pad_h, pad_w, c)
    if shifted:
        x = torch.roll(x, shifts=(shift_h, shift_w), dims=(1, 2))
    return x[:, :h, :w, :].contiguous()


def swin_attention_3d(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ShiftedWindowAttention3d.forward with shifted_window_attention_3d inlined.
    Where the clip is no larger than the window along an axis, torchvision shrinks the window to
    the clip and turns that shift off: here ``torch.sym_min`` and arithmetic do the same."""
    b, t, h, w, c = x.shape
    window = []
    shift = []
    for size, win, step in zip((t, h, w), self.window_size, self.shift_size):
        window.append(torch.sym_min(size, win))
        shift.append(step * (size > win))
    heads = self.num_heads
    volume = window[0] * window[1] * window[2]
    index = self.relative_position_index[:volume, :volume].flatten()
    bias = self.relative_position_bias_table[index].view(volume, volume, -1)
    bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
    pad_t = (window[0] - t % window[0]) % window[0]
    pad_h = (window[1] - h % window[1]) % window[1]
    pad_w = (window[2] - w % window[2]) % window[2]
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h, 0, pad_t))
    _, tp, hp, wp, _ = x.shape
    shifted = sum(self.shift_size) > 0
    if shifted:
        x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
    windows = (tp // window[0]) * (hp // window[1]) * (wp // window[2])
    x = x.view(b, tp // window[0], window[0], hp // window[1], window[1], wp // window[2], window[2], c)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b * windows, volume, c)
    qkv = self.qkv(x)
    qkv = qkv.reshape(-1, volume, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q = qkv[0]
    k = qkv[1]
    v = qkv[2]
    attn = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))
    attn = attn + bias
    if shifted:
        mask = _window_mask(x, (tp, hp, wp), window, shift)
        attn = attn.view(-1, windows, heads, volume, volume) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, volume, volume)
    attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
    x = attn.matmul(v).transpose(1, 2).reshape(-1, volume, c)
    x = F.dropout(self.proj(x), p=self.dropout, training=self.training)
    x = x.view(b, tp // window[0], hp // window[1], wp // window[2], window[0], window[1], window[2], c)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, tp, hp, wp, c)
    if shifted:
        x = torch.roll(x, shifts=(shift[0], shift[1], shift[2]), dims=(1, 2, 3))
    return x[:, :t, :h, :w, :].contiguous()


#: "module:class" -> the forward torch.fx traces for modules of that class
_FORWARDS: dict[str, Callable] = {
    "torchvision.models.swin_transformer:ShiftedWindowAttention": swin_attention,
    "torchvision.models.swin_transformer:ShiftedWindowAttentionV2": swin_attention,
    "torchvision.models.video.swin_transformer:ShiftedWindowAttention3d": swin_attention_3d,
}


def library_forward(module: nn.Module) -> Callable | None:
    """The forward torch.fx follows for a library module of a class listed here, else None."""
    return _forward_of(type(module))


@functools.lru_cache(maxsize=None)
def _forward_of(cls: type) -> Callable | None:   # asked at every module call while tracing
    return _FORWARDS.get(f"{cls.__module__}:{cls.__qualname__}")
