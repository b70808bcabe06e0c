"""Case 1, refused: the root forward computes something else in eval mode, not a part of what
train mode computes."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.conv(x)).mean((2, 3))
        if not self.training:
            return self.fc(x).softmax(1)
        return self.fc(x)
