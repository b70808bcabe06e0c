"""Case 7: several inputs, a dict output with a nested tuple."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Conv2d(3, 8, 3, padding=1)
        self.meta = nn.Linear(5, 8)
        self.head = nn.Linear(16, 3)
        self.aux = nn.Linear(8, 1)

    def forward(self, img, meta):
        a = torch.relu(self.image(img)).mean((2, 3))
        b = torch.relu(self.meta(meta))
        logits = self.head(torch.cat([a, b], 1))
        return {"logits": logits, "parts": (a, self.aux(b))}
