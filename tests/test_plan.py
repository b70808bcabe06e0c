"""Planning: cut nodes, memory grid, budget, tap widths, update placement, pattern errors; the
plan is an immutable value (facts, decisions, options)."""
from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
import torch.fx as fx
from torch.fx.passes.shape_prop import ShapeProp
import torch.nn.functional as F
import torchvision
from torch import nn

import aimgen
from aimgen.errors import PlanError
from aimgen.plan import cut_nodes, linear_unit


class Branchy(nn.Module):
    """Two stages; a residual branch inside the first."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.c = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.a(x))
        y = torch.relu(self.b(x)) + x
        z = torch.relu(self.c(self.down(y)))
        return self.fc(z.mean((2, 3)))


def test_cut_nodes_exclude_nodes_inside_a_branch():
    graph = fx.symbolic_trace(Branchy()).graph
    cuts = cut_nodes(graph)
    assert {"relu", "add", "relu_2"} <= cuts  # block input, block output, last stage
    assert "b" not in cuts and "relu_1" not in cuts  # jumped over by the residual edge


def test_a_shape_read_late_is_no_edge_that_jumps_over_the_path():
    """torch.export puts a shape read where it is used (CvT reads a stage's input shape at the
    stage's end): the read is no data edge, so the nodes it spans are still on the main path."""
    class LateShape(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.b = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            y = self.a(x)
            z = self.b(torch.relu(y))
            return z.reshape(y.shape[0], -1)

    traced = fx.symbolic_trace(LateShape())
    ShapeProp(traced).propagate(torch.randn(1, 3, 8, 8))
    assert [n.name for n in traced.graph.nodes][4] == "getattr_1"   # y.shape, read after b
    assert {"a", "relu", "b"} <= cut_nodes(traced.graph)


def test_updates_go_at_the_end_of_each_resolution_stage():
    plan = aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16)).plan
    assert [u.node for u in plan.updates] == ["add", "relu_2"]
    assert plan.memory_shape[1:] == (8, 8)  # the smallest map larger than 1x1


def test_a_stage_that_ends_inside_the_block_that_changes_the_size_ends_at_the_block_before():
    """torchvision's mobilenet_v2: a stride-2 inverted residual has no residual sum, so its
    expanded map (six times the channels) is on the main path, the last map of the old size
    before its strided depthwise conv. The stage ends at the block before (the last block's
    output), as ResNet's ends at its last block's output, not inside the next block; the
    update blocks pool 16 to 96 channels instead of 96 to 576. The stem and the last conv are
    no block (only the features container holds them and the next map)."""
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    plan = aimgen.convert(model, torch.randn(1, 3, 64, 64)).plan
    assert [u.label for u in plan.updates] == \
        ["features.1.conv.2", "features.3:add", "features.6:add_2", "features.13:add_7", "features.18.2"]
    assert [u.features for u in plan.updates] == [16, 24, 32, 96, 1280]


class _StageWithItsDownsample(nn.Module):
    """A stage as Swin's BasicLayer writes it: its blocks, then the layer that halves the size,
    in one module."""

    def __init__(self, c: int):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1) for _ in range(2)])
        self.down = nn.Conv2d(c, c, 2, stride=2)

    def forward(self, x):
        for block in self.blocks:
            x = torch.relu(block(x))
        return self.down(x)


