"""The convert issue's promises on real torchvision models: resnet50 and vgg16 (the article's
models) and mobilenet_v2 (depthwise convs)."""
from __future__ import annotations

import math
import sys

import pytest
import torch
import torchvision
from torch import nn

import aimgen
from aimgen.validate import imported_modules, validate_file

ALLOWED = {"torch"} | set(sys.stdlib_module_names)


def _weight_layers(model):
    return [n for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear))]


@pytest.fixture(scope="module")
def resnet50():
    model = torchvision.models.resnet50(num_classes=120)
    return model, aimgen.convert(model, torch.randn(1, 3, 224, 224), source_name="resnet50")


def test_resnet50_plan_matches_the_article_budget(resnet50):
    model, result = resnet50
    plan = result.plan
    assert plan.memory_shape == (1024, 7, 7)
    assert abs(math.prod(plan.memory_shape) - 50_000) < 500
    assert len(_weight_layers(model)) == 54
    assert sorted(t.qualname for t in plan.taps) == sorted(_weight_layers(model))
    assert not plan.skipped
    assert 200_000 <= plan.delta <= 600_000
    built = result.build()
    counted = sum(p.numel() for p in built.parameters())
    assert counted == plan.aim_params
    assert counted - sum(p.numel() for p in model.parameters()) == plan.delta


def test_resnet50_file_is_valid_in_a_fresh_process(resnet50, tmp_path):
    _, result = resnet50
    out = tmp_path / "resnet50_aim.py"
    result.write(out, onnx=False)
    checks = {c.name: c for c in result.validation}
    assert all(c.ok for c in checks.values())
    assert checks["parameter count"].numbers["counted"] == result.plan.aim_params
    assert imported_modules(out) <= ALLOWED


@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v2"])
def test_every_conv_and_linear_is_tapped_within_5_percent(name):
    model = getattr(torchvision.models, name)(num_classes=120)
    result = aimgen.convert(model, torch.randn(1, 3, 224, 224), source_name=name)
    plan = result.plan
    assert sorted(t.qualname for t in plan.taps) == sorted(_weight_layers(model))
    assert plan.delta <= 0.05 * plan.base_params
    assert sum(p.numel() for p in result.build().parameters()) == plan.aim_params
    if name == "mobilenet_v2":
        depthwise = [t for t in plan.taps if t.groups > 1]
        assert depthwise and all(t.groups == t.in_size for t in depthwise)
        assert all(plan.width(t).kernel == "pointwise" for t in depthwise)  # the memory's center tap
        assert "GroupedMemoryConv2d(" in result.source


def test_depthwise_conv_sees_memory_in_every_group():
    """Each group's memory slot must carry the memory: perturbing the memory changes every
    output channel of a depthwise conv whose memory weights are non-zero."""
    class DW(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)

        def forward(self, x):
            return self.dw(x)

    for form, kernel, shape in (("sum", "pointwise", (4, 1, 1, 1)), ("sum", "full", (4, 1, 3, 3)),
                                ("literal", "full", (4, 2, 3, 3))):
        result = aimgen.convert(DW(), torch.randn(1, 4, 8, 8), updates="none", memory_size=64, form=form,
                                group_kernel=kernel)
        model = result.build().eval()
        reads = model.dw.memory_weight if form == "sum" else model.dw.weight
        assert reads.shape == shape
        x = torch.randn(1, 4, 8, 8)
        with torch.no_grad():
            base = model.forward_with_memory(x, model.memory.read())[0]
            other = model.forward_with_memory(x, model.memory.read() + 1.0)[0]
        changed = (base - other).abs().flatten(2).amax(2)[0]
        assert bool((changed > 1e-4).all()), (form, kernel, changed)


@pytest.fixture(scope="module")
def mobilenet():
    model = torchvision.models.mobilenet_v2(num_classes=10)
    return aimgen.convert(model, torch.randn(1, 3, 64, 64)).build()


def test_dropout_keeps_train_and_eval_behaviour(mobilenet):
    x = torch.randn(2, 3, 64, 64)
    mobilenet.eval()
    with torch.no_grad():
        assert torch.equal(mobilenet(x), mobilenet(x))
    mobilenet.train()
    mobilenet.memory.carry_rate = 0.0  # isolate dropout from the carry
    with torch.no_grad():
        a, b = mobilenet(x), mobilenet(x)
    assert not torch.allclose(a, b), "dropout must stay active in train()"
    mobilenet.memory.carry_rate = 0.1


