"""timm models (random weights, no download): efficient CNNs within the default budget with every
layer tapped, kept leaves copied so outputs stay standalone, weight-standardised convs tapped,
constructor arguments recorded where modules do not store them. The default run converts two;
the rest run with ``-m slow``."""
from __future__ import annotations

import pytest
import torch

import random_models as rm
from aimgen.loader import InputSpec
from aimgen.records import recording

timm = pytest.importorskip("timm")

BUDGET = ["efficientnet_b0", "edgenext_xx_small", "mobilenetv3_small_100", "convnext_atto"]


def convert(name, size, **kwargs):
    torch.manual_seed(0)
    with recording() as records:
        model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    return model, rm.check_conversion(model, [InputSpec((1, 3, size, size))], source_name=name, flat=False,
                                      constructor_args=records.by_name(model), **kwargs)


def weight_layers(model):
    from aimgen.taps import REGISTRY
    return {n for n, m in model.named_modules() if REGISTRY.is_weight_layer(m)}


@pytest.mark.parametrize("name", [n if n == "efficientnet_b0" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in BUDGET])
def test_efficient_cnns_fit_the_default_budget_with_every_layer_tapped(name):
    model, conv = convert(name, 64)
    # a layer whose forward torch.fx traces into (timm's Linear subclass) is tapped as the
    # F.linear on its weight: its qualname is the weight's
    tapped = {t.qualname.removesuffix(".weight") for t in conv.plan.taps}
    assert tapped == weight_layers(model) and not conv.plan.skipped
    assert conv.plan.delta <= 0.05 * conv.plan.base_params
    grouped = [t for t in conv.plan.taps if t.groups > 1]
    assert grouped and all(conv.plan.width(t).kernel == "pointwise" for t in grouped)


def test_a_library_layer_torch_fx_cannot_trace_is_copied_and_listed():
    model, conv = convert("tf_efficientnetv2_b0", 64)
    assert "import timm" not in conv.source and "class Conv2dSame(nn.Conv2d):" in conv.source
    listed = {s.qualname: s.reason for s in conv.plan.skipped}
    assert set(listed) == {"conv_stem", "blocks.1.0.conv_exp", "blocks.2.0.conv_exp", "blocks.3.0.conv_dw",
                           "blocks.5.0.conv_dw"}
    assert all("kept whole" in r and "padding.py" in r for r in listed.values())
    assert {t.qualname for t in conv.plan.taps} | set(listed) == weight_layers(model)


@pytest.mark.slow
def test_weight_standardised_convs_are_tapped():
    model, conv = convert("nfnet_l0", 64)
    assert {t.qualname.split(":")[0] for t in conv.plan.taps} >= weight_layers(model) - {"head.fc"}
    assert not conv.plan.skipped and sum(t.computed_weight for t in conv.plan.taps) >= 50


@pytest.mark.slow
def test_levit_whose_attention_keeps_its_arguments_elsewhere_converts():
    _, conv = convert("levit_128s", 224, depends=("timm",))
    assert conv.plan.taps and "LevitMlp" in conv.code.block_classes or conv.code.block_classes
    # its attention is kept whole from the installed library, and the header says so
    assert "import timm" in conv.source or "from timm" in conv.source
    assert "timm" in conv.source.split("import math")[0]


@pytest.mark.slow
def test_a_vit_with_optional_forward_arguments_converts():
    _, conv = convert("vit_tiny_patch16_224", 224)
    assert conv.plan.updates and conv.plan.delta <= 0.05 * conv.plan.base_params
    assert "def forward(self, x):" in conv.source


@pytest.mark.slow
def test_an_attention_kept_whole_for_its_index_table_has_no_taps_inside():
    """TinyViT's attention keeps a (196, 196) integer index table out of state_dict: too large to
    write, so the module is built whole by its own constructor. torch.export inlines its forward
    all the same; its Linear layers are listed, not tapped (built whole, they are plain Linears
    that cannot read the memory; tapped, the generated model failed on its first call)."""
    model, conv = convert("tiny_vit_5m_224", 224)
    inside = [s for s in conv.plan.skipped if s.qualname.startswith("stages.2.blocks.0.attn.")]
    assert {s.qualname for s in inside} == {"stages.2.blocks.0.attn.qkv", "stages.2.blocks.0.attn.proj"}
    assert all("inside stages.2.blocks.0.attn, which is kept whole" in s.reason for s in inside)


def test_relative_position_mlps_that_read_their_owner_s_table_convert():
    """timm's relative-position MLP (ViT-RelPos, Swin V2) is handed a table its parent holds,
    from a method (``get_bias``), not a forward: the block classes failed to reach it. The table
    (timm fills it in ``reset_parameters``) is written as timm computes it, so nothing is kept
    whole and the output imports torch only; the MLP's layers read a table, not a sample."""
    _, conv = convert("test_vit_relpos", 160)
    assert "mlp = self.rel_pos.mlp(self.rel_pos.rel_coords_log)\n" in conv.source   # (the block's value: after it)
    assert "kept_whole" not in conv.source and conv.plan.layer_counts() == (38, 56)
    assert {s.reason.split(" (")[0] for s in conv.plan.skipped} == {"its input is the same whatever the model's input"}


@pytest.mark.slow
def test_a_layer_that_makes_its_table_on_its_first_call_converts():
    """ConViT's GPSA keeps a (1, 1, 1, 3) buffer and makes its (1, 196, 196, 3) table on the
    first call. It was refused: the table an earlier run made did not match a rebuilt layer."""
    _, conv = convert("convit_tiny", 224)
    assert len(conv.plan.taps) == 70   # its attention's Linear layers too
