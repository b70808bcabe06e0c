"""Breadth: research code aimgen was not built against. Phil Wang's (lucidrains) vit-pytorch (about
forty vision-transformer variants: 1-d, 2-d, 3-d and video, token pruning, nested, cross-scale,
window and grid attention, convolutional stems, register tokens, normalized and parallel
blocks), denoising-diffusion-pytorch (diffusion U-Nets that take a timestep as a second input)
and x-transformers (language and vision transformers built from flags). Written with einops,
`einsum`, rotary embeddings and helper functions in the forward, as much research code is.
Random weights, small configs, nothing downloaded. Each model is converted as ``aimgen convert
FILE.py:NAME`` does and checked as the other sweeps check: every base state_dict key kept, base
weights in -> the base function out (max abs difference over every output tensor at batch 2),
and one training step.

    pip install vit-pytorch denoising-diffusion-pytorch x-transformers   # not in aimgen's extras
    python benchmarks/lucidrains_sweep.py              # the list below, about 15 minutes
    python benchmarks/lucidrains_sweep.py vit cait ... # given names

One line per model: ``ok`` with taps, the difference and the output's line count, or why not.
"""
from __future__ import annotations

import sys

from sweep import run_table

from aimgen.loader import InputSpec

IMAGE = InputSpec((1, 3, 32, 32))
IMAGE64 = InputSpec((1, 3, 64, 64))
IMAGE224 = InputSpec((1, 3, 224, 224))
SERIES = InputSpec((1, 3, 256))
VIDEO = InputSpec((1, 3, 8, 32, 32))
TIME = InputSpec((1,), dtype=__import__("torch").int64)
TOKENS = InputSpec((1, 16), dtype=__import__("torch").int64)

#: the arguments every small ViT below shares
SMALL = "num_classes=10, dim=64, depth=2, heads=4, mlp_dim=128"
VIT = f"image_size=32, patch_size=8, {SMALL}"
VIT3D = f"image_size=32, image_patch_size=8, frames=8, frame_patch_size=2, {SMALL}"