class _TwoStages(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stage1 = _StageWithItsDownsample(8)
        self.stage2 = _StageWithItsDownsample(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.stage2(self.stage1(self.stem(x))).mean((2, 3)))


def test_a_module_that_runs_a_stage_before_changing_the_size_is_no_block():
    """A module of two sizes whose layers at the old size are a stage's blocks (Swin's
    BasicLayer, a decoder's ASPP): its stage ends inside it, before the size changes, not at the
    map before it (which is the stage's start)."""
    plan = aimgen.convert(_TwoStages(), torch.randn(1, 3, 16, 16)).plan
    assert [u.label for u in plan.updates] == ["stage1:relu_1", "stage2:relu_3", "stage2.down"]


class _TwoPools(nn.Module):
    """A block of two sizes with no layer of its own: two runs of its input's size, each pooled,
    the second made from the first's pooled map too (a detour, so the first run ends)."""

    def forward(self, x):
        y = F.avg_pool2d(torch.relu(x), 2)
        z = torch.tanh(x) + F.interpolate(y, size=x.shape[2:])
        return F.max_pool2d(z, 2) + y


class _SkipOverTwoPools(nn.Module):
    """A long skip over the block (no main path there): each of its runs of the input's size
    ends before the block, at the same map."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pools = _TwoPools()
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        s = self.stem(x)
        y = self.mid(self.pools(s))
        return self.out(torch.cat([s, F.interpolate(y, scale_factor=2.0)], 1))


def test_runs_that_end_before_one_block_make_one_update_block():
    model = _SkipOverTwoPools().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 16, 16), base_weights=model.state_dict())
    assert [u.node for u in conv.plan.updates] == ["stem", "avg_pool2d", "mid", "cat"]   # stem once, not 3x
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)


def test_memory_size_and_budget():
    model = Branchy()
    big = aimgen.convert(model, torch.randn(1, 3, 16, 16), memory_size=512, budget=10.0).plan
    assert big.memory_shape == (8, 8, 8)
    auto = aimgen.convert(model, torch.randn(1, 3, 16, 16), budget=0.5).plan
    assert auto.delta <= 0.5 * auto.base_params
    with pytest.raises(PlanError, match=r"memory_size=4096 costs .* over budget=0.5.*Lower memory_size") as err:
        aimgen.convert(model, torch.randn(1, 3, 16, 16), memory_size=4096, budget=0.5)
    assert err.value.field == "memory_size"  # the CLI names the flag


class _DeadWeight(nn.Module):
    """A stage the forward never calls (smp's PSPNet keeps its encoder's last two): kept, so it
    counts as base parameters, but the budget is a share of what the forward uses."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.head = nn.Linear(64, 10)
        self.unused = nn.Linear(200, 200)   # 40,200 parameters, never called

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def test_the_budget_is_a_share_of_the_parameters_the_forward_uses():
    model = _DeadWeight()
    used = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("unused"))
    plan = aimgen.convert(model, torch.randn(1, 3, 8, 8), budget=0.5).plan
    assert plan.base_params == sum(p.numel() for p in model.parameters()) and plan.never_called == ("unused",)
    assert plan.delta <= 0.5 * used
    with pytest.raises(PlanError, match=rf"over budget=0.05 \(\d+ of {used:,} base parameters the forward uses\)") as err:
        aimgen.convert(model, torch.randn(1, 3, 8, 8), memory_size=64, budget=0.05)
    suggested = float(re.search(r"raise budget to ([0-9]+\.[0-9]+)", err.value.hint).group(1))
    assert aimgen.convert(model, torch.randn(1, 3, 8, 8), memory_size=64, budget=suggested + 1e-4).plan.delta \
        <= (suggested + 1e-4) * used   # the hint's budget is enough, and no more than that


def test_smallest_configuration_is_reported_for_tiny_models():
    plan = aimgen.convert(nn.Sequential(nn.Linear(4, 3)), torch.randn(1, 4)).plan
    assert plan.memory_shape == (1,)
    assert any("smallest configuration" in n for n in plan.notes)


def test_full_tap_width_reshapes_the_whole_memory_to_fill_each_map():
    plan = aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16), tap_width="full", memory_size=1024,
                          budget=100.0).plan
    by_name = {t.qualname: plan.width(t).k for t in plan.taps}
    assert by_name["a"] == math.ceil(1024 / (16 * 16))  # 4 channels at 16x16
    assert by_name["c"] == 1024 // 64                   # 16 channels at 8x8
    assert by_name["fc"] == 1024


def test_delta_is_the_sum_of_its_parts_and_matches_the_built_model():
    result = aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16), memory_size=256, budget=10.0)
    plan = result.plan
    assert plan.delta == plan.memory_params + plan.tap_params + plan.update_params
    assert sum(p.numel() for p in result.build().parameters()) == plan.aim_params
    for t in plan.taps:
        assert plan.tap_params_of(t) == t.out_size * plan.width(t).k * math.prod(t.kernel)


def test_layer_selection_and_errors():
    plan = aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16), layers=["Conv2d"], skip=["down"]).plan
    assert sorted(t.qualname for t in plan.taps) == ["a", "b", "c"]
    reasons = {s.qualname: s.reason for s in plan.skipped}
    assert reasons == {"down": "excluded by skip='down'", "fc": "not selected by layers="}
    with pytest.raises(PlanError, match=r"layers='Conv3d' matches no weight layer.*Conv2d, Linear"):
        aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16), layers=["Conv3d"])


def test_update_placement_options():
    x = torch.randn(1, 3, 16, 16)
    none = aimgen.convert(Branchy(), x, updates="none").plan
    assert none.updates == () and "updates='none'" in none.to_dict()["no_update_blocks"]
    assert [u.node for u in aimgen.convert(Branchy(), x, updates="add").plan.updates] == ["add"]
    # the memory is one variable rewritten in program order: an update inside a branch is fine
    assert [u.node for u in aimgen.convert(Branchy(), x, updates="relu_1").plan.updates] == ["relu_1"]
    with pytest.raises(PlanError, match="matches no operation"):
        aimgen.convert(Branchy(), x, updates="nothing*")


def test_the_plan_is_a_value():
    plan = aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16)).plan
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.rank = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.taps[0].in_size = 1
    assert plan.to_dict() == aimgen.convert(Branchy(), torch.randn(1, 3, 16, 16)).plan.to_dict()


