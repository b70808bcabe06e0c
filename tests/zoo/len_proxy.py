"""Case 5: len() of a traced tensor inside a submodule: kept whole as a leaf."""
import torch
from torch import nn


class SeqPool(nn.Module):
    def forward(self, x):
        total = x[0]
        for i in range(1, len(x)):
            total = total + x[i]
        return total / len(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.pool = SeqPool()
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.fc1(x))           # (N, T, 8)
        h = self.pool(h.transpose(0, 1))      # sums over T with len()
        return self.fc2(h)
