"""torch.nn's own transformer: nn.TransformerEncoder copies the layer it is given (the layer is
an argument, not a submodule), seq-first by default, as most hand-written models use it."""
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, batch_first: bool = False):
        super().__init__()
        self.embed = nn.Linear(16, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(32))
        self.head = nn.Linear(32, 5)
        self.batch_first = batch_first

    def forward(self, x):
        x = self.embed(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        x = self.encoder(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        return self.head(x.mean(1))


class BatchFirst(Encoder):
    def __init__(self):
        super().__init__(batch_first=True)


class Seq2Seq(nn.Module):
    """nn.Transformer (encoder and decoder), two inputs, norm_first layers, GELU."""

    def __init__(self):
        super().__init__()
        self.src, self.tgt = nn.Linear(16, 32), nn.Linear(8, 32)
        self.transformer = nn.Transformer(32, 4, 1, 2, 64, activation="gelu", batch_first=True, norm_first=True)
        self.head = nn.Linear(32, 8)

    def forward(self, src, tgt):
        return self.head(self.transformer(self.src(src), self.tgt(tgt)))
