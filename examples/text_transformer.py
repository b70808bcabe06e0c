"""A small sequence classifier on torch.nn's own transformer encoder (sequence first, torch's
default layout): the case of nn.TransformerEncoder, nn.MultiheadAttention and Linear layers on
(T, N, D) sequences."""
import torch
from torch import nn


class TextTransformer(nn.Module):
    def __init__(self, in_features: int = 16, dim: int = 32, heads: int = 4, layers: int = 2,
                 num_classes: int = 5):
        super().__init__()
        self.embed = nn.Linear(in_features, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.1)
        # (nested tensors are a batch-first fast path: off, as torch warns for sequence first)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.embed(x).transpose(0, 1)   # (N, T, D) -> (T, N, D)
        x = self.encoder(x)
        return self.head(x.mean(0))
