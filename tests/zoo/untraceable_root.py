"""Case 5, refused: control flow on a tensor value in the root module's own forward."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            x = torch.relu(x)
        return self.fc(x.mean((2, 3)))
