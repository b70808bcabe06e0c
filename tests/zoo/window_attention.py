"""Window attention, as Swin writes it: the (B, H, W, C) map is cut into windows of 4x4 cells,
and the attention's Linear layers run on (B * windows, 16, C), each sample's windows in turn.
``TokenFirst`` runs a Linear on the tokens sequence first instead (a row a token, not a sample)."""
import torch
from torch import nn


def window_partition(x: torch.Tensor, s: int) -> torch.Tensor:
    b, h, w, c = x.shape
    return x.view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)


def window_reverse(windows: torch.Tensor, s: int, b: int, h: int, w: int) -> torch.Tensor:
    c = windows.shape[-1]
    return windows.view(b, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.window, self.heads = window, heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, h, w, c = x.shape
        windows = window_partition(self.norm(x), self.window)
        n = windows.shape[1]
        q, k, v = self.qkv(windows).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))
        return x + window_reverse(out, self.window, b, h, w)


class Net(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 2, stride=2)
        self.attn = WindowAttention(dim, 4, 2)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.attn(self.embed(x).permute(0, 2, 3, 1))
        return self.head(x.mean((1, 2)))


class TokenFirst(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 2, stride=2)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).permute(2, 0, 1)   # (tokens, B, C)
        return self.head(self.mix(tokens).mean(0))


class BlockConv(nn.Module):
    """NesT's blocks: the (B, C, H, W) map cut into 2x2 blocks, (B * 4, C, H/2, W/2), each sample's
    blocks in turn, and a 3x3 conv run on every block."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 1)
        self.block = nn.Conv2d(dim, dim, 3, padding=1)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.embed(x)
        b, c, h, w = x.shape
        blocks = x.view(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(b * 4, c, h // 2, w // 2)
        out = self.block(blocks).view(b, 2, 2, c, h // 2, w // 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        return self.head((x + out).mean((2, 3)))


class PositionBias(nn.Module):
    """A bias MLP on a table of positions (CrossFormer's dynamic position bias): its input is the
    same whatever the model's input."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.bias = nn.Linear(2, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):   # (B, 16, 4)
        pos = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1).reshape(16, 2)
        return self.head(self.embed(x) + self.bias(pos))
