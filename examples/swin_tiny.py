"""A small shifted-window transformer, written the way timm writes Swin: attention inside
windows of 4 x 4 cells, every second block shifted, its attention mask computed once by a method
from the window geometry and kept out of state_dict (a non-persistent buffer).

aimgen's output for it shows how window layers read the memory (each window its own sample's
memory: ``per_window``) and how a table the constructor computes is written (the method copied
as a function of what it reads from ``self``).
"""
import torch
from torch import nn


def partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window * window, C), each sample's windows in turn."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def merge(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """The inverse of ``partition``."""
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
        if mask is not None:   # (windows, n, n): -100 between cells of different regions
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.heads, n, n) + mask.view(1, windows, 1, n, n)
            attn = attn.view(b, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, window: int = 4, shift: int = 0):
        super().__init__()
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.register_buffer("attn_mask", self.make_mask(), persistent=False)

    def make_mask(self):
        if not self.shift:
            return None
        regions = torch.zeros(1, self.resolution, self.resolution, 1)
        label = 0
        for rows in ((0, -self.window), (-self.window, -self.shift), (-self.shift, None)):
            for cols in ((0, -self.window), (-self.window, -self.shift), (-self.shift, None)):
                regions[:, rows[0]:rows[1], cols[0]:cols[1], :] = label
                label += 1
        windows = partition(regions, self.window).squeeze(-1)
        mask = windows[:, None, :] - windows[:, :, None]
        return mask.masked_fill(mask != 0, -100.0)

    def forward(self, x):
        b, h, w, c = x.shape
        shifted = self.norm1(x)
        if self.shift:
            shifted = torch.roll(shifted, (-self.shift, -self.shift), (1, 2))
        out = merge(self.attn(partition(shifted, self.window), self.attn_mask), self.window, h, w)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), (1, 2))
        x = x + out
        return x + self.mlp(self.norm2(x))


class SwinTiny(nn.Module):
    def __init__(self, dim: int = 32, classes: int = 10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, stride=4)
        self.blocks = nn.Sequential(SwinBlock(dim, 8), SwinBlock(dim, 8, shift=2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.blocks(self.patch_embed(x).permute(0, 2, 3, 1))
        return self.head(self.norm(x).mean((1, 2)))
