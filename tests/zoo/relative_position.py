"""Windowed attention with a relative-position bias, as Swin and CoAtNet write it: the bias
module's ``__init__`` builds an integer index table too large to write as a literal, and the
attention reads it through a method (``self.rel_pos.get_bias()``), never calling the module."""
import torch
from torch import nn


def relative_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).flatten()


class RelPosBias(nn.Module):
    def __init__(self, window: int, heads: int):
        super().__init__()
        self.window, self.heads = window, heads
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads) * 0.02)
        self.register_buffer("index", relative_index(window), persistent=False)  # window**4 entries

    def get_bias(self) -> torch.Tensor:
        n = self.window * self.window
        return self.table[self.index].view(n, n, self.heads).permute(2, 0, 1)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = RelPosBias(window, heads)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5 + self.rel_pos.get_bias()
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class Net(nn.Module):
    def __init__(self, window: int = 9, dim: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 1)
        self.attn = Attention(dim, 2, window)
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = x + self.attn(x)
        return self.head(x.mean(1))


class SinusoidalTable(nn.Module):
    """A float table its __init__ computes and keeps out of state_dict (persistent=False)."""

    def __init__(self, length: int, dim: int):
        super().__init__()
        position = torch.arange(length)[:, None] / 10000 ** (torch.arange(dim)[None] / dim)
        self.register_buffer("table", torch.sin(position) + torch.cos(position), persistent=False)

    def forward(self, x):
        return x + self.table


class NetWithTable(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 1)
        self.position = SinusoidalTable(81, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.position(self.embed(x).flatten(2).transpose(1, 2))
        return self.head(x.mean(1))


class CausalMix(nn.Module):
    """Attention whose mask its forward makes from Python numbers: torch.fx runs that code and
    records the (n, n) result as a constant of the graph (as Swin's shifted-window mask is)."""

    def __init__(self, n: int, dim: int):
        super().__init__()
        self.n = n
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        mask = torch.triu(torch.full((self.n, self.n), -1e4), 1)
        return ((q @ k.transpose(-2, -1)) + mask).softmax(-1) @ v


class NetWithMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 1)
        self.mix = CausalMix(81, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.mix(x).mean(1))