class UNet(nn.Module):
    """Encoder, bottleneck, ConvTranspose2d decoder with skip concatenations: no node but the
    input and the output is on every path, so the main path gives no stage ends."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.dec2 = nn.Conv2d(32, 8, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.dec1 = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = torch.relu(self.enc1(x))
        e2 = torch.relu(self.enc2(F.max_pool2d(e1, 2)))
        m = torch.relu(self.mid(F.max_pool2d(e2, 2)))
        d2 = torch.relu(self.dec2(torch.cat([self.up2(m), e2], 1)))
        d1 = torch.relu(self.dec1(torch.cat([self.up1(d2), e1], 1)))
        return self.head(d1)


def test_a_unet_gets_an_update_block_at_every_resolution_stage_in_program_order():
    plan = aimgen.convert(UNet(), torch.randn(1, 3, 32, 32)).plan
    assert [u.label for u in plan.updates] == ["relu", "relu_1", "relu_2", "relu_3", "relu_4"]
    assert [u.shape[2:] for u in plan.updates] == [(32, 32), (16, 16), (8, 8), (16, 16), (32, 32)]


class ChannelsLast(nn.Module):
    """Swin's layout: a conv stem, then stages that hold (N, H, W, C) maps, each merged to half
    the size by a Linear on 2x2 patches (torchvision's PatchMerging)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.mix1 = nn.Linear(8, 8)
        self.merge = nn.Linear(32, 16)
        self.mix2 = nn.Linear(16, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x).permute(0, 2, 3, 1)
        x = x + torch.relu(self.mix1(x))
        n, h, w, c = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).flatten(3)
        x = self.merge(x)
        x = x + torch.relu(self.mix2(x))
        return self.head(x.mean((1, 2)))


def test_a_channels_last_stage_gets_its_update_block_pooled_channels_first():
    model = ChannelsLast().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 32, 32), base_weights=model.state_dict())
    plan = conv.plan
    assert [(u.label, u.kind, u.features, u.shape[1:3]) for u in plan.updates] == [
        ("add", "spatial_last", 8, (8, 8)), ("add_1", "spatial_last", 16, (4, 4))]
    assert "pool_to_grid(x.movedim(-1, 1), (8, 8))" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(3, 3, 64, 64)  # another size: the stages are found by symbolic sizes
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)
    # with its own random memory weights (base weights give zeros: the base function) the
    # memory the update blocks write is read, and they learn
    fresh = aimgen.convert(model, torch.randn(1, 3, 32, 32)).build().train()
    fresh(x).square().sum().backward()
    assert all(fresh.get_submodule(f"update_{u.label}").bias_write.grad.abs().sum() > 0 for u in plan.updates)


class Tokens(ChannelsLast):
    """Hugging Face Swin's layout: the same layers, the stages over (N, L, C) tokens, each
    merged to a quarter of the tokens."""

    def forward(self, x):
        x = self.stem(x)
        n, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = x + torch.relu(self.mix1(x))
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h * w // 4, 4 * c)
        x = self.merge(x)
        x = x + torch.relu(self.mix2(x))
        return self.head(x.mean(1))


def test_token_stages_after_a_conv_stem_get_update_blocks_from_their_mean():
    model = Tokens().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 32, 32), base_weights=model.state_dict())
    assert [(u.label, u.kind, u.shape) for u in conv.plan.updates] == [
        ("stem", "spatial", (1, 8, 8, 8)), ("add", "tokens", (1, 64, 8)), ("add_1", "tokens", (1, 16, 16))]
    assert "memory = self.update_add_1(memory, x.mean(1)[:, :, None, None])" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)


