"""Case: a detection head as ultralytics' Detect writes it: in train() it returns the raw
predictions; in eval() it also decodes them, with a grid of anchor points it caches for the
last input shape (``if self.shape != shape:``), a fixed conv that only decoding uses and an
assignment to a slice."""
import torch
from torch import nn


class Integral(nn.Module):
    """A fixed 1x1 conv: the expected value of a distribution over `bins` positions."""

    def __init__(self, bins=4):
        super().__init__()
        self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1)
        self.bins = bins

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 2, self.bins, a).transpose(2, 1).softmax(1)).view(b, 2, a)


class Head(nn.Module):
    shape = None
    anchors = torch.empty(0)

    def __init__(self, c, classes=3, bins=4):
        super().__init__()
        self.box = nn.Conv2d(c, 2 * bins, 1)
        self.cls = nn.Conv2d(c, classes, 1)
        self.integral = Integral(bins)

    def forward(self, x):
        boxes = self.box(x).flatten(2)
        scores = self.cls(x).flatten(2)
        if self.training:
            return boxes, scores
        shape = x.shape
        if self.shape != shape:   # recomputed only for a new input shape
            h, w = shape[2:]
            ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
            self.anchors = torch.stack((xs, ys)).view(2, -1) + 0.5
            self.shape = shape
        decoded = self.anchors.unsqueeze(0) + self.integral(boxes)
        decoded[:, 1::2] = decoded[:, 1::2] * 2.0   # in place, as ultralytics' Pose decodes keypoints
        return torch.cat((decoded, scores.sigmoid()), 1), (boxes, scores)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.SiLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.SiLU())
        self.head = Head(16)

    def forward(self, x):
        return self.head(self.body(self.stem(x)))
