"""The models the benchmarks convert, as zero-argument builders: the targets of
``aimgen convert benchmarks/models.py:NAME`` and of the hand-done floor (floor.py).

- ``resnet18`` ... ``resnet152``: torchvision ResNets with 120 classes (Stanford Dogs), at 224x224.
- ``chain16`` ... ``chain128``: a plain chain of N conv blocks (3x3 conv, BatchNorm, ReLU) in four
  stages of N/4 blocks (stride 2 between stages), then pooling and a Linear head; every block
  is identical, so any cost that is not linear in N shows up cleanly.
- ``tiny``, ``tiny8``: 4- and 8-block chains, 8 channels wide, at 32x32, for ``run.py --quick``.
- ``mobilenet_v2`` (depthwise convolutions), ``vit_tiny`` (torchvision's VisionTransformer at
  ViT-Tiny size: 12 layers, 3 heads, width 192; Linear layers on sequences) and ``digits`` (the
  digits CNN of ``examples/digits_cnn.py`` at 1x8x8): the models of the form comparison
  (``forms.py``).
"""
from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 120


class ConvChain(nn.Module):
    """A deep plain network of identical conv blocks, in four stages."""

    def __init__(self, blocks: int, width: int = 32, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers = []
        per_stage = max(1, blocks // 4)
        for i in range(blocks):
            stride = 2 if i and i % per_stage == 0 else 1
            layers += [nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _resnet(name: str) -> nn.Module:
    import torchvision

    return getattr(torchvision.models, name)(num_classes=NUM_CLASSES)


def resnet18() -> nn.Module:
    return _resnet("resnet18")


def resnet50() -> nn.Module:
    return _resnet("resnet50")


def resnet101() -> nn.Module:
    return _resnet("resnet101")


def resnet152() -> nn.Module:
    return _resnet("resnet152")


def chain16() -> nn.Module:
    return ConvChain(16)


def chain32() -> nn.Module:
    return ConvChain(32)


def chain64() -> nn.Module:
    return ConvChain(64)


def chain128() -> nn.Module:
    return ConvChain(128)


def tiny() -> nn.Module:
    return ConvChain(4, width=8, num_classes=10)


def tiny8() -> nn.Module:
    return ConvChain(8, width=8, num_classes=10)


def mobilenet_v2() -> nn.Module:
    import torchvision

    return torchvision.models.mobilenet_v2(num_classes=NUM_CLASSES)


def vit_tiny() -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192,
                             mlp_dim=768, num_classes=NUM_CLASSES)


def digits() -> nn.Module:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "digits_cnn.py"
    spec = importlib.util.spec_from_file_location("digits_cnn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DigitsCNN()


# name -> (input shape, batch-1 first), used by run.py and floor.py
INPUTS = {
    **{f"resnet{d}": (1, 3, 224, 224) for d in (18, 50, 101, 152)},
    **{f"chain{n}": (1, 3, 128, 128) for n in (16, 32, 64, 128)},
    "tiny": (1, 3, 32, 32),
    "tiny8": (1, 3, 32, 32),
    "mobilenet_v2": (1, 3, 224, 224),
    "vit_tiny": (1, 3, 224, 224),
    "digits": (1, 1, 8, 8),
}


def build(name: str) -> nn.Module:
    if name not in INPUTS:
        raise KeyError(f"unknown benchmark model {name!r}; known: {', '.join(INPUTS)}")
    return globals()[name]()
