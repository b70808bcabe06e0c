"""A small CNN for scikit-learn's digits (1 x 8 x 8 grayscale, 10 classes).

The model of the quick ``aimgen experiment examples/digits_cnn.py --data digits`` run: small
enough that three arms x three seeds train on two CPU cores in minutes.
"""
import torch
from torch import nn


class DigitsCNN(nn.Module):
    """conv(1->16) -> pool -> conv(16->32) -> global pool -> hidden Linear -> classes."""

    def __init__(self, num_classes: int = 10, hidden: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32, hidden)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(torch.relu(self.fc1(x))))