class Conditioned(nn.Module):
    """A denoiser: a timestep embedding (a side input) feeds every residual block."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(1, 8)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(3))
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x, t):
        emb = torch.relu(self.embed(t))[:, :, None, None]
        h = self.stem(x)
        h = h + torch.relu(self.blocks[0](h) + emb)
        h = self.down(h)
        for block in self.blocks[1:]:
            h = h + torch.relu(block(h) + emb)
        return self.out(h)


def test_a_side_input_reaching_every_block_does_not_hide_the_main_path():
    plan = aimgen.convert(Conditioned(), [torch.randn(1, 3, 16, 16), torch.randn(1, 1)]).plan
    assert [u.label for u in plan.updates] == ["add_1", "add_5"]  # each stage's last block output
    assert [u.shape[2:] for u in plan.updates] == [(16, 16), (8, 8)]


def test_update_placement_does_not_depend_on_the_example_size():
    at = [[u.node for u in aimgen.convert(UNet(), torch.randn(1, 3, s, s)).plan.updates] for s in (32, 64)]
    assert at[0] == at[1]


def test_linear_unit():
    assert linear_unit((1024, 7, 7)) == 49
    assert linear_unit((100,)) == 10
    assert linear_unit((1, 16, 16)) == 16


def test_a_layer_whose_input_has_no_batch_axis_is_skipped():
    class BatchMean(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):  # x: (N, T, D); fc reads (T, D), the mean over the batch
            return self.out(x + self.fc(x.mean(0))).mean(1)

    plan = aimgen.convert(BatchMean(), torch.randn(2, 5, 8)).plan
    assert [t.qualname for t in plan.taps] == ["out"]
    assert {s.qualname: s.reason for s in plan.skipped}["fc"] == (
        "input is not batched (N, ..., D) with the batch first, nor (L, N, ..., D)")


def _project(x, weight, bias):
    return torch.nn.functional.linear(x, weight, bias) * 2


torch.fx.wrap("_project")


def test_a_layer_whose_weight_goes_into_an_opaque_function_is_listed_with_the_function():
    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)   # used only through _project, like Swin's attention
            self.unused = nn.Linear(8, 8)  # never used: not part of the traced model
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(_project(x, self.proj.weight, self.proj.bias))

    plan = aimgen.convert(Opaque(), torch.randn(2, 8)).plan
    assert [t.qualname for t in plan.taps] == ["out"]
    assert [s.qualname for s in plan.skipped] == ["proj"]
    assert "its weight goes into _project, which aimgen does not widen" in plan.skipped[0].reason
    assert plan.layer_counts() == (1, 2)


def test_shape_reads_used_late_do_not_hide_the_main_path():
    class ShapeLate(nn.Module):  # like torchvision's ViT: n = x.shape[0], used after the stem
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 4, stride=4)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            n = x.shape[0]
            y = torch.relu(self.stem(x))
            return self.fc(y.reshape(n, 8, -1).mean(-1))

    plan = aimgen.convert(ShapeLate(), torch.randn(2, 3, 16, 16)).plan
    assert [u.label for u in plan.updates] == ["relu"]


class DeadEnd(nn.Module):
    """A last stage whose feature map nothing reads (as PiT's last stage reshapes one)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.a(x)
        self.down(x).flatten(2)  # computed, never used
        return self.fc(x.mean((2, 3)))


def test_no_update_block_goes_on_a_value_the_model_discards():
    conv = aimgen.convert(DeadEnd(), torch.randn(1, 3, 16, 16))
    assert [u.node for u in conv.plan.updates] == ["a"]
    model = conv.build().eval()
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    flat = aimgen.convert(DeadEnd(), torch.randn(1, 3, 16, 16), options=aimgen.Options(flat=True))
    assert [u.node for u in flat.plan.updates] == ["a"]


class _EmptyStage(nn.Module):
    """segmentation_models_pytorch's timm encoders: an empty (N, 0, H, W) stand-in for a stage
    the backbone lacks, the last of its size before the encoder goes down (a U-Net: a long
    skip, so every run of one size is a stage)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, x):
        a = self.conv1(x)
        dummy = torch.empty(x.shape[0], 0, x.shape[2], x.shape[3], dtype=x.dtype)
        b = self.conv2(F.max_pool2d(a, 2))
        up = F.interpolate(b, scale_factor=2.0)
        return self.conv3(torch.cat([up, a, dummy], 1))


def test_an_empty_tensor_is_no_feature_map_to_update_from():
    import aimgen

    model = _EmptyStage().eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict())
    assert conv.plan.updates and all(u.features > 0 for u in conv.plan.updates)
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-6


class _Head(nn.Module):
    """A causal LM's tail in small: the only tapped layer is the head (the blocks before it are
    kept whole), and its logits are cast and scaled after it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Linear(8, 6)

    def forward(self, x):
        logits = self.head(self.body(x)).float()
        return logits * 2.0


def test_no_update_block_goes_after_the_last_tapped_layer():
    """Placed on the cast logits (transformers' Mamba), an update block wrote a memory no layer
    reads: its weights never got a gradient, and validation refused the model."""
    plan = aimgen.convert(_Head(), torch.randn(1, 3, 8), leaf=["body"]).plan
    assert [t.qualname for t in plan.taps] == ["head"]
    assert not plan.updates


class _TwiceCalled(nn.Module):
    """``proj`` runs on the tokens (one row a sample) and again on their mean over the batch (no
    sample's rows), as RegionViT's attention ran on region tokens and on windows before those
    were read as windows."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        a = self.proj(x)
        w = self.proj(x.mean(0))
        return self.head(a + w)


def test_a_layer_called_twice_reads_the_memory_at_both_calls_or_at_neither():
    """The second call cannot read the memory (its rows are not samples): the first may not
    either (the generated model failed on the example input: MemoryLinear.forward() missing 'm')."""
    import random_models as rm
    from aimgen.loader import InputSpec

    torch.manual_seed(0)
    conv = rm.check_conversion(_TwiceCalled().eval(), [InputSpec((1, 4, 8))], source_name="twice")
    assert [t.qualname for t in conv.plan.taps] == ["head"]
    reasons = {s.reason for s in conv.plan.skipped if s.qualname == "proj"}
    assert any(r.startswith("it is called again where it cannot read the memory (input is not batched")
               and r.endswith("a layer reads it at every call or at none") for r in reasons), reasons


class _RawConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.weight)


def test_a_model_no_layer_of_which_can_read_the_memory_is_refused_with_why():
    """A memory nothing reads would change nothing (KarrasUnet's every conv is inside a module kept
    whole: a 50,176-float memory was added and no layer read it)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    with pytest.raises(PlanError, match=r"no layer of the model can read the memory: its 2 weight layer call\(s\) "
                                        r"are left as they are: 2 for excluded by skip='\*'\. Nothing was written"):
        aimgen.convert(model, [(1, 3, 8, 8)], skip=["*"])
    raw = nn.Sequential(_RawConv(), nn.Flatten()).eval()
    with pytest.raises(PlanError, match=r"no layer of the model can read the memory: it has no Conv or Linear call "
                                        r"outside the modules kept whole, 0 \(listed in leaf=\)\."):
        aimgen.convert(raw, [(1, 3, 8, 8)], leaf=["0"])


