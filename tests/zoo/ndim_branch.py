"""Attention that branches on its input's rank, as diffusers' AttnProcessor does
(``if input_ndim == 4:``): torch.fx cannot trace that block and would keep it whole, hiding
its four Linear layers from the memory; torch.export sees into it."""
import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x):
        if x.ndim == 4:
            n, c, h, w = x.shape
            x = x.flatten(2).transpose(1, 2)
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        out = self.to_out(torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, -1) @ v)
        return out.transpose(1, 2).reshape(n, c, h, w)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, 16, 3, padding=1)
        self.attn = Attention(16)
        self.conv_out = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        return self.conv_out(h + self.attn(h))


class ValueGate(nn.Module):
    """Branches on a tensor value: torch.export cannot capture that either, so torch.fx's graph,
    with this block kept whole and its Linear listed, stands."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        y = self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)
        if y.mean() > 0:
            return y
        return -y


class GatedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, 16, 3, padding=1)
        self.gate = ValueGate(16)
        self.conv_out = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        return self.conv_out(self.gate(self.conv_in(x)))
