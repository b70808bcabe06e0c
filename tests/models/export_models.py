"""Small models for the ONNX export tests: each exercises one thing the exporter must get
right in the generated code (1-D memory, Conv1d fitting, pooling the features to a memory
grid that does not divide the map, several inputs and a nested output)."""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """No convolutions: a 1-D memory and feature taps only."""

    def __init__(self, in_features: int = 20, hidden: int = 32, classes: int = 5):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = self.drop(torch.relu(self.fc2(x)))
        return self.head(x)


class Conv1dNet(nn.Module):
    """A 1-D signal model (Conv1d taps, a grouped one, update blocks on 1-D maps)."""

    def __init__(self, channels: int = 2, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, 8, 5, padding=2)
        self.conv2 = nn.Conv1d(8, 8, 3, stride=2, groups=4)
        self.conv3 = nn.Conv1d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, classes)

    def forward(self, signal):
        x = torch.relu(self.conv1(signal))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.head(x.mean(-1))


class VideoNet(nn.Module):
    """A clip model (Conv3d taps, update blocks on 3-D maps: the ONNX exporter has no 3-D
    adaptive pooling, so the generated file pools in two 2-D steps)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(8)
        self.conv2 = nn.Conv3d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, classes)

    def forward(self, clip):
        x = torch.relu(self.bn1(self.conv1(clip)))
        x = torch.relu(self.conv2(x))
        return self.head(x.mean((2, 3, 4)))


class OddCNN(nn.Module):
    """Maps of 30x30, 15x15 and 7x7: pooling them to the memory grid is an adaptive pool with
    uneven windows (and an upsampling one where the map is smaller than the grid)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16, classes)

    def forward(self, image):
        x = torch.relu(self.conv1(image))
        x = torch.relu(self.conv2(self.pool(x)))
        x = torch.relu(self.conv3(self.pool(x)))
        return self.head(x.mean((2, 3)))


class TwoInputs(nn.Module):
    """Two named inputs and a dict output with a nested tuple: output names and order."""

    def __init__(self):
        super().__init__()
        self.image = nn.Conv2d(3, 8, 3, padding=1)
        self.tabular = nn.Linear(5, 8)  # not "meta": torch.onnx.export of a root module with a submodule named meta fails
        self.head = nn.Linear(16, 3)
        self.aux = nn.Linear(8, 1)

    def forward(self, img, meta):
        a = torch.relu(self.image(img)).mean((2, 3))
        b = torch.relu(self.tabular(meta))
        logits = self.head(torch.cat([a, b], 1))
        return {"logits": logits, "parts": (a, self.aux(b))}