class _PaddedStride(nn.Module):
    """Hugging Face EfficientNet's downsampling: an explicit ZeroPad2d, then a strided conv. The
    padded map (17 x 17) is read by a conv, written by none: no stage of its own."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.down = nn.Conv2d(8, 8, 3, stride=2)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.conv(torch.relu(self.down(self.pad(x)))))
        return self.head(x.mean((2, 3)))


def test_a_map_padded_for_a_strided_conv_is_no_stage():
    plan = aimgen.convert(_PaddedStride(), torch.randn(1, 3, 16, 16)).plan
    assert [u.label for u in plan.updates] == ["relu", "relu_2"]


class _FoldedTokens(Tokens):
    """CvT's and SegFormer's layout: each stage's tokens are folded back into an (N, C, H, W)
    map at its end, where the next stage's conv embedding reads them."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(8, 8, 2, stride=2)
        self.mix2 = nn.Linear(8, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        for mix, conv in ((self.mix1, self.down), (self.mix2, None)):
            n, c, h, w = x.shape
            tokens = x.flatten(2).transpose(1, 2)
            tokens = tokens + torch.relu(mix(tokens))
            x = tokens.transpose(1, 2).reshape(n, c, h, w)
            if conv is not None:
                x = conv(x)
        return self.head(x.mean((2, 3)))


def test_tokens_folded_back_into_maps_leave_the_stages_to_the_maps():
    """Where the main path goes back to maps after its tokens, the tokens are the same
    resolution by another name: one update block a stage, not one for each form of it."""
    plan = aimgen.convert(_FoldedTokens(), torch.randn(1, 3, 32, 32)).plan
    assert [(u.label, u.kind) for u in plan.updates] == [("reshape", "spatial"), ("reshape_1", "spatial")]


def test_a_layer_whose_weight_a_functional_call_reads_is_listed_once():
    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Linear(2, 8)   # read as F.linear(table, self.mlp.weight): its input is a table
            self.register_buffer("coords", torch.randn(4, 2))
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(x + F.linear(self.coords, self.mlp.weight, self.mlp.bias).mean(0))

    plan = aimgen.convert(Table(), torch.randn(2, 8)).plan
    assert [s.qualname for s in plan.skipped] == ["mlp.weight"] and plan.layer_counts() == (1, 2)


class _TfPadded(nn.Module):
    """Hugging Face MobileNetV2's TF padding: each 3 x 3 conv reads its input padded by amounts
    computed from its size (`F.pad`, torch.export's `aten.pad`), three strided stages. At 16 x 16
    the last stage's 2 x 2 map is padded to 4 x 4, the size of the stage before."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 8, 8, 3, stride=2 if i % 2 else 1)
                                   for i in range(7))
        self.head = nn.Linear(8, 3)

    def forward(self, x, **kwargs):   # **kwargs: captured by torch.export, as Hugging Face's are
        for conv in self.convs:
            size, stride = x.shape[-1], conv.stride[0]
            pad = max(3 - stride, 0) if size % stride == 0 else max(3 - size % stride, 0)
            x = torch.relu(conv(F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))))
        return self.head(x.mean((2, 3)))


def test_maps_padded_for_a_conv_are_no_stage_where_torch_export_pads_them():
    """Hugging Face's MobileNetV2 had 28 update blocks for its 5 resolutions: its pads, aten's
    `pad.default` to torch.export, were not taken for pads, and their fake kernel took every
    size after them as a number, so a padded map and a stage of its size looked alike. One
    update block a resolution now, none at a pad, and the sizes stay symbolic."""
    result = aimgen.convert(_TfPadded(), torch.randn(1, 3, 16, 16))
    assert result._traced.capture == "torch.export"
    labels = [u.label for u in result.plan.updates]
    assert not [label for label in labels if "pad" in label], labels
    assert len(labels) == 4, labels      # 16 x 16, 8 x 8, 4 x 4, 2 x 2
    sizes = [n.meta["size"] for n in result._traced.graph.nodes if n.op == "call_module"]
    assert not sizes[-2][-1].isdigit()   # the last conv's width: symbolic, not 2


class _ConvAttention(nn.Module):
    """CvT's attention: its keys and values come from a strided depthwise conv over the tokens
    folded into a map (a map smaller than the stage's, inside the block)."""

    def __init__(self, c: int):
        super().__init__()
        self.kv = nn.Conv2d(c, c, 3, stride=2, padding=1, groups=c)
        self.q = nn.Linear(c, c)
        self.out = nn.Linear(c, c)

    def forward(self, tokens, h, w):
        n, _, c = tokens.shape
        kv = self.kv(tokens.transpose(1, 2).reshape(n, c, h, w)).flatten(2).transpose(1, 2)
        attn = torch.softmax(self.q(tokens) @ kv.transpose(1, 2) / c ** 0.5, -1)
        return self.out(attn @ kv)


class _ConvAttentionStages(nn.Module):
    """_FoldedTokens with CvT's blocks: two stages of tokens, each folded back into a map at its
    end; the second stage's map has the size of the first stage's keys and values."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.stage1 = nn.ModuleList([_ConvAttention(8), _ConvAttention(8)])
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.stage2 = nn.ModuleList([_ConvAttention(8)])
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        for stage in (self.stage1, self.stage2):
            n, c, h, w = x.shape
            tokens = x.flatten(2).transpose(1, 2)
            for block in stage:
                tokens = tokens + block(tokens, h, w)
            x = tokens.transpose(1, 2).reshape(n, c, h, w)
            if stage is self.stage1:
                x = self.down(x)
        return self.head(x.mean((2, 3)))


def test_maps_a_block_makes_of_its_tokens_are_no_stage():
    """CvT (Hugging Face's, lucidrains'): the maps of a block's key and value convs are jumped
    over by the tokens' residual sums, so they are no stage, though the next stage's maps have
    their size; shape reads of a stage's input, used at its end, do not hide its tokens."""
    model = _ConvAttentionStages().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 32, 32), base_weights=model.state_dict())
    assert [(u.label, u.kind, u.shape[2:]) for u in conv.plan.updates] == [
        ("reshape_2", "spatial", (8, 8)), ("reshape_4", "spatial", (4, 4))]
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)


