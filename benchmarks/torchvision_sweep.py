"""Breadth: torchvision's models, one of each classification family and those beyond image
classification (segmentation, video, optical flow, detection), random weights and no backbone
weights (nothing is downloaded), converted as
``aimgen convert FILE.py:NAME`` does, then checked as the other sweeps check: every base
state_dict key kept, base weights in -> the base function out (max abs difference over every
output tensor at batch 2), and one training step.

    python benchmarks/torchvision_sweep.py               # the list below
    python benchmarks/torchvision_sweep.py r3d_18 ...    # given names

One line per model: ``ok`` with taps, the difference and the output's line count, or why not.
"""
from __future__ import annotations

import sys

from sweep import run_table

from aimgen.loader import InputSpec

IMAGE = InputSpec((1, 3, 96, 96))
FULL = InputSpec((1, 3, 224, 224))
CLIP = InputSpec((1, 3, 8, 64, 64))
SEG = "num_classes=5, weights_backbone=None"
DET = "num_classes=3, weights_backbone=None"
# name: (constructor call, inputs)
MODELS = {
    # one of each classification family (GoogLeNet and Inception-v3 with their auxiliary heads)
    **{name: (f"tvm.{name}(num_classes=7)", IMAGE) for name in (
        "alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s", "googlenet",
        "mnasnet0_5", "mobilenet_v3_large", "regnet_x_400mf", "regnet_y_400mf", "resnet18", "resnext50_32x4d",
        "shufflenet_v2_x0_5", "squeezenet1_0", "swin_t", "swin_v2_t", "vgg11_bn", "wide_resnet50_2")},
    "inception_v3": ("tvm.inception_v3(num_classes=7)", InputSpec((1, 3, 299, 299))),
    "maxvit_t": ("tvm.maxvit_t(num_classes=7)", FULL),
    "vit_b_32": ("tvm.vit_b_32(num_classes=7)", FULL),
    "fcn_resnet50": (f"segmentation.fcn_resnet50({SEG}, aux_loss=True)", IMAGE),
    "deeplabv3_mobilenet_v3_large": (f"segmentation.deeplabv3_mobilenet_v3_large({SEG})", IMAGE),
    "lraspp_mobilenet_v3_large": (f"segmentation.lraspp_mobilenet_v3_large({SEG})", IMAGE),
    "r3d_18": ("video.r3d_18(num_classes=5)", CLIP),
    "mc3_18": ("video.mc3_18(num_classes=5)", CLIP),
    "r2plus1d_18": ("video.r2plus1d_18(num_classes=5)", CLIP),
    "s3d": ("video.s3d(num_classes=5)", InputSpec((1, 3, 16, 224, 224))),
    "swin3d_t": ("video.swin3d_t(num_classes=5)", InputSpec((1, 3, 8, 64, 64))),
    "mvit_v2_s": ("video.mvit_v2_s(num_classes=5)", InputSpec((1, 3, 16, 224, 224))),
    "raft_small": ("optical_flow.raft_small()", [InputSpec((1, 3, 128, 128))] * 2),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (f"detection.fasterrcnn_mobilenet_v3_large_320_fpn({DET})", IMAGE),
    "ssdlite320_mobilenet_v3_large": (f"detection.ssdlite320_mobilenet_v3_large({DET})", IMAGE),
    # what the refusal of the two above suggests: the part that computes features
    "fasterrcnn_backbone": (f"detection.fasterrcnn_mobilenet_v3_large_320_fpn({DET}).backbone", IMAGE),
    "retinanet_backbone": (f"detection.retinanet_resnet50_fpn({DET}).backbone", IMAGE),
}


def main(names: list[str]) -> int:
    run_table("import torchvision.models as tvm\nfrom torchvision.models import *\n", MODELS, names,
              "torchvision_models.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(MODELS)))
