# AiM version of torchvision_models.py:vgg16, traced at input (1, 3, 224, 224).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
# options: memory_size=auto tap_width=1 form=sum updates=stages update_rank=auto carry_rate=0.1 budget=auto
# memory: (1024, 7, 7) = 50,176 floats; taps: 16 of 16 weight layers; update blocks: 6; carry rate 0.1
# parameters: base 134,752,184 | aim 135,423,328 | delta +671,144 (memory 50,176, taps 445,304, updates 175,664)
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 224, 224)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {'format': 1,
 'kind': 'aim',
 'source': 'torchvision_models.py:vgg16',
 'class': 'AimVGG',
 'input_shapes': ['1,3,224,224'],
 'memory_shape': [1024, 7, 7],
 'memory': 'memory',
 'base_params': 134752184,
 'aim_params': 135423328,
 'delta': {'memory': 50176, 'taps': 445304, 'updates': 175664},
 'update_blocks': 6,
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


class AimVGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.memory = Memory((1024, 7, 7), carry_rate=0.1)  # 50,176 floats, carried from batch to batch
        self.features = nn.ModuleList([
            nn.Conv2d(3 + 1, 64, 3, padding=1),  # + memory: 1 channel at 224x224
            nn.ReLU(inplace=True),
            nn.Conv2d(64 + 1, 64, 3, padding=1),  # + memory: 1 channel at 224x224
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(64 + 1, 128, 3, padding=1),  # + memory: 1 channel at 112x112
            nn.ReLU(inplace=True),
            nn.Conv2d(128 + 1, 128, 3, padding=1),  # + memory: 1 channel at 112x112
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(128 + 1, 256, 3, padding=1),  # + memory: 1 channel at 56x56
            nn.ReLU(inplace=True),
            nn.Conv2d(256 + 1, 256, 3, padding=1),  # + memory: 1 channel at 56x56
            nn.ReLU(inplace=True),
            nn.Conv2d(256 + 1, 256, 3, padding=1),  # + memory: 1 channel at 56x56
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(256 + 1, 512, 3, padding=1),  # + memory: 1 channel at 28x28
            nn.ReLU(inplace=True),
            nn.Conv2d(512 + 1, 512, 3, padding=1),  # + memory: 1 channel at 28x28
            nn.ReLU(inplace=True),
            nn.Conv2d(512 + 1, 512, 3, padding=1),  # + memory: 1 channel at 28x28
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(512 + 1, 512, 3, padding=1),  # + memory: 1 channel at 14x14
            nn.ReLU(inplace=True),
            nn.Conv2d(512 + 1, 512, 3, padding=1),  # + memory: 1 channel at 14x14
            nn.ReLU(inplace=True),
            nn.Conv2d(512 + 1, 512, 3, padding=1),  # + memory: 1 channel at 14x14
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
        ])
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.ModuleList([
            nn.Linear(25088 + 49, 4096),  # + memory: 49 features
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096 + 49, 4096),  # + memory: 49 features
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096 + 49, 120),  # + memory: 49 features
        ])
        self.update_features_3 = MemoryUpdate(64, 1024, rank=8)  # update block after features.3: +27,144 params
        self.update_features_8 = MemoryUpdate(128, 1024, rank=8)  # update block after features.8: +27,656 params
        self.update_features_15 = MemoryUpdate(256, 1024, rank=8)  # update block after features.15: +28,680 params
        self.update_features_22 = MemoryUpdate(512, 1024, rank=8)  # update block after features.22: +30,728 params
        self.update_features_29 = MemoryUpdate(512, 1024, rank=8)  # update block after features.29: +30,728 params
        self.update_avgpool = MemoryUpdate(512, 1024, rank=8)  # update block after avgpool: +30,728 params

    def forward(self, x):
        outputs, memory = self.forward_with_memory(x, self.memory.read())
        self.memory.write(memory)
        return outputs

    def forward_with_memory(self, x, memory):
        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).
        Memory in and out have the seed's shape; the new memory is the batch mean."""
        memory = memory.expand(x.shape[0], *memory.shape)
        features_0 = self.features[0](torch.cat([x, fit_memory(memory, 1, x.shape[2:])], 1))  # + memory: 1 channel at 224x224
        features_1 = self.features[1](features_0)
        features_2 = self.features[2](torch.cat([features_1, fit_memory(memory, 1, features_1.shape[2:])], 1))  # + memory: 1 channel at 224x224
        features_3 = self.features[3](features_2)
        memory = self.update_features_3(memory, F.adaptive_avg_pool2d(features_3, (7, 7)))  # update block: memory rewritten from features.3 (64 x 224x224)
        features_4 = self.features[4](features_3)
        features_5 = self.features[5](torch.cat([features_4, fit_memory(memory, 1, features_4.shape[2:])], 1))  # + memory: 1 channel at 112x112
        features_6 = self.features[6](features_5)
        features_7 = self.features[7](torch.cat([features_6, fit_memory(memory, 1, features_6.shape[2:])], 1))  # + memory: 1 channel at 112x112
        features_8 = self.features[8](features_7)
        memory = self.update_features_8(memory, F.adaptive_avg_pool2d(features_8, (7, 7)))  # update block: memory rewritten from features.8 (128 x 112x112)
        features_9 = self.features[9](features_8)
        features_10 = self.features[10](torch.cat([features_9, fit_memory(memory, 1, features_9.shape[2:])], 1))  # + memory: 1 channel at 56x56
        features_11 = self.features[11](features_10)
        features_12 = self.features[12](torch.cat([features_11, fit_memory(memory, 1, features_11.shape[2:])], 1))  # + memory: 1 channel at 56x56
        features_13 = self.features[13](features_12)
        features_14 = self.features[14](torch.cat([features_13, fit_memory(memory, 1, features_13.shape[2:])], 1))  # + memory: 1 channel at 56x56
        features_15 = self.features[15](features_14)
        memory = self.update_features_15(memory, F.adaptive_avg_pool2d(features_15, (7, 7)))  # update block: memory rewritten from features.15 (256 x 56x56)
        features_16 = self.features[16](features_15)
        features_17 = self.features[17](torch.cat([features_16, fit_memory(memory, 1, features_16.shape[2:])], 1))  # + memory: 1 channel at 28x28
        features_18 = self.features[18](features_17)
        features_19 = self.features[19](torch.cat([features_18, fit_memory(memory, 1, features_18.shape[2:])], 1))  # + memory: 1 channel at 28x28
        features_20 = self.features[20](features_19)
        features_21 = self.features[21](torch.cat([features_20, fit_memory(memory, 1, features_20.shape[2:])], 1))  # + memory: 1 channel at 28x28
        features_22 = self.features[22](features_21)
        memory = self.update_features_22(memory, F.adaptive_avg_pool2d(features_22, (7, 7)))  # update block: memory rewritten from features.22 (512 x 28x28)
        features_23 = self.features[23](features_22)
        features_24 = self.features[24](torch.cat([features_23, fit_memory(memory, 1, features_23.shape[2:])], 1))  # + memory: 1 channel at 14x14
        features_25 = self.features[25](features_24)
        features_26 = self.features[26](torch.cat([features_25, fit_memory(memory, 1, features_25.shape[2:])], 1))  # + memory: 1 channel at 14x14
        features_27 = self.features[27](features_26)
        features_28 = self.features[28](torch.cat([features_27, fit_memory(memory, 1, features_27.shape[2:])], 1))  # + memory: 1 channel at 14x14
        features_29 = self.features[29](features_28)
        memory = self.update_features_29(memory, F.adaptive_avg_pool2d(features_29, (7, 7)))  # update block: memory rewritten from features.29 (512 x 14x14)
        features_30 = self.features[30](features_29)
        avgpool = self.avgpool(features_30)
        memory = self.update_avgpool(memory, F.adaptive_avg_pool2d(avgpool, (7, 7)))  # update block: memory rewritten from avgpool (512 x 7x7)
        flatten = torch.flatten(avgpool, 1)
        classifier_0 = self.classifier[0](torch.cat([flatten, fit_features(memory, 49, flatten)], -1))  # + memory: 49 features
        classifier_1 = self.classifier[1](classifier_0)
        classifier_2 = self.classifier[2](classifier_1)
        classifier_3 = self.classifier[3](torch.cat([classifier_2, fit_features(memory, 49, classifier_2)], -1))  # + memory: 49 features
        classifier_4 = self.classifier[4](classifier_3)
        classifier_5 = self.classifier[5](classifier_4)
        classifier_6 = self.classifier[6](torch.cat([classifier_5, fit_features(memory, 49, classifier_5)], -1))  # + memory: 49 features
        return classifier_6, memory.mean(0)

    def reset_memory(self) -> None:
        """Forget what training carried over: the memory is the learned seed again."""
        self.memory.reset()


def build_model() -> AimVGG:
    return AimVGG()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 3, 224, 224, generator=g),
    )