def test_carry_changes_eval_output_and_reset_restores_it(mobilenet):
    x = torch.randn(4, 3, 64, 64)
    mobilenet.reset_memory()
    mobilenet.eval()
    snapshot = {k: v.clone() for k, v in mobilenet.state_dict().items()}
    with torch.no_grad():
        before = mobilenet(x)
    mobilenet.train()
    with torch.no_grad():
        for _ in range(3):
            mobilenet(torch.randn(4, 3, 64, 64))
    carry = mobilenet.memory.carry.clone()
    assert carry.abs().sum() > 0
    mobilenet.load_state_dict({**snapshot, "memory.carry": carry})  # undo BatchNorm's running stats only
    mobilenet.eval()
    with torch.no_grad():
        carried = mobilenet(x)
        again = mobilenet(x)
    assert torch.equal(carried, again), "eval() must not move the carry"
    assert (carried - before).abs().max() > 1e-6
    mobilenet.reset_memory()
    with torch.no_grad():
        assert torch.allclose(mobilenet(x), before, atol=1e-6)
    assert "memory.carry" in mobilenet.state_dict()


def test_training_backward_reaches_memory(mobilenet):
    mobilenet.train()
    mobilenet.zero_grad()
    mobilenet(torch.randn(2, 3, 64, 64)).sum().backward()
    assert mobilenet.memory.seed.grad is not None and mobilenet.memory.seed.grad.abs().sum() > 0
    assert mobilenet.features[0][0].memory_weight.grad.abs().sum() > 0


def test_same_input_gives_byte_identical_source():
    model = torchvision.models.resnet18(num_classes=10)
    a = aimgen.convert(model, torch.randn(1, 3, 64, 64)).source
    b = aimgen.convert(torchvision.models.resnet18(num_classes=10), torch.randn(1, 3, 64, 64)).source
    assert a == b
    for banned in ("/tmp", "/work", "2026", "0x"):
        assert banned not in a


def test_googlenet_with_its_auxiliary_heads_converts_and_returns_what_it_returned(tmp_path):
    """torchvision's GoogLeNet runs and returns its two auxiliary heads in train() only, as a
    library namedtuple (GoogLeNetOutputs): they are called under ``if self.training:``, the
    namedtuple is written in the file (no torchvision import), and with base weights both modes
    compute what the base model computes; the file validates in a fresh process."""
    torch.manual_seed(0)
    model = torchvision.models.googlenet(num_classes=7, init_weights=True)
    result = aimgen.convert(model, torch.randn(1, 3, 96, 96), source_name="googlenet",
                            base_weights=model.state_dict())
    assert result._traced.train_heads == ["aux1", "aux2"]
    heads = [n for n in _weight_layers(model) if n.startswith("aux")]
    assert sorted(s.qualname for s in result.plan.skipped) == sorted(heads)
    assert sorted(t.qualname for t in result.plan.taps) == sorted(set(_weight_layers(model)) - set(heads))
    src = result.source
    assert "        if self.training:\n            aux1 = self.aux1(x)\n" in src
    assert "            return GoogLeNetOutputs(x, aux2, aux1), memory.final()\n" in src
    aim = result.build()
    aim.load_state_dict(result.state_dict)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert (aim.eval()(x) - model.eval()(x)).abs().max() <= 1e-5
        model.train(), aim.train()
        for m in (model, aim):   # dropout off, batch statistics on: the same function in train()
            for d in m.modules():
                if isinstance(d, nn.Dropout):
                    d.eval()
        got, want = aim(x), model(x)
    assert got._fields == want._fields == ("logits", "aux_logits2", "aux_logits1")
    assert max((g - w).abs().max() for g, w in zip(got, want)) <= 1e-5
    out = tmp_path / "googlenet_aim.py"
    result.write(out, onnx=False)
    assert all(c.ok for c in result.validation) and imported_modules(out) <= ALLOWED


