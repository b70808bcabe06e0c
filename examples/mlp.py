"""A small MLP (e.g. for flattened 28x28 images): the non-convolutional case, 1-D memory."""
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features: int = 784, hidden: int = 256, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden // 2)
        self.act2 = nn.ReLU()
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(hidden // 2, num_classes)

    def forward(self, x):
        x = self.act1(self.fc1(x.flatten(1)))
        x = self.drop(self.act2(self.fc2(x)))
        return self.head(x)
