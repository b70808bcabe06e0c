"""Two images through one encoder, stacked on the batch axis (``torch.cat([a, b])``, as RAFT's
feature encoder runs): the encoder's rows are views of the samples, view after view."""
import torch
from torch import nn


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Linear(16, 4)

    def forward(self, a, b):
        n = a.shape[0]
        features = self.encoder(torch.cat([a, b], 0)).mean((2, 3))
        return self.head(torch.cat([features[:n], features[n:]], 1))
