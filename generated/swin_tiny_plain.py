# Plain rendering of swin_tiny.py:SwinTiny, traced at input (1, 3, 32, 32).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 32, 32)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'plain', 'source': 'swin_tiny.py:SwinTiny', 'class': 'SwinTiny',
    'input_shapes': ['1,3,32,32'], 'params': 27370, 'depends': [],
}


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
    """WindowAttention of the base model (1 instance: blocks.0.attn)."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(32, 96)
        self.proj = nn.Linear(32, 32)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x)
        q, k, v = qkv.reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // 2) ** -0.5
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class WindowAttention2(nn.Module):
    """WindowAttention of the base model (1 instance: blocks.1.attn), a variant of
    WindowAttention: its forward takes (x, attn_mask); 3 lines of its forward differ."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(32, 96)
        self.proj = nn.Linear(32, 32)

    def forward(self, x, attn_mask):
        b, n, c = x.shape
        qkv = self.qkv(x)
        q, k, v = qkv.reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // 2) ** -0.5
        windows = attn_mask.shape[0]
        attn = attn.view(b // windows, windows, 2, n, n) + attn_mask.view(1, windows, 1, n, n)
        attn = attn.view(b, 2, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    """SwinBlock of the base model (1 instance: blocks.0)."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(32)
        self.attn = WindowAttention()
        self.norm2 = nn.LayerNorm(32)
        self.mlp = nn.Sequential(
            nn.Linear(32, 128),
            nn.GELU(),
            nn.Linear(128, 32),
        )

    def forward(self, x):
        _, h, w, _ = x.shape
        shifted = self.norm1(x)
        b, h_1, w_1, c = shifted.shape
        permute = shifted.view(b, h_1 // 4, 4, w_1 // 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, 16, c)
        attn = self.attn(out)
        c = attn.shape[-1]
        permute = attn.view(-1, h // 4, w // 4, 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, h, w, c)
        x = x + out
        return x + self.mlp(self.norm2(x))


class SwinBlock2(nn.Module):
    """SwinBlock of the base model (1 instance: blocks.1), a variant of SwinBlock: also has
    attn_mask; its attn is a WindowAttention2; 3 lines of its forward differ."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(32)
        self.attn = WindowAttention2()
        self.norm2 = nn.LayerNorm(32)
        self.mlp = nn.Sequential(
            nn.Linear(32, 128),
            nn.GELU(),
            nn.Linear(128, 32),
        )
        # as its module's __init__ computes it
        self.attn_mask = nn.Buffer(make_mask(shift=2, resolution=8, window=4), persistent=False)

    def forward(self, x):
        _, h, w, _ = x.shape
        shifted = self.norm1(x)
        shifted = torch.roll(shifted, (-2, -2), (1, 2))
        b, h_1, w_1, c = shifted.shape
        permute = shifted.view(b, h_1 // 4, 4, w_1 // 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, 16, c)
        attn = self.attn(out, self.attn_mask)
        c = attn.shape[-1]
        permute = attn.view(-1, h // 4, w // 4, 4, 4, c).permute(0, 1, 3, 2, 4, 5)
        out = permute.reshape(-1, h, w, c)
        out = torch.roll(out, (2, 2), (1, 2))
        x = x + out
        return x + self.mlp(self.norm2(x))


class SwinTiny(nn.Module):
    """Plain rendering of SwinTiny."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 32, 4, stride=4)
        self.blocks = nn.Sequential(
            SwinBlock(),
            SwinBlock2(),
        )
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        x = self.blocks(x)
        return self.head(self.norm(x).mean((1, 2)))


def build_model() -> SwinTiny:
    return SwinTiny()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, 32, 32, generator=g),)
