"""Case 7: Conv1d, Conv3d and ConvTranspose2d models."""
import torch
from torch import nn


class Net1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 8, 3, stride=2, groups=4),
                                  nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


class Net3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
                                  nn.Conv3d(4, 4, 3, padding=1, groups=4), nn.ReLU())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3, 4)))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 4, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.up_g = nn.ConvTranspose2d(4, 4, 3, padding=1, groups=2)
        self.out = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.out(torch.relu(self.up_g(torch.relu(self.up(torch.relu(self.down(x)))))))