# name: (constructor call, inputs)
MODELS = {
    # vit-pytorch
    "vit": (f"vit.ViT({VIT}, dropout=0.1, emb_dropout=0.1)", IMAGE),
    "simple_vit": (f"simple_vit.SimpleViT({VIT})", IMAGE),
    "vit_1d": (f"vit_1d.ViT(seq_len=256, patch_size=16, {SMALL})", SERIES),
    "simple_vit_1d": (f"simple_vit_1d.SimpleViT(seq_len=256, patch_size=16, {SMALL})", SERIES),
    "vit_3d": (f"vit_3d.ViT({VIT3D})", VIDEO),
    "simple_vit_3d": (f"simple_vit_3d.SimpleViT({VIT3D})", VIDEO),
    "vivit": ("vivit.ViViT(image_size=32, image_patch_size=8, frames=8, frame_patch_size=2, num_classes=10, "
              "dim=64, spatial_depth=2, temporal_depth=2, heads=4, mlp_dim=128)", VIDEO),
    # (layer_dropout > 0 drops layers at random in eval() too: refused, a branch on a random value)
    "cait": (f"cait.CaiT({VIT}, cls_depth=1, dropout=0.1, emb_dropout=0.1)", IMAGE),
    "deepvit": (f"deepvit.DeepViT({VIT}, dropout=0.1, emb_dropout=0.1)", IMAGE),
    "t2t": ("t2t.T2TViT(dim=64, image_size=32, depth=2, heads=4, mlp_dim=128, num_classes=10, "
            "t2t_layers=((7, 4), (3, 2), (3, 2)))", IMAGE),
    "cct": ("cct.CCT(img_size=(32, 32), embedding_dim=64, n_conv_layers=2, kernel_size=3, stride=1, padding=1, "
            "pooling_kernel_size=3, pooling_stride=2, pooling_padding=1, num_layers=2, num_heads=4, "
            "mlp_ratio=2.0, num_classes=10, positional_embedding='learnable')", IMAGE),
    "cross_vit": ("cross_vit.CrossViT(image_size=32, num_classes=10, depth=2, sm_dim=64, sm_patch_size=8, "
                  "sm_enc_depth=1, sm_enc_heads=4, sm_enc_mlp_dim=128, lg_dim=96, lg_patch_size=16, "
                  "lg_enc_depth=1, lg_enc_heads=4, lg_enc_mlp_dim=128, cross_attn_depth=1, cross_attn_heads=4, "
                  "dropout=0.1, emb_dropout=0.1)", IMAGE),
    "pit": ("pit.PiT(image_size=32, patch_size=4, dim=64, num_classes=10, depth=(1, 1, 1), heads=4, "
            "mlp_dim=128)", IMAGE),
    "levit": ("levit.LeViT(image_size=64, num_classes=10, stages=3, dim=(64, 96, 128), depth=2, "
              "heads=(2, 3, 4), mlp_mult=2, dropout=0.1)", IMAGE64),
    "cvt": ("cvt.CvT(num_classes=10, s1_emb_dim=32, s2_emb_dim=64, s3_emb_dim=96, s3_depth=2)", IMAGE64),
    "twins_svt": ("twins_svt.TwinsSVT(num_classes=10, s1_emb_dim=32, s2_emb_dim=64, s3_emb_dim=96, "
                  "s3_depth=2, s4_emb_dim=128)", IMAGE224),
    "regionvit": ("regionvit.RegionViT(dim=(32, 64, 128, 256), depth=(1, 1, 2, 1), window_size=7, "
                  "num_classes=10, tokenize_local_3_conv=False, use_peg=False)", IMAGE224),
    "crossformer": ("crossformer.CrossFormer(num_classes=10, dim=(32, 64, 128, 256), depth=(1, 1, 2, 1), "
                    "global_window_size=(8, 4, 2, 1), local_window_size=7)", IMAGE224),
    "scalable_vit": ("scalable_vit.ScalableViT(num_classes=10, dim=32, heads=(1, 2, 4, 8), depth=(1, 1, 2, 1), "
                     "ssa_dim_key=(16, 16, 16, 16), reduction_factor=(8, 4, 2, 1), "
                     "window_size=(8, 4, None, None))", InputSpec((1, 3, 256, 256))),
    "sep_vit": ("sep_vit.SepViT(num_classes=10, dim=32, dim_head=16, heads=(1, 2, 4, 8), depth=(1, 1, 2, 1), "
                "window_size=7)", IMAGE224),
    "max_vit": ("max_vit.MaxViT(num_classes=10, dim_conv_stem=32, dim=32, dim_head=16, depth=(1, 1), "
                "window_size=4, dropout=0.1)", IMAGE64),
    "max_vit_with_registers": ("max_vit_with_registers.MaxViT(num_classes=10, dim_conv_stem=32, dim=32, "
                               "dim_head=16, depth=(1, 1), window_size=4, dropout=0.1)", IMAGE64),
    "nest": ("nest.NesT(image_size=32, patch_size=4, dim=32, heads=2, num_hierarchies=3, "
             "block_repeats=(1, 1, 1), num_classes=10)", IMAGE),
    "mobile_vit": ("mobile_vit.MobileViT(image_size=(64, 64), dims=[48, 64, 80], "
                   "channels=[16, 16, 24, 24, 48, 48, 64, 64, 80, 80, 160], num_classes=10)", IMAGE64),
    "xcit": (f"xcit.XCiT({VIT}, cls_depth=1, dropout=0.1, emb_dropout=0.1)", IMAGE),
    "rvt": (f"rvt.RvT({VIT}, use_rotary=True, use_ds_conv=True, use_glu=True)", IMAGE),
    "parallel_vit": (f"parallel_vit.ViT({VIT}, num_parallel_branches=2)", IMAGE),
    "vit_for_small_dataset": (f"vit_for_small_dataset.ViT({VIT})", IMAGE),
    "vit_with_patch_merger": (f"vit_with_patch_merger.ViT({VIT}, patch_merge_layer=1, "
                              "patch_merge_num_tokens=4)", IMAGE),
    "vit_with_patch_dropout": (f"vit_with_patch_dropout.ViT({VIT}, patch_dropout=0.25)", IMAGE),
    "simple_vit_with_patch_dropout": (f"simple_vit_with_patch_dropout.SimpleViT({VIT}, patch_dropout=0.25)",
                                      IMAGE),
    "simple_vit_with_register_tokens": (f"simple_vit_with_register_tokens.SimpleViT({VIT}, "
                                        "num_register_tokens=4)", IMAGE),
    "simple_vit_with_qk_norm": (f"simple_vit_with_qk_norm.SimpleViT({VIT})", IMAGE),
    "simple_vit_with_fft": (f"simple_vit_with_fft.SimpleViT({VIT}, freq_patch_size=8)", IMAGE),
    "simple_vit_with_value_residual": (f"simple_vit_with_value_residual.SimpleViT({VIT})", IMAGE),
    "simple_uvit": (f"simple_uvit.SimpleUViT({VIT.replace('depth=2', 'depth=4')})", IMAGE),
    "normalized_vit": (f"normalized_vit.nViT({VIT})", IMAGE),
    "ats_vit": (f"ats_vit.ViT({VIT}, max_tokens_per_depth=(12, 8))", IMAGE),
    "jumbo_vit": (f"jumbo_vit.JumboViT({VIT}, jumbo_cls_k=2)", IMAGE),
    "vit_5": (f"vit_5.ViT({VIT})", IMAGE),
    "look_vit": ("look_vit.LookViT(image_size=48, num_classes=10, dim=64, depth=2, heads=4, dim_head=16, "
                 "cross_attn_heads=4, cross_attn_dim_head=16)", InputSpec((1, 3, 48, 48))),
    # denoising-diffusion-pytorch: (noisy image, timestep) -> predicted noise
    "ddpm_unet": ("ddp.Unet(dim=16, dim_mults=(1, 2, 4), flash_attn=False)", [IMAGE, TIME]),
    "ddpm_unet_1d": ("ddp.Unet1D(dim=16, dim_mults=(1, 2, 4), channels=3)", [InputSpec((1, 3, 64)), TIME]),
    "karras_unet": ("ddp.KarrasUnet(image_size=32, dim=32, dim_max=64, num_downsamples=2, channels=3)",
                    [IMAGE, TIME]),
    # x-transformers
    "xt_decoder": ("xt.TransformerWrapper(num_tokens=256, max_seq_len=64, "
                   "attn_layers=xt.Decoder(dim=64, depth=2, heads=4))", TOKENS),
    "xt_encoder_rotary_glu": ("xt.TransformerWrapper(num_tokens=256, max_seq_len=64, attn_layers=xt.Encoder("
                              "dim=64, depth=2, heads=4, rotary_pos_emb=True, ff_glu=True, "
                              "attn_qk_norm=True, use_rmsnorm=True))", TOKENS),
    "xt_vit": ("xt.ViTransformerWrapper(image_size=32, patch_size=8, num_classes=10, "
               "attn_layers=xt.Encoder(dim=64, depth=2, heads=4))", IMAGE),
    "xt_continuous": ("xt.ContinuousTransformerWrapper(dim_in=8, dim_out=8, max_seq_len=64, "
                      "attn_layers=xt.Encoder(dim=64, depth=2, heads=4))", InputSpec((1, 16, 8))),
}

#: vit-pytorch's modules, imported by their full name: each builder below is named like its module
MODULES = sorted({call.split(".")[0] for call, _ in MODELS.values()} - {"ddp", "xt"})
HEADER = ("import denoising_diffusion_pytorch as ddp\nimport x_transformers as xt\n"
          + "".join(f"import vit_pytorch.{module}\n" for module in MODULES))


def main(names: list[str]) -> int:
    calls = {n: ("vit_pytorch." * (call.split(".")[0] in MODULES) + call, specs) for n, (call, specs) in MODELS.items()}
    run_table(HEADER, calls, names, "lucidrains_models.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(MODELS)))