class _MultiScaleHead(nn.Module):
    """SegFormer's layout: a decode head reads every stage's output, upsampled to the first
    stage's size, so the main path's first-stage size runs on into the head after the detour
    through the smaller stages."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Conv2d(3, 8, 3, padding=1)
        self.stage2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.stage3 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.proj1 = nn.Conv2d(8, 8, 1)
        self.proj2 = nn.Conv2d(16, 8, 1)
        self.proj3 = nn.Conv2d(16, 8, 1)
        self.fuse = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        s1 = torch.relu(self.stage1(x))
        s2 = torch.relu(self.stage2(s1))
        s3 = torch.relu(self.stage3(s2))
        p2 = F.interpolate(self.proj2(s2), size=s1.shape[2:], mode="bilinear")
        p3 = F.interpolate(self.proj3(s3), size=s1.shape[2:], mode="bilinear")
        return self.fuse(torch.cat([self.proj1(s1), p2, p3], 1))


def test_a_stage_the_main_path_leaves_for_other_sizes_ends_there():
    """The first stage's map is where the main path leaves for the smaller stages' sizes; that
    it comes back to the same size in the head does not make the two one stage. A gate
    computed at one smaller size inside a block (GhostNetV2) is no such detour."""
    model = _MultiScaleHead().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 16, 16), base_weights=model.state_dict())
    assert [(u.label, u.shape[2]) for u in conv.plan.updates] == [
        ("relu", 16), ("relu_1", 8), ("relu_2", 4), ("proj2", 8), ("interpolate", 16), ("proj3", 4), ("cat", 16)]
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)


class _DecodeHead(nn.Module):
    """SegFormer's decode head as one module: each stage's map projected and brought to the
    first stage's size, in turn, then fused."""

    def __init__(self):
        super().__init__()
        self.proj1 = nn.Conv2d(8, 8, 1)
        self.proj2 = nn.Conv2d(16, 8, 1)
        self.fuse = nn.Conv2d(16, 4, 1)

    def forward(self, s1, s2):
        p1 = F.interpolate(self.proj1(s1), size=s1.shape[2:], mode="bilinear")
        p2 = F.interpolate(self.proj2(s2), size=s1.shape[2:], mode="bilinear")
        return self.fuse(torch.cat([p1, p2], 1))


class _HeadOfOneBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Conv2d(3, 8, 3, padding=1)
        self.stage2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = _DecodeHead()

    def forward(self, x):
        s1 = torch.relu(self.stage1(x))
        return self.head(s1, torch.relu(self.stage2(s1)))


def test_a_detour_through_a_head_of_one_block_still_ends_the_stage_it_leaves():
    # the head's runs of the first size go on (one block, no detour between them), yet the
    # first stage's map is left for the second stage's size and ends its stage (Hugging Face's
    # SegFormer lost that update block when only the runs that end a stage were counted)
    plan = aimgen.convert(_HeadOfOneBlock(), torch.randn(1, 3, 16, 16)).plan
    assert [(u.label, u.shape[2]) for u in plan.updates] == [("relu", 16), ("head.proj2", 8), ("head:cat", 16)]


class _WrappedMultiScaleHead(nn.Module):
    """_MultiScaleHead inside a module of the user's: the encoder's stages and the head in one block."""

    def __init__(self):
        super().__init__()
        self.net = _MultiScaleHead()

    def forward(self, x):
        return self.net(x)


def test_a_stage_whose_output_the_next_stage_reads_ends_there_inside_one_block():
    # in one block, the head's projection of the second stage comes back to its size with no
    # detour; the third stage's strided conv read it before, so its stage ended there
    plan = aimgen.convert(_WrappedMultiScaleHead(), torch.randn(1, 3, 16, 16)).plan
    assert [(u.label, u.shape[2]) for u in plan.updates][:2] == [("net:relu", 16), ("net:relu_1", 8)]


class _TokensToTheHead(_ConvAttentionStages):
    """CvT's last stage: its tokens go to the classifier as they are, not folded into a map."""

    def forward(self, x):
        x = self.down(self._stage(self.stem(x), self.stage1))
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.stage2:
            tokens = tokens + block(tokens, h, w)
        return self.head(tokens.mean(1))

    def _stage(self, x, stage):
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in stage:
            tokens = tokens + block(tokens, h, w)
        return tokens.transpose(1, 2).reshape(n, c, h, w)


