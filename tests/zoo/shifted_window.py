"""Shifted-window attention as timm's Swin writes it: the block's ``__init__`` calls
``reset_parameters()``, which registers the attention mask (too large to write as a literal,
kept out of state_dict) from a method that reads the window geometry from ``self``; the
attention reshapes that buffer with its own shape (``mask.view(1, mask.shape[0], ...)``)."""
import math

import torch
from torch import nn


def partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def merge(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.heads, n, n) + mask.view(1, windows, 1, n, n)
            attn = attn.view(b, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class ShiftedBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, window: int = 4, shift: int = 0):
        super().__init__()
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, 2)
        self.register_buffer("attn_mask", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._init_buffers()

    def _init_buffers(self) -> None:
        dtype = self.norm.weight.dtype
        mask = self.make_mask(dtype=dtype)
        self.register_buffer("attn_mask", mask, persistent=False)

    def make_mask(self, dtype: torch.dtype = torch.float32):
        if not self.shift:
            return None
        size = math.ceil(self.resolution / self.window) * self.window
        region = torch.zeros(1, size, size, 1, dtype=dtype)
        label = 0
        for rows in ((0, -self.window), (-self.window, -self.shift), (-self.shift, None)):
            for cols in ((0, -self.window), (-self.window, -self.shift), (-self.shift, None)):
                region[:, rows[0]:rows[1], cols[0]:cols[1], :] = label
                label += 1
        windows = partition(region, self.window).squeeze(-1)
        mask = windows[:, None, :] - windows[:, :, None]
        return mask.masked_fill(mask != 0, -100.0)

    def forward(self, x):
        b, h, w, c = x.shape
        shifted = torch.roll(self.norm(x), (-self.shift, -self.shift), (1, 2)) if self.shift else self.norm(x)
        out = merge(self.attn(partition(shifted, self.window), self.attn_mask), self.window, h, w)
        return x + (torch.roll(out, (self.shift, self.shift), (1, 2)) if self.shift else out)


class Net(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 2, stride=2)
        self.blocks = nn.Sequential(ShiftedBlock(dim, 8), ShiftedBlock(dim, 8, shift=2))
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        x = self.blocks(self.embed(x).permute(0, 2, 3, 1))
        return self.head(x.mean((1, 2)))
