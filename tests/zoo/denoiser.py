"""Issue 15: a diffusion-style denoiser with two inputs: the noisy image and the timestep. The
timestep embedding feeds every residual block (a side input that reaches every block)."""
import math

import torch
from torch import nn


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t[:, None].float() * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, channels, emb_dim):
        super().__init__()
        self.norm1 = nn.GroupNorm(4, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, channels)
        self.norm2 = nn.GroupNorm(4, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, emb):
        h = self.conv1(torch.relu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(torch.relu(self.norm2(h)))
        return x + h


class Denoiser(nn.Module):
    def __init__(self, channels=3, width=16, emb_dim=32):
        super().__init__()
        self.emb_dim = emb_dim
        self.time = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.block1 = ResBlock(width, emb_dim)
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.block2 = ResBlock(width, emb_dim)
        self.up = nn.Upsample(scale_factor=2)
        self.block3 = ResBlock(width, emb_dim)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x, t):
        emb = self.time(timestep_embedding(t, self.emb_dim))
        h = self.block1(self.stem(x), emb)
        h = self.block2(self.down(h), emb)
        h = self.block3(self.up(h), emb)
        return self.out(h)
