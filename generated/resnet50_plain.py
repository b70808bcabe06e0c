# Plain rendering of torchvision_models.py:resnet50, traced at input (1, 3, 224, 224).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 224, 224)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {'format': 1,
 'kind': 'plain',
 'source': 'torchvision_models.py:resnet50',
 'class': 'ResNet',
 'input_shapes': ['1,3,224,224'],
 'params': 23753912,
 'depends': []}


class Group(nn.Module):
    """A plain container: holds submodules, parameters and buffers under the base model's
    names, so state_dict keys are the base model's."""

    def __init__(self, **members):
        super().__init__()
        for name, member in members.items():
            setattr(self, name, member)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(64, 64, 1, bias=False),
                bn1=nn.BatchNorm2d(64),
                conv2=nn.Conv2d(64, 64, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(64),
                conv3=nn.Conv2d(64, 256, 1, bias=False),
                bn3=nn.BatchNorm2d(256),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(64, 256, 1, bias=False),
                    nn.BatchNorm2d(256),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(256, 64, 1, bias=False),
                bn1=nn.BatchNorm2d(64),
                conv2=nn.Conv2d(64, 64, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(64),
                conv3=nn.Conv2d(64, 256, 1, bias=False),
                bn3=nn.BatchNorm2d(256),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(256, 64, 1, bias=False),
                bn1=nn.BatchNorm2d(64),
                conv2=nn.Conv2d(64, 64, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(64),
                conv3=nn.Conv2d(64, 256, 1, bias=False),
                bn3=nn.BatchNorm2d(256),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.layer2 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(256, 128, 1, bias=False),
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128, 128, 3, stride=2, padding=1, bias=False),
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128, 512, 1, bias=False),
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(256, 512, 1, stride=2, bias=False),
                    nn.BatchNorm2d(512),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(512, 128, 1, bias=False),
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128, 128, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128, 512, 1, bias=False),
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(512, 128, 1, bias=False),
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128, 128, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128, 512, 1, bias=False),
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(512, 128, 1, bias=False),
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128, 128, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128, 512, 1, bias=False),
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.layer3 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(512, 256, 1, bias=False),
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256, 256, 3, stride=2, padding=1, bias=False),
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256, 1024, 1, bias=False),
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(512, 1024, 1, stride=2, bias=False),
                    nn.BatchNorm2d(1024),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(1024, 256, 1, bias=False),
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256, 256, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256, 1024, 1, bias=False),
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024, 256, 1, bias=False),
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256, 256, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256, 1024, 1, bias=False),
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024, 256, 1, bias=False),
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256, 256, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256, 1024, 1, bias=False),
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024, 256, 1, bias=False),
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256, 256, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256, 1024, 1, bias=False),
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024, 256, 1, bias=False),
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256, 256, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256, 1024, 1, bias=False),
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.layer4 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(1024, 512, 1, bias=False),
                bn1=nn.BatchNorm2d(512),
                conv2=nn.Conv2d(512, 512, 3, stride=2, padding=1, bias=False),
                bn2=nn.BatchNorm2d(512),
                conv3=nn.Conv2d(512, 2048, 1, bias=False),
                bn3=nn.BatchNorm2d(2048),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(1024, 2048, 1, stride=2, bias=False),
                    nn.BatchNorm2d(2048),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(2048, 512, 1, bias=False),
                bn1=nn.BatchNorm2d(512),
                conv2=nn.Conv2d(512, 512, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(512),
                conv3=nn.Conv2d(512, 2048, 1, bias=False),
                bn3=nn.BatchNorm2d(2048),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(2048, 512, 1, bias=False),
                bn1=nn.BatchNorm2d(512),
                conv2=nn.Conv2d(512, 512, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(512),
                conv3=nn.Conv2d(512, 2048, 1, bias=False),
                bn3=nn.BatchNorm2d(2048),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 120)

    def forward(self, x):
        conv1 = self.conv1(x)
        bn1 = self.bn1(conv1)
        relu = self.relu(bn1)
        maxpool = self.maxpool(relu)
        layer1_0_conv1 = self.layer1[0].conv1(maxpool)
        layer1_0_bn1 = self.layer1[0].bn1(layer1_0_conv1)
        layer1_0_relu = self.layer1[0].relu(layer1_0_bn1)
        layer1_0_conv2 = self.layer1[0].conv2(layer1_0_relu)
        layer1_0_bn2 = self.layer1[0].bn2(layer1_0_conv2)
        layer1_0_relu_1 = self.layer1[0].relu(layer1_0_bn2)
        layer1_0_conv3 = self.layer1[0].conv3(layer1_0_relu_1)
        layer1_0_bn3 = self.layer1[0].bn3(layer1_0_conv3)
        layer1_0_downsample_0 = self.layer1[0].downsample[0](maxpool)
        layer1_0_downsample_1 = self.layer1[0].downsample[1](layer1_0_downsample_0)
        add = layer1_0_bn3 + layer1_0_downsample_1
        layer1_0_relu_2 = self.layer1[0].relu(add)
        layer1_1_conv1 = self.layer1[1].conv1(layer1_0_relu_2)
        layer1_1_bn1 = self.layer1[1].bn1(layer1_1_conv1)
        layer1_1_relu = self.layer1[1].relu(layer1_1_bn1)
        layer1_1_conv2 = self.layer1[1].conv2(layer1_1_relu)
        layer1_1_bn2 = self.layer1[1].bn2(layer1_1_conv2)
        layer1_1_relu_1 = self.layer1[1].relu(layer1_1_bn2)
        layer1_1_conv3 = self.layer1[1].conv3(layer1_1_relu_1)
        layer1_1_bn3 = self.layer1[1].bn3(layer1_1_conv3)
        add_1 = layer1_1_bn3 + layer1_0_relu_2
        layer1_1_relu_2 = self.layer1[1].relu(add_1)
        layer1_2_conv1 = self.layer1[2].conv1(layer1_1_relu_2)
        layer1_2_bn1 = self.layer1[2].bn1(layer1_2_conv1)
        layer1_2_relu = self.layer1[2].relu(layer1_2_bn1)
        layer1_2_conv2 = self.layer1[2].conv2(layer1_2_relu)
        layer1_2_bn2 = self.layer1[2].bn2(layer1_2_conv2)
        layer1_2_relu_1 = self.layer1[2].relu(layer1_2_bn2)
        layer1_2_conv3 = self.layer1[2].conv3(layer1_2_relu_1)
        layer1_2_bn3 = self.layer1[2].bn3(layer1_2_conv3)
        add_2 = layer1_2_bn3 + layer1_1_relu_2
        layer1_2_relu_2 = self.layer1[2].relu(add_2)
        layer2_0_conv1 = self.layer2[0].conv1(layer1_2_relu_2)
        layer2_0_bn1 = self.layer2[0].bn1(layer2_0_conv1)
        layer2_0_relu = self.layer2[0].relu(layer2_0_bn1)
        layer2_0_conv2 = self.layer2[0].conv2(layer2_0_relu)
        layer2_0_bn2 = self.layer2[0].bn2(layer2_0_conv2)
        layer2_0_relu_1 = self.layer2[0].relu(layer2_0_bn2)
        layer2_0_conv3 = self.layer2[0].conv3(layer2_0_relu_1)
        layer2_0_bn3 = self.layer2[0].bn3(layer2_0_conv3)
        layer2_0_downsample_0 = self.layer2[0].downsample[0](layer1_2_relu_2)
        layer2_0_downsample_1 = self.layer2[0].downsample[1](layer2_0_downsample_0)
        add_3 = layer2_0_bn3 + layer2_0_downsample_1
        layer2_0_relu_2 = self.layer2[0].relu(add_3)
        layer2_1_conv1 = self.layer2[1].conv1(layer2_0_relu_2)
        layer2_1_bn1 = self.layer2[1].bn1(layer2_1_conv1)
        layer2_1_relu = self.layer2[1].relu(layer2_1_bn1)
        layer2_1_conv2 = self.layer2[1].conv2(layer2_1_relu)
        layer2_1_bn2 = self.layer2[1].bn2(layer2_1_conv2)
        layer2_1_relu_1 = self.layer2[1].relu(layer2_1_bn2)
        layer2_1_conv3 = self.layer2[1].conv3(layer2_1_relu_1)
        layer2_1_bn3 = self.layer2[1].bn3(layer2_1_conv3)
        add_4 = layer2_1_bn3 + layer2_0_relu_2
        layer2_1_relu_2 = self.layer2[1].relu(add_4)
        layer2_2_conv1 = self.layer2[2].conv1(layer2_1_relu_2)
        layer2_2_bn1 = self.layer2[2].bn1(layer2_2_conv1)
        layer2_2_relu = self.layer2[2].relu(layer2_2_bn1)
        layer2_2_conv2 = self.layer2[2].conv2(layer2_2_relu)
        layer2_2_bn2 = self.layer2[2].bn2(layer2_2_conv2)
        layer2_2_relu_1 = self.layer2[2].relu(layer2_2_bn2)
        layer2_2_conv3 = self.layer2[2].conv3(layer2_2_relu_1)
        layer2_2_bn3 = self.layer2[2].bn3(layer2_2_conv3)
        add_5 = layer2_2_bn3 + layer2_1_relu_2
        layer2_2_relu_2 = self.layer2[2].relu(add_5)
        layer2_3_conv1 = self.layer2[3].conv1(layer2_2_relu_2)
        layer2_3_bn1 = self.layer2[3].bn1(layer2_3_conv1)
        layer2_3_relu = self.layer2[3].relu(layer2_3_bn1)
        layer2_3_conv2 = self.layer2[3].conv2(layer2_3_relu)
        layer2_3_bn2 = self.layer2[3].bn2(layer2_3_conv2)
        layer2_3_relu_1 = self.layer2[3].relu(layer2_3_bn2)
        layer2_3_conv3 = self.layer2[3].conv3(layer2_3_relu_1)
        layer2_3_bn3 = self.layer2[3].bn3(layer2_3_conv3)
        add_6 = layer2_3_bn3 + layer2_2_relu_2
        layer2_3_relu_2 = self.layer2[3].relu(add_6)
        layer3_0_conv1 = self.layer3[0].conv1(layer2_3_relu_2)
        layer3_0_bn1 = self.layer3[0].bn1(layer3_0_conv1)
        layer3_0_relu = self.layer3[0].relu(layer3_0_bn1)
        layer3_0_conv2 = self.layer3[0].conv2(layer3_0_relu)
        layer3_0_bn2 = self.layer3[0].bn2(layer3_0_conv2)
        layer3_0_relu_1 = self.layer3[0].relu(layer3_0_bn2)
        layer3_0_conv3 = self.layer3[0].conv3(layer3_0_relu_1)
        layer3_0_bn3 = self.layer3[0].bn3(layer3_0_conv3)
        layer3_0_downsample_0 = self.layer3[0].downsample[0](layer2_3_relu_2)
        layer3_0_downsample_1 = self.layer3[0].downsample[1](layer3_0_downsample_0)
        add_7 = layer3_0_bn3 + layer3_0_downsample_1
        layer3_0_relu_2 = self.layer3[0].relu(add_7)
        layer3_1_conv1 = self.layer3[1].conv1(layer3_0_relu_2)
        layer3_1_bn1 = self.layer3[1].bn1(layer3_1_conv1)
        layer3_1_relu = self.layer3[1].relu(layer3_1_bn1)
        layer3_1_conv2 = self.layer3[1].conv2(layer3_1_relu)
        layer3_1_bn2 = self.layer3[1].bn2(layer3_1_conv2)
        layer3_1_relu_1 = self.layer3[1].relu(layer3_1_bn2)
        layer3_1_conv3 = self.layer3[1].conv3(layer3_1_relu_1)
        layer3_1_bn3 = self.layer3[1].bn3(layer3_1_conv3)
        add_8 = layer3_1_bn3 + layer3_0_relu_2
        layer3_1_relu_2 = self.layer3[1].relu(add_8)
        layer3_2_conv1 = self.layer3[2].conv1(layer3_1_relu_2)
        layer3_2_bn1 = self.layer3[2].bn1(layer3_2_conv1)
        layer3_2_relu = self.layer3[2].relu(layer3_2_bn1)
        layer3_2_conv2 = self.layer3[2].conv2(layer3_2_relu)
        layer3_2_bn2 = self.layer3[2].bn2(layer3_2_conv2)
        layer3_2_relu_1 = self.layer3[2].relu(layer3_2_bn2)
        layer3_2_conv3 = self.layer3[2].conv3(layer3_2_relu_1)
        layer3_2_bn3 = self.layer3[2].bn3(layer3_2_conv3)
        add_9 = layer3_2_bn3 + layer3_1_relu_2
        layer3_2_relu_2 = self.layer3[2].relu(add_9)
        layer3_3_conv1 = self.layer3[3].conv1(layer3_2_relu_2)
        layer3_3_bn1 = self.layer3[3].bn1(layer3_3_conv1)
        layer3_3_relu = self.layer3[3].relu(layer3_3_bn1)
        layer3_3_conv2 = self.layer3[3].conv2(layer3_3_relu)
        layer3_3_bn2 = self.layer3[3].bn2(layer3_3_conv2)
        layer3_3_relu_1 = self.layer3[3].relu(layer3_3_bn2)
        layer3_3_conv3 = self.layer3[3].conv3(layer3_3_relu_1)
        layer3_3_bn3 = self.layer3[3].bn3(layer3_3_conv3)
        add_10 = layer3_3_bn3 + layer3_2_relu_2
        layer3_3_relu_2 = self.layer3[3].relu(add_10)
        layer3_4_conv1 = self.layer3[4].conv1(layer3_3_relu_2)
        layer3_4_bn1 = self.layer3[4].bn1(layer3_4_conv1)
        layer3_4_relu = self.layer3[4].relu(layer3_4_bn1)
        layer3_4_conv2 = self.layer3[4].conv2(layer3_4_relu)
        layer3_4_bn2 = self.layer3[4].bn2(layer3_4_conv2)
        layer3_4_relu_1 = self.layer3[4].relu(layer3_4_bn2)
        layer3_4_conv3 = self.layer3[4].conv3(layer3_4_relu_1)
        layer3_4_bn3 = self.layer3[4].bn3(layer3_4_conv3)
        add_11 = layer3_4_bn3 + layer3_3_relu_2
        layer3_4_relu_2 = self.layer3[4].relu(add_11)
        layer3_5_conv1 = self.layer3[5].conv1(layer3_4_relu_2)
        layer3_5_bn1 = self.layer3[5].bn1(layer3_5_conv1)
        layer3_5_relu = self.layer3[5].relu(layer3_5_bn1)
        layer3_5_conv2 = self.layer3[5].conv2(layer3_5_relu)
        layer3_5_bn2 = self.layer3[5].bn2(layer3_5_conv2)
        layer3_5_relu_1 = self.layer3[5].relu(layer3_5_bn2)
        layer3_5_conv3 = self.layer3[5].conv3(layer3_5_relu_1)
        layer3_5_bn3 = self.layer3[5].bn3(layer3_5_conv3)
        add_12 = layer3_5_bn3 + layer3_4_relu_2
        layer3_5_relu_2 = self.layer3[5].relu(add_12)
        layer4_0_conv1 = self.layer4[0].conv1(layer3_5_relu_2)
        layer4_0_bn1 = self.layer4[0].bn1(layer4_0_conv1)
        layer4_0_relu = self.layer4[0].relu(layer4_0_bn1)
        layer4_0_conv2 = self.layer4[0].conv2(layer4_0_relu)
        layer4_0_bn2 = self.layer4[0].bn2(layer4_0_conv2)
        layer4_0_relu_1 = self.layer4[0].relu(layer4_0_bn2)
        layer4_0_conv3 = self.layer4[0].conv3(layer4_0_relu_1)
        layer4_0_bn3 = self.layer4[0].bn3(layer4_0_conv3)
        layer4_0_downsample_0 = self.layer4[0].downsample[0](layer3_5_relu_2)
        layer4_0_downsample_1 = self.layer4[0].downsample[1](layer4_0_downsample_0)
        add_13 = layer4_0_bn3 + layer4_0_downsample_1
        layer4_0_relu_2 = self.layer4[0].relu(add_13)
        layer4_1_conv1 = self.layer4[1].conv1(layer4_0_relu_2)
        layer4_1_bn1 = self.layer4[1].bn1(layer4_1_conv1)
        layer4_1_relu = self.layer4[1].relu(layer4_1_bn1)
        layer4_1_conv2 = self.layer4[1].conv2(layer4_1_relu)
        layer4_1_bn2 = self.layer4[1].bn2(layer4_1_conv2)
        layer4_1_relu_1 = self.layer4[1].relu(layer4_1_bn2)
        layer4_1_conv3 = self.layer4[1].conv3(layer4_1_relu_1)
        layer4_1_bn3 = self.layer4[1].bn3(layer4_1_conv3)
        add_14 = layer4_1_bn3 + layer4_0_relu_2
        layer4_1_relu_2 = self.layer4[1].relu(add_14)
        layer4_2_conv1 = self.layer4[2].conv1(layer4_1_relu_2)
        layer4_2_bn1 = self.layer4[2].bn1(layer4_2_conv1)
        layer4_2_relu = self.layer4[2].relu(layer4_2_bn1)
        layer4_2_conv2 = self.layer4[2].conv2(layer4_2_relu)
        layer4_2_bn2 = self.layer4[2].bn2(layer4_2_conv2)
        layer4_2_relu_1 = self.layer4[2].relu(layer4_2_bn2)
        layer4_2_conv3 = self.layer4[2].conv3(layer4_2_relu_1)
        layer4_2_bn3 = self.layer4[2].bn3(layer4_2_conv3)
        add_15 = layer4_2_bn3 + layer4_1_relu_2
        layer4_2_relu_2 = self.layer4[2].relu(add_15)
        avgpool = self.avgpool(layer4_2_relu_2)
        flatten = torch.flatten(avgpool, 1)
        fc = self.fc(flatten)
        return fc


def build_model() -> ResNet:
    return ResNet()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 3, 224, 224, generator=g),
    )
