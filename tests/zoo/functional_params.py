"""Case 3: functional layers on parameters: F.conv2d(x, self.weight, ...) and F.linear."""
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3) * 0.1)
        self.bias = nn.Parameter(torch.zeros(8))
        self.dw = nn.Parameter(torch.randn(8, 1, 3, 3) * 0.1)
        self.w_out = nn.Parameter(torch.randn(4, 8) * 0.1)

    def forward(self, x):
        x = torch.relu(F.conv2d(x, self.weight, self.bias, padding=1))
        x = F.conv2d(x, self.dw, None, 1, 1, 1, 8)
        return F.linear(x.mean((2, 3)), self.w_out)
