"""Issue 15: a submodule that branches on a tensor value. aimgen keeps it whole (torch.fx cannot
trace it) and the AiM model works in PyTorch; no ONNX export of the base model exists either."""
import torch
from torch import nn


class SignGate(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            return x * 2
        return x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = SignGate()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.gate(torch.relu(self.conv(x))).mean((2, 3)))
