"""Breadth: convert many timm architectures as ``aimgen convert FILE.py:NAME`` does (constructor
calls recorded), then check each: base weights in -> the base function out (max abs
difference at batch 2), and one training step. Random weights; nothing is downloaded.

    python benchmarks/timm_sweep.py                 # the list below, about 10 minutes on one core
    python benchmarks/timm_sweep.py --more          # 59 more architectures, about 25 minutes
    python benchmarks/timm_sweep.py --third         # 39 others, about 15 minutes
    python benchmarks/timm_sweep.py resnet18 ...    # given names

One line per model: ``ok`` with taps, the difference and the output's line count, or why not
(aimgen's message, or a base function not kept within 1e-4). Not part of the test suite (timm's models change between releases).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from sweep import run

import aimgen
from aimgen.loader import load_model

MODELS = """resnet18 regnetx_002 densenet121 dla34 dpn68 ghostnet_100 hrnet_w18_small inception_v3 mixnet_s
mnasnet_100 repvgg_a0 res2net50_14w_8s resnest14d rexnet_100 selecsls42b tf_efficientnetv2_b0 vgg11_bn
xception41 cspresnet50 darknet53 gernet_s hardcorenas_a lcnet_050 mobilevit_xxs poolformer_s12
convmixer_768_32 coatnet_nano_rw_224 maxvit_nano_rw_256 efficientformer_l1 pit_ti_224
deit_tiny_patch16_224 swin_tiny_patch4_window7_224 mixer_b16_224 resmlp_12_224 crossvit_tiny_240
cait_xxs24_224 tnt_s_patch16_224 twins_svt_small visformer_tiny volo_d1_224 fastvit_t8 repvit_m1
efficientvit_b0 mobileone_s0 tiny_vit_5m_224 nfnet_l0 regnety_002 skresnet18 convnext_atto
efficientnet_b0 edgenext_xx_small levit_128s mobilenetv3_small_100 eva02_tiny_patch14_224
beit_base_patch16_224""".split()

#: a second set, never seen while the first one was being made to pass (2026-11-28)
MORE = """inception_v4 inception_resnet_v2 gcvit_xxtiny focalnet_tiny_srf davit_tiny fastvit_sa12 hgnet_tiny
hgnetv2_b0 ghostnetv2_100 mobilenetv4_conv_small efficientformerv2_s0 sequencer2d_s gmlp_s16_224
xcit_nano_12_p16_224 coat_lite_tiny convit_tiny mvitv2_tiny nest_tiny pvt_v2_b0 rdnet_tiny legacy_seresnet18
resnetv2_50x1_bit halonet26t botnet26t_256 lambda_resnet26t cspdarknet53 inception_next_tiny starnet_s1
vovnet39a ese_vovnet19b_dw tresnet_m res2next50 regnetz_b16 mambaout_femto hiera_tiny_224 vitamin_small_224
vit_small_patch16_rope_224 mobilenetv4_hybrid_medium shvit_s1 efficientvit_m0 fasternet_t0 sam2_hiera_tiny
vit_little_patch16_reg4_gap_256 crossvit_9_240 deit3_small_patch16_224 flexivit_small twins_pcpvt_small
ghostnet_050 repghostnet_050 mobilevitv2_050 dla46_c selecsls42 resnet50d seresnext26d_32x4d
skresnext50_32x4d sebotnet33ts_256 nf_resnet26 cs3darknet_s mixnet_xl""".split()

#: a third set, never seen by the other two (2026-12-05)
THIRD = """cpubone_nano csatv2 cspnext_tiny efficientvim_m1 iformer_t lcnetv2_small lowformer_b0
nextvit_small swiftformer_xs swinv2_tiny_window8_256 swinv2_cr_tiny_224 vit_tiny_r_s16_p8_224
vit_relpos_small_patch16_224 vit_srelpos_small_patch16_224 samvit_base_patch16_224 legacy_xception
qwen3_vit_88m gemma4_vit_167m naflexvit_base_patch16_gap test_byobnet test_efficientnet_evos
test_efficientnet_gn test_vit3 test_vit4 test_nfnet test_mambaout test_convnext3 test_coatnet
test_maxvit resnetrs50 ecaresnet26t gcresnext26ts eca_halonext26ts regnetz_c16_evos
efficientnet_lite0 tinynet_e resnetblur18 seresnet33ts cs3edgenet_x""".split()


def check(source: Path, index: int, name: str) -> str:
    start = time.time()
    torch.manual_seed(0)
    loaded = load_model(f"{source}:m_{index}")
    base = loaded.model.eval()
    size = base.default_cfg.get("input_size", (3, 224, 224))
    x = torch.randn(2, *size)
    conv = aimgen.convert(base, torch.randn(1, *size), source_name=name, constructor_args=loaded.constructor_args,
                          base_weights=base.state_dict())
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    with torch.no_grad():
        diff = (aim.eval()(x) - base(x)).abs().max().item()
    aim.train()(x).float().square().mean().backward()
    if not diff <= 1e-4:
        raise AssertionError(f"base weights in, output differs by {diff:.2e}")
    tapped, seen = conv.plan.layer_counts()
    return (f"ok taps={tapped}/{seen} diff={diff:.1e} lines={len(conv.source.splitlines())} "
            f"{time.time() - start:.0f}s")


def main(names: list[str]) -> int:
    text = "import timm\n" + "".join(
        f"def m_{i}():\n    return timm.create_model({n!r}, num_classes=10)\n" for i, n in enumerate(names))
    run(text, [(n, lambda path, i=i, n=n: check(path, i, n)) for i, n in enumerate(names)], "timm_models.py")
    return 0


if __name__ == "__main__":
    sets = {"--more": MORE, "--third": THIRD}
    sys.exit(main(sets[sys.argv[1]] if sys.argv[1:2] and sys.argv[1] in sets else sys.argv[1:] or MODELS))