def test_a_last_stage_that_ends_in_tokens_gets_its_update_block_at_its_end():
    """Not at the map its tokens were made of, at the stage's start (which ended its size's run
    of maps on the main path)."""
    model = _TokensToTheHead().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 32, 32), base_weights=model.state_dict())
    assert [(u.label, u.kind, u.shape) for u in conv.plan.updates] == [
        ("reshape_2", "spatial", (1, 8, 8, 8)), ("add_2", "tokens", (1, 16, 8))]
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)


class _MapAttention(nn.Module):
    """vit-pytorch's CvT block: attention on maps, its keys and values from a strided conv (a
    map a quarter of the size), reshaped into sequences for the product; a residual sum."""

    def __init__(self, c: int):
        super().__init__()
        self.q = nn.Conv2d(c, c, 1)
        self.kv = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.q(x).reshape(n, c, h * w).transpose(1, 2)
        k, v = self.kv(x).chunk(2, dim=1)
        k, v = k.reshape(n, c, -1), v.reshape(n, c, -1).transpose(1, 2)
        attn = torch.softmax(torch.matmul(q, k) * c ** -0.5, -1)
        return x + self.out(torch.matmul(attn, v).transpose(1, 2).reshape(n, c, h, w))


class _MapAttentionStages(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.stage1 = nn.Sequential(_MapAttention(8), _MapAttention(8))
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.stage2 = _MapAttention(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(x.mean((2, 3)))


def test_the_maps_an_attention_makes_its_keys_and_values_of_are_no_stage():
    """The keys' and values' map is a quarter of the stage's, and a residual sum jumps over it
    as a U-Net's long skip jumps over its deeper levels; but it goes nowhere except into the
    attention's products, so it is the block's own."""
    model = _MapAttentionStages().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 32, 32), base_weights=model.state_dict())
    assert [(u.label, u.shape[2:]) for u in conv.plan.updates] == [("stage1.1:add_1", (8, 8)), ("stage2:add_2", (4, 4))]
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)



class _LinearAttention(nn.Module):
    """denoising-diffusion-pytorch's linear attention: softmax over queries and keys, learned
    memory tokens concatenated to the keys and values, a residual sum."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Conv2d(8, 24, 1)
        self.memory_kv = nn.Parameter(torch.randn(2, 1, 8, 2))
        self.out = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        qkv = self.qkv(x).chunk(3, dim=1)
        q, k, v = (qkv[i].reshape(n, c, h * w) for i in range(3))
        k = torch.cat([self.memory_kv[0].expand(n, -1, -1), k], -1)
        v = torch.cat([self.memory_kv[1].expand(n, -1, -1), v], -1)
        context = torch.einsum("bdn,ben->bde", k.softmax(dim=-1), v)
        out = torch.einsum("bde,bdn->ben", context, q.softmax(dim=-2) * c ** -0.5)
        return x + self.out(out.reshape(n, c, h, w))


def test_what_an_attention_makes_of_a_map_is_told_apart_from_what_a_conv_reads():
    """Queries, keys and values reach nothing but the attention's products, through reshapes,
    softmax, scaling and concatenated memory tokens; the block's input reaches a conv too."""
    from aimgen.plan import _attention_input

    graph = fx.symbolic_trace(_LinearAttention()).graph
    nodes = {n.name: n for n in graph.nodes}
    qkv = [n for n in graph.nodes if n.args and n.args[0] is nodes["chunk"]]
    assert len(qkv) == 3 and all(_attention_input(n) for n in qkv)
    assert not _attention_input(nodes["x"]) and not _attention_input(nodes["qkv"].args[0])
    assert not _attention_input(nodes["einsum_1"])  # the attention's output goes on to a conv


class _PooledGate(nn.Module):
    """GhostNetV2's block: its output gated by a branch computed at half the size (pooled,
    convolved, upsampled back): between the block's input and the gate's product the main path
    holds maps of one smaller size only."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.main = nn.Conv2d(8, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        gate = torch.sigmoid(self.gate(F.avg_pool2d(x, 2)))
        x = self.main(x) * F.interpolate(gate, size=x.shape[2:])
        return self.head(torch.relu(self.down(x)).mean((2, 3)))


class _PooledModuleGate(_PooledGate):
    """_PooledGate with its sigmoid a module, as timm's GhostNetV2 writes it (``gate_fn``)."""

    def __init__(self):
        super().__init__()
        self.gate_fn = nn.Sigmoid()

    def forward(self, x):
        x = torch.relu(self.stem(x))
        gate = self.gate_fn(self.gate(F.avg_pool2d(x, 2)))
        x = self.main(x) * F.interpolate(gate, size=x.shape[2:])
        return self.head(torch.relu(self.down(x)).mean((2, 3)))


