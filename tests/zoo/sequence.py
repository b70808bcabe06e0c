"""Case 7: integer inputs (token ids), Linear on (N, T, D), nn.MultiheadAttention, LayerNorm."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, vocab: int = 50, d: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(1, 16, d))
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 32), nn.GELU(), nn.Linear(32, d))
        self.head = nn.Linear(d, 4)

    def forward(self, ids):
        h = self.embed(ids) + self.pos[:, : ids.shape[1]]
        a, _ = self.attn(h, h, h, need_weights=False)
        h = self.norm(h + a)
        h = h + self.ff(h)
        return self.head(h.mean(1))
