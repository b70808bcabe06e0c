"""Breadth: U-Nets and other encoder-decoder segmentation networks from two libraries aimgen was
not built against, segmentation_models_pytorch (smp: its architectures over its own, timm's and
Mix Transformer encoders) and MONAI (medical imaging, 2-d and 3-d), random weights, nothing
downloaded. Each is converted as ``aimgen convert FILE.py:NAME`` does and checked as the other
sweeps check: every base state_dict key kept, base weights in -> the base function out (max abs
difference over every output tensor at batch 2), and one training step.

    pip install segmentation-models-pytorch monai einops    # not in aimgen's extras
    python benchmarks/unet_sweep.py                  # the list below
    python benchmarks/unet_sweep.py smp_unet_resnet34 monai_unet ...

One line per model: ``ok`` with taps, the difference and the output's line count, or why not.
"""
from __future__ import annotations

import sys

from sweep import run_table

from aimgen.loader import InputSpec

IMAGE = InputSpec((1, 3, 64, 64))
SLICE = InputSpec((1, 1, 64, 64))
VOLUME = InputSpec((1, 1, 32, 32, 32))


def smp(arch: str, encoder: str, extra: str = "") -> str:
    return f"smp.{arch}(encoder_name={encoder!r}, encoder_weights=None, classes=3{extra})"


# name: (constructor call, inputs)
MODELS = {
    "smp_unet_resnet34": (smp("Unet", "resnet34"), IMAGE),
    "smp_unetplusplus_resnet18": (smp("UnetPlusPlus", "resnet18"), IMAGE),
    "smp_unet_efficientnet_b0": (smp("Unet", "efficientnet-b0"), IMAGE),
    "smp_unet_mobilenet_v2": (smp("Unet", "mobilenet_v2"), IMAGE),
    "smp_unet_timm_convnext": (smp("Unet", "tu-convnext_atto"), IMAGE),
    "smp_manet_resnet18": (smp("MAnet", "resnet18"), IMAGE),
    "smp_linknet_resnet18": (smp("Linknet", "resnet18"), IMAGE),
    "smp_fpn_resnet18": (smp("FPN", "resnet18"), IMAGE),
    "smp_pspnet_resnet18": (smp("PSPNet", "resnet18"), IMAGE),
    "smp_deeplabv3_resnet18": (smp("DeepLabV3", "resnet18"), IMAGE),
    "smp_deeplabv3plus_resnet18": (smp("DeepLabV3Plus", "resnet18"), IMAGE),
    "smp_pan_resnet18": (smp("PAN", "resnet18"), InputSpec((1, 3, 256, 256))),  # pools to 1/256
    "smp_upernet_resnet18": (smp("UPerNet", "resnet18"), IMAGE),
    "smp_segformer_mit_b0": (smp("Segformer", "mit_b0"), IMAGE),
    "smp_unet_timm_regnet": (smp("Unet", "tu-regnety_002"), IMAGE),
    "monai_unet": ("nets.UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32, 64), "
                   "strides=(2, 2, 2), num_res_units=2)", SLICE),
    "monai_unet_3d": ("nets.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), "
                      "strides=(2, 2), num_res_units=1)", VOLUME),
    "monai_basic_unet": ("nets.BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, "
                         "features=(8, 8, 16, 32, 64, 8))", SLICE),
    "monai_basic_unetplusplus": ("nets.BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=2, "
                                 "features=(8, 8, 16, 32, 64, 8))", SLICE),
    "monai_attention_unet": ("nets.AttentionUnet(spatial_dims=2, in_channels=1, out_channels=2, "
                             "channels=(8, 16, 32), strides=(2, 2))", SLICE),
    "monai_segresnet": ("nets.SegResNet(spatial_dims=2, init_filters=8, in_channels=1, out_channels=2)", SLICE),
    "monai_segresnet_3d": ("nets.SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=2)",
                           VOLUME),
    "monai_dynunet": ("nets.DynUNet(spatial_dims=2, in_channels=1, out_channels=2, kernel_size=[3, 3, 3], "
                      "strides=[1, 2, 2], upsample_kernel_size=[2, 2])", SLICE),
    "monai_unetr": ("nets.UNETR(in_channels=1, out_channels=2, img_size=(64, 64), spatial_dims=2, "
                    "feature_size=8, hidden_size=96, mlp_dim=192, num_heads=4)", SLICE),
    "monai_swin_unetr": ("nets.SwinUNETR(in_channels=1, out_channels=2, spatial_dims=2, feature_size=12)",
                         SLICE),
    "monai_vnet": ("nets.VNet(spatial_dims=3, in_channels=1, out_channels=2)", VOLUME),
}


def main(names: list[str]) -> int:
    run_table("import segmentation_models_pytorch as smp\nfrom monai.networks import nets\n", MODELS, names,
              "unet_models.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(MODELS)))