@pytest.mark.parametrize("model", [_PooledGate, _PooledModuleGate])
def test_a_gate_computed_at_a_smaller_size_is_no_detour_and_no_stage(model):
    plan = aimgen.convert(model(), torch.randn(1, 3, 16, 16)).plan
    # the block's input ends no stage, nor do the gate's maps (pooled, convolved, squashed):
    # the stages end at the gated product (16x16) and after the strided conv (8x8); timm's
    # GhostNetV2 made three update blocks of every gated block (49 in all, now 5)
    assert [u.label for u in plan.updates] == ["mul", "relu_1"]


def _conv_relu(inp, out, stride=1):
    return nn.Sequential(nn.Conv2d(inp, out, 3, stride, 1), nn.ReLU())


class _MultiResolution(nn.Module):
    """HRNet's module: each branch runs in turn, then each size is made again as the sum of every
    branch brought to it (up: a 1x1 conv, then resized; down: strided 3x3 convs, two for two
    halvings, so the lowest size's sum holds a map of the middle size made for its own use)."""

    def __init__(self, widths):
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(_conv_relu(c, c) for c in widths)
        self.fuse = nn.ModuleList(nn.ModuleList(self._bring(widths, j, i) for j in range(n)) for i in range(n))

    @staticmethod
    def _bring(widths, j, i):
        if j >= i:
            return nn.Conv2d(widths[j], widths[i], 1) if j > i else nn.Identity()
        steps = [_conv_relu(widths[j], widths[j], 2) for _ in range(i - j - 1)]
        return nn.Sequential(*steps, nn.Conv2d(widths[j], widths[i], 3, 2, 1))

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, fuse in enumerate(self.fuse):
            y = xs[i]
            for j, (f, x) in enumerate(zip(fuse, xs)):
                if j != i:
                    y = y + (F.interpolate(f(x), size=xs[i].shape[2:]) if j > i else f(x))
            out.append(torch.relu(y))
        return out


class _HRNetLike(nn.Module):
    """Transitions (convs in ModuleLists that make each new branch) and two multi-resolution
    modules: no main path from the stem to the head, and the sizes interleave in program order."""

    def __init__(self):
        super().__init__()
        self.stem = _conv_relu(3, 8)
        self.transition1 = nn.ModuleList([_conv_relu(8, 8), _conv_relu(8, 16, 2)])
        self.stage2 = _MultiResolution((8, 16))
        self.transition2 = _conv_relu(16, 32, 2)
        self.stage3 = _MultiResolution((8, 16, 32))
        self.head = nn.Linear(56, 2)

    def forward(self, x):
        x = self.stem(x)
        xs = self.stage2([t(x) for t in self.transition1])
        xs = self.stage3(xs + [self.transition2(xs[-1])])
        return self.head(torch.cat([x.mean((2, 3)) for x in xs], 1))


def test_parallel_branches_run_in_turn_end_their_stages_at_their_modules_outputs():
    model = _HRNetLike().eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 16, 16), base_weights=model.state_dict())
    # one update block per size a module outputs (stage2: 2, stage3: 3), none at each run of
    # one size in program order (19: the transitions, each branch's end, every map a fusion
    # resizes), and the middle size of stage3 at its output, not at the map its lowest size's
    # sum halves twice
    assert [(u.label, u.shape[2:]) for u in conv.plan.updates] == [
        ("stem.1", (16, 16)), ("stage2:relu", (16, 16)), ("stage2:relu_1", (8, 8)),
        ("stage3:relu_2", (16, 16)), ("stage3:relu_3", (8, 8)), ("stage3:relu_4", (4, 4))]
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(aim.eval()(x), model(x), atol=1e-5, rtol=0)


class _SizedUNet(UNet):
    """UNet with each upsampled map resized to its skip's size, as many U-Nets write it: the
    decoder's sizes are then the encoder's by the same expression, at every input size."""

    def forward(self, x):
        e1 = torch.relu(self.enc1(x))
        e2 = torch.relu(self.enc2(F.max_pool2d(e1, 2)))
        m = torch.relu(self.mid(F.max_pool2d(e2, 2)))
        up = F.interpolate(self.up2(m), size=e2.shape[2:])
        d2 = torch.relu(self.dec2(torch.cat([up, e2], 1)))
        up = F.interpolate(self.up1(d2), size=e1.shape[2:])
        d1 = torch.relu(self.dec1(torch.cat([up, e1], 1)))
        return self.head(d1)


class _WrappedUNet(nn.Module):
    """The U-Net inside a module of the user's, with a long skip around it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.net = _SizedUNet()

    def forward(self, x):
        s = self.stem(x)
        return self.net(s) + s[:, :2]


@pytest.mark.parametrize("model", [_SizedUNet, _WrappedUNet])
def test_a_unet_whose_decoder_comes_back_to_the_encoders_sizes_keeps_a_stage_at_every_run(model):
    # the decoder's runs come back to the encoder's sizes (by the same size expression) through
    # the deeper levels: detours, so each run is a stage, in one module or not
    plan = aimgen.convert(model(), torch.randn(1, 3, 32, 32)).plan
    labels = [(u.label.split(":")[-1], u.shape[2:]) for u in plan.updates]
    assert labels[-5:] == [("relu", (32, 32)), ("relu_1", (16, 16)), ("relu_2", (8, 8)), ("relu_3", (16, 16)),
                           ("relu_4", (32, 32))]
