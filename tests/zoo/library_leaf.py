"""Case 4: a leaf module from an installed library (torchvision's StochasticDepth, listed with
--leaf): the output imports torchvision and says so."""
import torch
from torch import nn
from torchvision.ops import StochasticDepth


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.sd = StochasticDepth(0.2, "batch")
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc((x + self.sd(x)).mean((2, 3)))
