# AiM version of torchvision_models.py:resnet50, traced at input (1, 3, 224, 224).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1 budget=auto
# memory: (1024, 7, 7) = 50,176 floats; taps: 54 of 54 weight layers; update blocks: 5; carry rate 0.1
# parameters: base 23,753,912 | aim 24,034,200 | delta +280,288 (memory 50,176, taps 65,720, updates 164,392)
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 224, 224)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {'format': 1,
 'kind': 'aim',
 'source': 'torchvision_models.py:resnet50',
 'class': 'AimResNet',
 'input_shapes': ['1,3,224,224'],
 'memory_shape': [1024, 7, 7],
 'memory': 'memory',
 'base_params': 23753912,
 'aim_params': 24034200,
 'delta': {'memory': 50176, 'taps': 65720, 'updates': 164392},
 'update_blocks': 5,
 'depends': []}


def fit_memory(memory: torch.Tensor, channels: int, size: tuple[int, ...]) -> torch.Tensor:
    """(N, ...) memory -> (N, channels, *size): flatten, zero-pad to whole folds of
    channels x size, and add the folds up, so a small map still sees all of the memory.
    Branch-free: the same code is right at every input size and in ONNX."""
    n = memory.shape[0]
    per_fold = channels * math.prod(size)
    flat = memory.reshape(n, -1)
    folds = -(-flat.shape[1] // per_fold)
    flat = F.pad(flat, (0, folds * per_fold - flat.shape[1]))
    return flat.reshape(n, folds, channels, *size).sum(1)


def fit_features(memory: torch.Tensor, features: int, x: torch.Tensor) -> torch.Tensor:
    """(N, ...) memory -> `features` values on the last axis of x, broadcast over the
    middle axes of an (N, ..., D) input."""
    m = fit_memory(memory, features, ())
    return m.reshape(m.shape[0], *([1] * (x.dim() - 2)), features).expand(*x.shape[:-1], features)


class Memory(nn.Module):
    """The learned memory (seed) plus what training carried over from earlier batches."""

    def __init__(self, shape: tuple[int, ...], carry_rate: float):
        super().__init__()
        self.seed = nn.Parameter(torch.randn(shape) * 0.02)
        self.register_buffer("carry", torch.zeros(shape))
        self.carry_rate = carry_rate

    def read(self) -> torch.Tensor:
        return self.seed + self.carry

    @torch.no_grad()
    def write(self, memory: torch.Tensor) -> None:
        """After a training forward, move the carry toward the final memory (a batch mean).
        Frozen in eval(); averaged over ranks under torch.distributed."""
        if not self.training or self.carry_rate == 0:
            return
        target = memory.detach() - self.seed
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(target)
            target /= torch.distributed.get_world_size()
        self.carry.lerp_(target, self.carry_rate)

    @torch.no_grad()
    def reset(self) -> None:
        self.carry.zero_()


class MemoryUpdate(nn.Module):
    """Rewrite the memory from features pooled to its grid: mix both through a rank-r
    bottleneck (1x1, channels last), then a gated, bounded write."""

    def __init__(self, features: int, memory_channels: int, rank: int):
        super().__init__()
        self.from_features = nn.Linear(features, rank)
        self.from_memory = nn.Linear(memory_channels, rank, bias=False)
        self.to_memory = nn.Linear(rank, 2 * memory_channels)

    def forward(self, memory: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = memory.movedim(1, -1)
        z = torch.relu(self.from_features(features.movedim(1, -1)) + self.from_memory(m))
        gate, candidate = self.to_memory(z).chunk(2, dim=-1)
        gate = torch.sigmoid(gate)
        return ((1 - gate) * m + gate * torch.tanh(candidate)).movedim(-1, 1)


class Group(nn.Module):
    """A plain container: holds submodules, parameters and buffers under the base model's
    names, so state_dict keys are the base model's."""

    def __init__(self, **members):
        super().__init__()
        for name, member in members.items():
            setattr(self, name, member)


class AimResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.memory = Memory((1024, 7, 7), carry_rate=0.1)  # 50,176 floats, carried from batch to batch
        self.conv1 = nn.Conv2d(3 + 1, 64, 7, stride=2, padding=3, bias=False)  # + memory: 1 channel at 224x224
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(64 + 1, 64, 1, bias=False),  # + memory: 1 channel at 56x56
                bn1=nn.BatchNorm2d(64),
                conv2=nn.Conv2d(64 + 1, 64, 3, padding=1, bias=False),  # + memory: 1 channel at 56x56
                bn2=nn.BatchNorm2d(64),
                conv3=nn.Conv2d(64 + 1, 256, 1, bias=False),  # + memory: 1 channel at 56x56
                bn3=nn.BatchNorm2d(256),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(64 + 1, 256, 1, bias=False),  # + memory: 1 channel at 56x56
                    nn.BatchNorm2d(256),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(256 + 1, 64, 1, bias=False),  # + memory: 1 channel at 56x56
                bn1=nn.BatchNorm2d(64),
                conv2=nn.Conv2d(64 + 1, 64, 3, padding=1, bias=False),  # + memory: 1 channel at 56x56
                bn2=nn.BatchNorm2d(64),
                conv3=nn.Conv2d(64 + 1, 256, 1, bias=False),  # + memory: 1 channel at 56x56
                bn3=nn.BatchNorm2d(256),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(256 + 1, 64, 1, bias=False),  # + memory: 1 channel at 56x56
                bn1=nn.BatchNorm2d(64),
                conv2=nn.Conv2d(64 + 1, 64, 3, padding=1, bias=False),  # + memory: 1 channel at 56x56
                bn2=nn.BatchNorm2d(64),
                conv3=nn.Conv2d(64 + 1, 256, 1, bias=False),  # + memory: 1 channel at 56x56
                bn3=nn.BatchNorm2d(256),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.layer2 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(256 + 1, 128, 1, bias=False),  # + memory: 1 channel at 56x56
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128 + 1, 128, 3, stride=2, padding=1, bias=False),  # + memory: 1 channel at 56x56
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128 + 1, 512, 1, bias=False),  # + memory: 1 channel at 28x28
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(256 + 1, 512, 1, stride=2, bias=False),  # + memory: 1 channel at 56x56
                    nn.BatchNorm2d(512),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(512 + 1, 128, 1, bias=False),  # + memory: 1 channel at 28x28
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128 + 1, 128, 3, padding=1, bias=False),  # + memory: 1 channel at 28x28
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128 + 1, 512, 1, bias=False),  # + memory: 1 channel at 28x28
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(512 + 1, 128, 1, bias=False),  # + memory: 1 channel at 28x28
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128 + 1, 128, 3, padding=1, bias=False),  # + memory: 1 channel at 28x28
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128 + 1, 512, 1, bias=False),  # + memory: 1 channel at 28x28
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(512 + 1, 128, 1, bias=False),  # + memory: 1 channel at 28x28
                bn1=nn.BatchNorm2d(128),
                conv2=nn.Conv2d(128 + 1, 128, 3, padding=1, bias=False),  # + memory: 1 channel at 28x28
                bn2=nn.BatchNorm2d(128),
                conv3=nn.Conv2d(128 + 1, 512, 1, bias=False),  # + memory: 1 channel at 28x28
                bn3=nn.BatchNorm2d(512),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.layer3 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(512 + 1, 256, 1, bias=False),  # + memory: 1 channel at 28x28
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256 + 1, 256, 3, stride=2, padding=1, bias=False),  # + memory: 1 channel at 28x28
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256 + 1, 1024, 1, bias=False),  # + memory: 1 channel at 14x14
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(512 + 1, 1024, 1, stride=2, bias=False),  # + memory: 1 channel at 28x28
                    nn.BatchNorm2d(1024),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(1024 + 1, 256, 1, bias=False),  # + memory: 1 channel at 14x14
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256 + 1, 256, 3, padding=1, bias=False),  # + memory: 1 channel at 14x14
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256 + 1, 1024, 1, bias=False),  # + memory: 1 channel at 14x14
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024 + 1, 256, 1, bias=False),  # + memory: 1 channel at 14x14
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256 + 1, 256, 3, padding=1, bias=False),  # + memory: 1 channel at 14x14
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256 + 1, 1024, 1, bias=False),  # + memory: 1 channel at 14x14
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024 + 1, 256, 1, bias=False),  # + memory: 1 channel at 14x14
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256 + 1, 256, 3, padding=1, bias=False),  # + memory: 1 channel at 14x14
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256 + 1, 1024, 1, bias=False),  # + memory: 1 channel at 14x14
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024 + 1, 256, 1, bias=False),  # + memory: 1 channel at 14x14
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256 + 1, 256, 3, padding=1, bias=False),  # + memory: 1 channel at 14x14
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256 + 1, 1024, 1, bias=False),  # + memory: 1 channel at 14x14
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(1024 + 1, 256, 1, bias=False),  # + memory: 1 channel at 14x14
                bn1=nn.BatchNorm2d(256),
                conv2=nn.Conv2d(256 + 1, 256, 3, padding=1, bias=False),  # + memory: 1 channel at 14x14
                bn2=nn.BatchNorm2d(256),
                conv3=nn.Conv2d(256 + 1, 1024, 1, bias=False),  # + memory: 1 channel at 14x14
                bn3=nn.BatchNorm2d(1024),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.layer4 = nn.ModuleList([
            Group(
                conv1=nn.Conv2d(1024 + 1, 512, 1, bias=False),  # + memory: 1 channel at 14x14
                bn1=nn.BatchNorm2d(512),
                conv2=nn.Conv2d(512 + 1, 512, 3, stride=2, padding=1, bias=False),  # + memory: 1 channel at 14x14
                bn2=nn.BatchNorm2d(512),
                conv3=nn.Conv2d(512 + 1, 2048, 1, bias=False),  # + memory: 1 channel at 7x7
                bn3=nn.BatchNorm2d(2048),
                relu=nn.ReLU(inplace=True),
                downsample=nn.ModuleList([
                    nn.Conv2d(1024 + 1, 2048, 1, stride=2, bias=False),  # + memory: 1 channel at 14x14
                    nn.BatchNorm2d(2048),
                ]),
            ),
            Group(
                conv1=nn.Conv2d(2048 + 1, 512, 1, bias=False),  # + memory: 1 channel at 7x7
                bn1=nn.BatchNorm2d(512),
                conv2=nn.Conv2d(512 + 1, 512, 3, padding=1, bias=False),  # + memory: 1 channel at 7x7
                bn2=nn.BatchNorm2d(512),
                conv3=nn.Conv2d(512 + 1, 2048, 1, bias=False),  # + memory: 1 channel at 7x7
                bn3=nn.BatchNorm2d(2048),
                relu=nn.ReLU(inplace=True),
            ),
            Group(
                conv1=nn.Conv2d(2048 + 1, 512, 1, bias=False),  # + memory: 1 channel at 7x7
                bn1=nn.BatchNorm2d(512),
                conv2=nn.Conv2d(512 + 1, 512, 3, padding=1, bias=False),  # + memory: 1 channel at 7x7
                bn2=nn.BatchNorm2d(512),
                conv3=nn.Conv2d(512 + 1, 2048, 1, bias=False),  # + memory: 1 channel at 7x7
                bn3=nn.BatchNorm2d(2048),
                relu=nn.ReLU(inplace=True),
            ),
        ])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048 + 49, 120)  # + memory: 49 features
        self.update_relu = MemoryUpdate(64, 1024, rank=8)  # update block after relu: +27,144 params
        self.update_layer1_2_relu = MemoryUpdate(256, 1024, rank=8)  # update block after layer1.2.relu: +28,680 params
        self.update_layer2_3_relu = MemoryUpdate(512, 1024, rank=8)  # update block after layer2.3.relu: +30,728 params
        self.update_layer3_5_relu = MemoryUpdate(1024, 1024, rank=8)  # update block after layer3.5.relu: +34,824 params
        self.update_layer4_2_relu = MemoryUpdate(2048, 1024, rank=8)  # update block after layer4.2.relu: +43,016 params

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = memory.expand(x.shape[0], *memory.shape)
        conv1 = self.conv1(torch.cat([x, fit_memory(memory, 1, x.shape[2:])], 1))  # + memory: 1 channel at 224x224
        bn1 = self.bn1(conv1)
        relu = self.relu(bn1)
        memory = self.update_relu(memory, F.adaptive_avg_pool2d(relu, (7, 7)))  # update block: memory rewritten from relu (64 x 112x112)
        maxpool = self.maxpool(relu)
        layer1_0_conv1 = self.layer1[0].conv1(torch.cat([maxpool, fit_memory(memory, 1, maxpool.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_0_bn1 = self.layer1[0].bn1(layer1_0_conv1)
        layer1_0_relu = self.layer1[0].relu(layer1_0_bn1)
        layer1_0_conv2 = self.layer1[0].conv2(torch.cat([layer1_0_relu, fit_memory(memory, 1, layer1_0_relu.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_0_bn2 = self.layer1[0].bn2(layer1_0_conv2)
        layer1_0_relu_1 = self.layer1[0].relu(layer1_0_bn2)
        layer1_0_conv3 = self.layer1[0].conv3(torch.cat([layer1_0_relu_1, fit_memory(memory, 1, layer1_0_relu_1.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_0_bn3 = self.layer1[0].bn3(layer1_0_conv3)
        layer1_0_downsample_0 = self.layer1[0].downsample[0](torch.cat([maxpool, fit_memory(memory, 1, maxpool.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_0_downsample_1 = self.layer1[0].downsample[1](layer1_0_downsample_0)
        add = layer1_0_bn3 + layer1_0_downsample_1
        layer1_0_relu_2 = self.layer1[0].relu(add)
        layer1_1_conv1 = self.layer1[1].conv1(torch.cat([layer1_0_relu_2, fit_memory(memory, 1, layer1_0_relu_2.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_1_bn1 = self.layer1[1].bn1(layer1_1_conv1)
        layer1_1_relu = self.layer1[1].relu(layer1_1_bn1)
        layer1_1_conv2 = self.layer1[1].conv2(torch.cat([layer1_1_relu, fit_memory(memory, 1, layer1_1_relu.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_1_bn2 = self.layer1[1].bn2(layer1_1_conv2)
        layer1_1_relu_1 = self.layer1[1].relu(layer1_1_bn2)
        layer1_1_conv3 = self.layer1[1].conv3(torch.cat([layer1_1_relu_1, fit_memory(memory, 1, layer1_1_relu_1.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_1_bn3 = self.layer1[1].bn3(layer1_1_conv3)
        add_1 = layer1_1_bn3 + layer1_0_relu_2
        layer1_1_relu_2 = self.layer1[1].relu(add_1)
        layer1_2_conv1 = self.layer1[2].conv1(torch.cat([layer1_1_relu_2, fit_memory(memory, 1, layer1_1_relu_2.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_2_bn1 = self.layer1[2].bn1(layer1_2_conv1)
        layer1_2_relu = self.layer1[2].relu(layer1_2_bn1)
        layer1_2_conv2 = self.layer1[2].conv2(torch.cat([layer1_2_relu, fit_memory(memory, 1, layer1_2_relu.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_2_bn2 = self.layer1[2].bn2(layer1_2_conv2)
        layer1_2_relu_1 = self.layer1[2].relu(layer1_2_bn2)
        layer1_2_conv3 = self.layer1[2].conv3(torch.cat([layer1_2_relu_1, fit_memory(memory, 1, layer1_2_relu_1.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer1_2_bn3 = self.layer1[2].bn3(layer1_2_conv3)
        add_2 = layer1_2_bn3 + layer1_1_relu_2
        layer1_2_relu_2 = self.layer1[2].relu(add_2)
        memory = self.update_layer1_2_relu(memory, F.adaptive_avg_pool2d(layer1_2_relu_2, (7, 7)))  # update block: memory rewritten from layer1.2.relu (256 x 56x56)
        layer2_0_conv1 = self.layer2[0].conv1(torch.cat([layer1_2_relu_2, fit_memory(memory, 1, layer1_2_relu_2.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer2_0_bn1 = self.layer2[0].bn1(layer2_0_conv1)
        layer2_0_relu = self.layer2[0].relu(layer2_0_bn1)
        layer2_0_conv2 = self.layer2[0].conv2(torch.cat([layer2_0_relu, fit_memory(memory, 1, layer2_0_relu.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer2_0_bn2 = self.layer2[0].bn2(layer2_0_conv2)
        layer2_0_relu_1 = self.layer2[0].relu(layer2_0_bn2)
        layer2_0_conv3 = self.layer2[0].conv3(torch.cat([layer2_0_relu_1, fit_memory(memory, 1, layer2_0_relu_1.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_0_bn3 = self.layer2[0].bn3(layer2_0_conv3)
        layer2_0_downsample_0 = self.layer2[0].downsample[0](torch.cat([layer1_2_relu_2, fit_memory(memory, 1, layer1_2_relu_2.shape[2:])], 1))  # + memory: 1 channel at 56x56
        layer2_0_downsample_1 = self.layer2[0].downsample[1](layer2_0_downsample_0)
        add_3 = layer2_0_bn3 + layer2_0_downsample_1
        layer2_0_relu_2 = self.layer2[0].relu(add_3)
        layer2_1_conv1 = self.layer2[1].conv1(torch.cat([layer2_0_relu_2, fit_memory(memory, 1, layer2_0_relu_2.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_1_bn1 = self.layer2[1].bn1(layer2_1_conv1)
        layer2_1_relu = self.layer2[1].relu(layer2_1_bn1)
        layer2_1_conv2 = self.layer2[1].conv2(torch.cat([layer2_1_relu, fit_memory(memory, 1, layer2_1_relu.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_1_bn2 = self.layer2[1].bn2(layer2_1_conv2)
        layer2_1_relu_1 = self.layer2[1].relu(layer2_1_bn2)
        layer2_1_conv3 = self.layer2[1].conv3(torch.cat([layer2_1_relu_1, fit_memory(memory, 1, layer2_1_relu_1.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_1_bn3 = self.layer2[1].bn3(layer2_1_conv3)
        add_4 = layer2_1_bn3 + layer2_0_relu_2
        layer2_1_relu_2 = self.layer2[1].relu(add_4)
        layer2_2_conv1 = self.layer2[2].conv1(torch.cat([layer2_1_relu_2, fit_memory(memory, 1, layer2_1_relu_2.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_2_bn1 = self.layer2[2].bn1(layer2_2_conv1)
        layer2_2_relu = self.layer2[2].relu(layer2_2_bn1)
        layer2_2_conv2 = self.layer2[2].conv2(torch.cat([layer2_2_relu, fit_memory(memory, 1, layer2_2_relu.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_2_bn2 = self.layer2[2].bn2(layer2_2_conv2)
        layer2_2_relu_1 = self.layer2[2].relu(layer2_2_bn2)
        layer2_2_conv3 = self.layer2[2].conv3(torch.cat([layer2_2_relu_1, fit_memory(memory, 1, layer2_2_relu_1.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_2_bn3 = self.layer2[2].bn3(layer2_2_conv3)
        add_5 = layer2_2_bn3 + layer2_1_relu_2
        layer2_2_relu_2 = self.layer2[2].relu(add_5)
        layer2_3_conv1 = self.layer2[3].conv1(torch.cat([layer2_2_relu_2, fit_memory(memory, 1, layer2_2_relu_2.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_3_bn1 = self.layer2[3].bn1(layer2_3_conv1)
        layer2_3_relu = self.layer2[3].relu(layer2_3_bn1)
        layer2_3_conv2 = self.layer2[3].conv2(torch.cat([layer2_3_relu, fit_memory(memory, 1, layer2_3_relu.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_3_bn2 = self.layer2[3].bn2(layer2_3_conv2)
        layer2_3_relu_1 = self.layer2[3].relu(layer2_3_bn2)
        layer2_3_conv3 = self.layer2[3].conv3(torch.cat([layer2_3_relu_1, fit_memory(memory, 1, layer2_3_relu_1.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer2_3_bn3 = self.layer2[3].bn3(layer2_3_conv3)
        add_6 = layer2_3_bn3 + layer2_2_relu_2
        layer2_3_relu_2 = self.layer2[3].relu(add_6)
        memory = self.update_layer2_3_relu(memory, F.adaptive_avg_pool2d(layer2_3_relu_2, (7, 7)))  # update block: memory rewritten from layer2.3.relu (512 x 28x28)
        layer3_0_conv1 = self.layer3[0].conv1(torch.cat([layer2_3_relu_2, fit_memory(memory, 1, layer2_3_relu_2.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer3_0_bn1 = self.layer3[0].bn1(layer3_0_conv1)
        layer3_0_relu = self.layer3[0].relu(layer3_0_bn1)
        layer3_0_conv2 = self.layer3[0].conv2(torch.cat([layer3_0_relu, fit_memory(memory, 1, layer3_0_relu.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer3_0_bn2 = self.layer3[0].bn2(layer3_0_conv2)
        layer3_0_relu_1 = self.layer3[0].relu(layer3_0_bn2)
        layer3_0_conv3 = self.layer3[0].conv3(torch.cat([layer3_0_relu_1, fit_memory(memory, 1, layer3_0_relu_1.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_0_bn3 = self.layer3[0].bn3(layer3_0_conv3)
        layer3_0_downsample_0 = self.layer3[0].downsample[0](torch.cat([layer2_3_relu_2, fit_memory(memory, 1, layer2_3_relu_2.shape[2:])], 1))  # + memory: 1 channel at 28x28
        layer3_0_downsample_1 = self.layer3[0].downsample[1](layer3_0_downsample_0)
        add_7 = layer3_0_bn3 + layer3_0_downsample_1
        layer3_0_relu_2 = self.layer3[0].relu(add_7)
        layer3_1_conv1 = self.layer3[1].conv1(torch.cat([layer3_0_relu_2, fit_memory(memory, 1, layer3_0_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_1_bn1 = self.layer3[1].bn1(layer3_1_conv1)
        layer3_1_relu = self.layer3[1].relu(layer3_1_bn1)
        layer3_1_conv2 = self.layer3[1].conv2(torch.cat([layer3_1_relu, fit_memory(memory, 1, layer3_1_relu.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_1_bn2 = self.layer3[1].bn2(layer3_1_conv2)
        layer3_1_relu_1 = self.layer3[1].relu(layer3_1_bn2)
        layer3_1_conv3 = self.layer3[1].conv3(torch.cat([layer3_1_relu_1, fit_memory(memory, 1, layer3_1_relu_1.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_1_bn3 = self.layer3[1].bn3(layer3_1_conv3)
        add_8 = layer3_1_bn3 + layer3_0_relu_2
        layer3_1_relu_2 = self.layer3[1].relu(add_8)
        layer3_2_conv1 = self.layer3[2].conv1(torch.cat([layer3_1_relu_2, fit_memory(memory, 1, layer3_1_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_2_bn1 = self.layer3[2].bn1(layer3_2_conv1)
        layer3_2_relu = self.layer3[2].relu(layer3_2_bn1)
        layer3_2_conv2 = self.layer3[2].conv2(torch.cat([layer3_2_relu, fit_memory(memory, 1, layer3_2_relu.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_2_bn2 = self.layer3[2].bn2(layer3_2_conv2)
        layer3_2_relu_1 = self.layer3[2].relu(layer3_2_bn2)
        layer3_2_conv3 = self.layer3[2].conv3(torch.cat([layer3_2_relu_1, fit_memory(memory, 1, layer3_2_relu_1.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_2_bn3 = self.layer3[2].bn3(layer3_2_conv3)
        add_9 = layer3_2_bn3 + layer3_1_relu_2
        layer3_2_relu_2 = self.layer3[2].relu(add_9)
        layer3_3_conv1 = self.layer3[3].conv1(torch.cat([layer3_2_relu_2, fit_memory(memory, 1, layer3_2_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_3_bn1 = self.layer3[3].bn1(layer3_3_conv1)
        layer3_3_relu = self.layer3[3].relu(layer3_3_bn1)
        layer3_3_conv2 = self.layer3[3].conv2(torch.cat([layer3_3_relu, fit_memory(memory, 1, layer3_3_relu.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_3_bn2 = self.layer3[3].bn2(layer3_3_conv2)
        layer3_3_relu_1 = self.layer3[3].relu(layer3_3_bn2)
        layer3_3_conv3 = self.layer3[3].conv3(torch.cat([layer3_3_relu_1, fit_memory(memory, 1, layer3_3_relu_1.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_3_bn3 = self.layer3[3].bn3(layer3_3_conv3)
        add_10 = layer3_3_bn3 + layer3_2_relu_2
        layer3_3_relu_2 = self.layer3[3].relu(add_10)
        layer3_4_conv1 = self.layer3[4].conv1(torch.cat([layer3_3_relu_2, fit_memory(memory, 1, layer3_3_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_4_bn1 = self.layer3[4].bn1(layer3_4_conv1)
        layer3_4_relu = self.layer3[4].relu(layer3_4_bn1)
        layer3_4_conv2 = self.layer3[4].conv2(torch.cat([layer3_4_relu, fit_memory(memory, 1, layer3_4_relu.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_4_bn2 = self.layer3[4].bn2(layer3_4_conv2)
        layer3_4_relu_1 = self.layer3[4].relu(layer3_4_bn2)
        layer3_4_conv3 = self.layer3[4].conv3(torch.cat([layer3_4_relu_1, fit_memory(memory, 1, layer3_4_relu_1.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_4_bn3 = self.layer3[4].bn3(layer3_4_conv3)
        add_11 = layer3_4_bn3 + layer3_3_relu_2
        layer3_4_relu_2 = self.layer3[4].relu(add_11)
        layer3_5_conv1 = self.layer3[5].conv1(torch.cat([layer3_4_relu_2, fit_memory(memory, 1, layer3_4_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_5_bn1 = self.layer3[5].bn1(layer3_5_conv1)
        layer3_5_relu = self.layer3[5].relu(layer3_5_bn1)
        layer3_5_conv2 = self.layer3[5].conv2(torch.cat([layer3_5_relu, fit_memory(memory, 1, layer3_5_relu.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_5_bn2 = self.layer3[5].bn2(layer3_5_conv2)
        layer3_5_relu_1 = self.layer3[5].relu(layer3_5_bn2)
        layer3_5_conv3 = self.layer3[5].conv3(torch.cat([layer3_5_relu_1, fit_memory(memory, 1, layer3_5_relu_1.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer3_5_bn3 = self.layer3[5].bn3(layer3_5_conv3)
        add_12 = layer3_5_bn3 + layer3_4_relu_2
        layer3_5_relu_2 = self.layer3[5].relu(add_12)
        memory = self.update_layer3_5_relu(memory, F.adaptive_avg_pool2d(layer3_5_relu_2, (7, 7)))  # update block: memory rewritten from layer3.5.relu (1024 x 14x14)
        layer4_0_conv1 = self.layer4[0].conv1(torch.cat([layer3_5_relu_2, fit_memory(memory, 1, layer3_5_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer4_0_bn1 = self.layer4[0].bn1(layer4_0_conv1)
        layer4_0_relu = self.layer4[0].relu(layer4_0_bn1)
        layer4_0_conv2 = self.layer4[0].conv2(torch.cat([layer4_0_relu, fit_memory(memory, 1, layer4_0_relu.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer4_0_bn2 = self.layer4[0].bn2(layer4_0_conv2)
        layer4_0_relu_1 = self.layer4[0].relu(layer4_0_bn2)
        layer4_0_conv3 = self.layer4[0].conv3(torch.cat([layer4_0_relu_1, fit_memory(memory, 1, layer4_0_relu_1.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_0_bn3 = self.layer4[0].bn3(layer4_0_conv3)
        layer4_0_downsample_0 = self.layer4[0].downsample[0](torch.cat([layer3_5_relu_2, fit_memory(memory, 1, layer3_5_relu_2.shape[2:])], 1))  # + memory: 1 channel at 14x14
        layer4_0_downsample_1 = self.layer4[0].downsample[1](layer4_0_downsample_0)
        add_13 = layer4_0_bn3 + layer4_0_downsample_1
        layer4_0_relu_2 = self.layer4[0].relu(add_13)
        layer4_1_conv1 = self.layer4[1].conv1(torch.cat([layer4_0_relu_2, fit_memory(memory, 1, layer4_0_relu_2.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_1_bn1 = self.layer4[1].bn1(layer4_1_conv1)
        layer4_1_relu = self.layer4[1].relu(layer4_1_bn1)
        layer4_1_conv2 = self.layer4[1].conv2(torch.cat([layer4_1_relu, fit_memory(memory, 1, layer4_1_relu.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_1_bn2 = self.layer4[1].bn2(layer4_1_conv2)
        layer4_1_relu_1 = self.layer4[1].relu(layer4_1_bn2)
        layer4_1_conv3 = self.layer4[1].conv3(torch.cat([layer4_1_relu_1, fit_memory(memory, 1, layer4_1_relu_1.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_1_bn3 = self.layer4[1].bn3(layer4_1_conv3)
        add_14 = layer4_1_bn3 + layer4_0_relu_2
        layer4_1_relu_2 = self.layer4[1].relu(add_14)
        layer4_2_conv1 = self.layer4[2].conv1(torch.cat([layer4_1_relu_2, fit_memory(memory, 1, layer4_1_relu_2.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_2_bn1 = self.layer4[2].bn1(layer4_2_conv1)
        layer4_2_relu = self.layer4[2].relu(layer4_2_bn1)
        layer4_2_conv2 = self.layer4[2].conv2(torch.cat([layer4_2_relu, fit_memory(memory, 1, layer4_2_relu.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_2_bn2 = self.layer4[2].bn2(layer4_2_conv2)
        layer4_2_relu_1 = self.layer4[2].relu(layer4_2_bn2)
        layer4_2_conv3 = self.layer4[2].conv3(torch.cat([layer4_2_relu_1, fit_memory(memory, 1, layer4_2_relu_1.shape[2:])], 1))  # + memory: 1 channel at 7x7
        layer4_2_bn3 = self.layer4[2].bn3(layer4_2_conv3)
        add_15 = layer4_2_bn3 + layer4_1_relu_2
        layer4_2_relu_2 = self.layer4[2].relu(add_15)
        memory = self.update_layer4_2_relu(memory, F.adaptive_avg_pool2d(layer4_2_relu_2, (7, 7)))  # update block: memory rewritten from layer4.2.relu (2048 x 7x7)
        avgpool = self.avgpool(layer4_2_relu_2)
        flatten = torch.flatten(avgpool, 1)
        fc = self.fc(torch.cat([flatten, fit_features(memory, 49, flatten)], -1))  # + memory: 49 features
        return fc, memory.mean(0)

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimResNet:
    return AimResNet()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 3, 224, 224, generator=g),
    )
