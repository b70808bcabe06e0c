"""Issue 15: raw nn.Parameters drawn at random in __init__ (a class token, position embeddings,
a layer scale): the output must not depend on the draw."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, dim=16, tokens=4):
        super().__init__()
        self.proj = nn.Linear(8, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.gamma = nn.Parameter(1e-4 * torch.ones(dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.proj(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(x[:, 0] * self.gamma)
