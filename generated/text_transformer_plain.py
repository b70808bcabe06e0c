# Plain rendering of text_transformer.py:TextTransformer, traced at input (1, 12, 16).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 12, 16)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'plain', 'source': 'text_transformer.py:TextTransformer',
    'class': 'TextTransformer', 'input_shapes': ['1,12,16'], 'params': 17861, 'depends': [],
}


class TransformerEncoderLayer(nn.Module):
    """TransformerEncoderLayer of the base model (2 instances: encoder.layers.0,
    encoder.layers.1)."""

    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(32, 4, dropout=0.1)
        self.linear1 = nn.Linear(32, 64)
        self.dropout = nn.Dropout(p=0.1)
        self.linear2 = nn.Linear(64, 32)
        self.norm1 = nn.LayerNorm((32,))
        self.norm2 = nn.LayerNorm((32,))
        self.dropout1 = nn.Dropout(p=0.1)
        self.dropout2 = nn.Dropout(p=0.1)

    def forward(self, x):
        self_attn = self.self_attn(x, x, x, attn_mask=None, key_padding_mask=None,
                                   need_weights=False, is_causal=False)
        x_1 = self_attn[0]
        dropout1 = self.dropout1(x_1)
        x = self.norm1(x + dropout1)
        linear1 = self.linear1(x)
        relu = F.relu(linear1)
        dropout = self.dropout(relu)
        linear2 = self.linear2(dropout)
        dropout2 = self.dropout2(linear2)
        x = self.norm2(x + dropout2)
        return x


class TransformerEncoder(nn.Module):
    """TransformerEncoder of the base model (1 instance: encoder)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                TransformerEncoderLayer(),
                TransformerEncoderLayer(),
            ],
        )
        self.norm = nn.LayerNorm(32)

    def forward(self, src):
        x = self.layers[0](src)
        x = self.layers[1](x)
        output = self.norm(x)
        return output


class TextTransformer(nn.Module):
    """Plain rendering of TextTransformer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 32)
        self.encoder = TransformerEncoder()
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = self.embed(x).transpose(0, 1)
        x = self.encoder(x)
        return self.head(x.mean(0))


def build_model() -> TextTransformer:
    return TextTransformer()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 12, 16, generator=g),)