def test_swin_reads_the_memory_in_its_window_attention_and_updates_it_at_every_stage(tmp_path):
    """torchvision's Swin hands its attention's qkv and proj weights to an fx-wrapped function
    (they were not tapped: 29 of 53) and holds its stages as (N, H, W, C) maps (one update
    block, at the stem). Every layer now reads the memory, an update block ends each stage,
    the file imports no torchvision, and with base weights it computes the base function at
    the example size and another, and in ONNX."""
    torch.manual_seed(0)
    model = torchvision.models.swin_t(num_classes=7).eval()
    result = aimgen.convert(model, torch.randn(1, 3, 96, 96), source_name="swin_t",
                            base_weights=model.state_dict())
    assert sorted(t.qualname for t in result.plan.taps) == sorted(_weight_layers(model))
    assert [(u.label, u.kind) for u in result.plan.updates] == [
        ("features.1.1:add_6", "spatial_last"), ("features.3.1:add_13", "spatial_last"),
        ("features.5.5:add_34", "spatial_last"), ("permute:permute_55", "spatial")]
    assert "        qkv = self.qkv(x, per_window(memory.features(" in result.source
    assert "        shift_h = 3 * (pad_h > 7)\n" in result.source
    torch.manual_seed(1)   # the same input gives the same bytes, whatever the global seed
    again = aimgen.convert(torchvision.models.swin_t(num_classes=7).eval(), torch.randn(1, 3, 96, 96),
                           source_name="swin_t")
    assert again.source == result.source
    aim = result.build()
    aim.load_state_dict(result.state_dict)
    with torch.no_grad():
        for size in (96, 128, 288):
            x = torch.randn(2, 3, size, size)
            assert (aim.eval()(x) - model(x)).abs().max() <= 1e-5
        # at 96 and at twice that the last stage is one 7 x 7 window a sample, at 288 four: its
        # attention's rows are windows, and each sample's reads its own memory (memory weights
        # not zero here; the rows were taken for the batch, and this raised at batch 2)
        fresh = result.build().eval()
        x = torch.randn(2, 3, 288, 288)
        alone = torch.cat([fresh(x[:1]), fresh(x[1:])])
        assert (fresh(x) - alone).abs().max() <= 1e-5
    aim.train()(torch.randn(2, 3, 96, 96)).square().mean().backward()
    out = tmp_path / "swin_t_aim.py"
    result.write(out)
    assert all(c.ok for c in result.validation), [c for c in result.validation if not c.ok]
    assert any(c.name.startswith("onnxruntime parity") for c in result.validation)
    assert imported_modules(out) <= ALLOWED


@pytest.mark.slow
def test_video_swin_reads_the_memory_in_every_layer_and_updates_once_per_stage():
    """Swin3D's attention (its (392, 392) index made by a method that registers it: the module
    was kept whole, 29 of 53 layers tapped) is traced through; in its last stage one window
    covers the whole map, and the attention's token rows there are no stage of their own."""
    torch.manual_seed(0)
    model = torchvision.models.video.swin3d_t(num_classes=5).eval()
    result = aimgen.convert(model, torch.randn(1, 3, 8, 64, 64), source_name="swin3d_t",
                            base_weights=model.state_dict())
    assert sorted(t.qualname for t in result.plan.taps) == sorted(_weight_layers(model))
    assert [u.label for u in result.plan.updates] == [
        "features.0.1:add_6", "features.2.1:add_13", "features.4.5:add_34", "permute_55"]
    assert "define_relative_position_index(window_size=[8, 7, 7])" in result.source
    aim = result.build()
    aim.load_state_dict(result.state_dict)
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-5


def test_fcn_update_blocks_end_each_stage_of_its_dilated_backbone():
    """FCN's layer2 to layer4 keep one size (dilation) and its outputs are upsampled to the
    input's size, read by no conv. The input's size still counts as a map's (a conv reads it);
    a padded map does not (see test_plan), and this placement stays as it was."""
    model = torchvision.models.segmentation.fcn_resnet50(num_classes=5, weights_backbone=None, aux_loss=True)
    plan = aimgen.convert(model.eval(), torch.randn(1, 3, 96, 96), source_name="fcn").plan
    assert [u.label for u in plan.updates] == ["backbone.relu", "backbone.layer1.2.relu", "backbone.layer3.5.relu",
                                               "classifier.4", "aux_classifier.3"]
