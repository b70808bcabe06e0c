# Plain rendering of torchvision_models.py:resnet50, traced at input (1, 3, 224, 224).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 224, 224)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'plain', 'source': 'torchvision_models.py:resnet50', 'class': 'ResNet',
    'input_shapes': ['1,3,224,224'], 'params': 23753912, 'depends': [],
}


class Bottleneck(nn.Module):
    """Bottleneck of the base model (16 instances: layer1.0, layer1.1, layer1.2, ...).
    downsample is optional (None in 12 of them)."""

    def __init__(self, inplanes, planes, stride, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """Plain rendering of ResNet."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, 1, downsample=nn.Sequential(
                nn.Conv2d(64, 256, 1, bias=False),
                nn.BatchNorm2d(256),
            )),
            Bottleneck(256, 64, 1),
            Bottleneck(256, 64, 1),
        )
        self.layer2 = nn.Sequential(
            Bottleneck(256, 128, 2, downsample=nn.Sequential(
                nn.Conv2d(256, 512, 1, stride=2, bias=False),
                nn.BatchNorm2d(512),
            )),
            *(Bottleneck(512, 128, 1) for _ in range(3)),
        )
        self.layer3 = nn.Sequential(
            Bottleneck(512, 256, 2, downsample=nn.Sequential(
                nn.Conv2d(512, 1024, 1, stride=2, bias=False),
                nn.BatchNorm2d(1024),
            )),
            *(Bottleneck(1024, 256, 1) for _ in range(5)),
        )
        self.layer4 = nn.Sequential(
            Bottleneck(1024, 512, 2, downsample=nn.Sequential(
                nn.Conv2d(1024, 2048, 1, stride=2, bias=False),
                nn.BatchNorm2d(2048),
            )),
            Bottleneck(2048, 512, 1),
            Bottleneck(2048, 512, 1),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 120)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def build_model() -> ResNet:
    return ResNet()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, 224, 224, generator=g),)
