"""aimgen/codegen/scopes.py: which modules' nodes form a scope, and which scopes are outlined."""
from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn

from aimgen.codegen import scopes


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)) + x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.blocks = nn.Sequential(Block(), Block())
        self.shared = Block()
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.shared(self.shared(x))  # called twice: written inline


def build(flat=False, taps=()):
    graph = fx.Tracer().trace(Net())
    top, owner = scopes.build(graph, Net(), set())
    scopes.mark_memory(top, set(taps), [])
    scopes.decide(top, flat)
    return top, owner, graph


def test_scopes_follow_the_module_tree_and_calls():
    top, owner, graph = build()
    by_key = {s.key: s for s in top.walk()}
    assert {"blocks", "blocks.0", "blocks.1", "shared", "shared@1"} <= set(by_key)
    assert by_key["blocks.0"].parent is by_key["blocks"]
    assert by_key["blocks.0"].outlined and by_key["blocks"].outlined and by_key["blocks"].chain == "plain"
    assert not by_key["shared"].outlined and "called 2 times" in by_key["shared"].why_inline
    conv = next(n for n in graph.nodes if n.op == "call_module" and n.target == "blocks.0.conv")
    assert owner[conv.name] is by_key["blocks.0"]  # a call_module node belongs to its caller


def test_a_sequential_whose_items_mix_memory_and_plain_layers_is_inline():
    graph = fx.Tracer().trace(Net())
    tapped = next(n.name for n in graph.nodes if n.op == "call_module" and n.target == "stem")
    top, _, _ = build(taps=[tapped])
    by_key = {s.key: s for s in top.walk()}
    assert not by_key["blocks"].memory  # its blocks read no memory: still a plain chain
    block_tap = next(n.name for n in graph.nodes if n.op == "call_module" and n.target == "blocks.0.conv")
    top, _, _ = build(taps=[block_tap])
    blocks = {s.key: s for s in top.walk()}["blocks"]
    assert not blocks.outlined and "some of its items read the memory" in blocks.why_inline


def test_flat_outlines_nothing_and_containers_are_recognised():
    top, _, _ = build(flat=True)
    assert not any(s.outlined for s in top.walk())
    assert scopes.container_kind(nn.Sequential()) == "sequential"
    assert scopes.container_kind(nn.ModuleList()) == "list" and scopes.container_kind(nn.ModuleDict()) == "dict"

    class Custom(nn.ModuleDict):  # a ModuleDict with a forward of its own is a block
        def forward(self, x):
            return x

    assert scopes.container_kind(Custom()) == "" and scopes.container_kind(Block()) == ""


class _RelPos(nn.Module):
    """timm's RelPosMlp in small: a table it holds, handed to its own MLP from a method."""

    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
        self.register_buffer("coords", torch.randn(4, 2), persistent=False)

    def get_bias(self):
        return self.mlp(self.coords).view(1, 4)


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.rel_pos = _RelPos()

    def forward(self, x):
        return self.proj(x) + self.rel_pos.get_bias()


def test_an_attribute_is_read_in_the_scope_of_the_module_that_holds_it():
    """torch.fx records a tensor attribute where it is first used: here inside the MLP's first
    layer, whose block could not reach its owner's table. It belongs to the innermost module on
    its way that holds it (the attention; get_bias is a method, not a call)."""
    model = nn.Sequential(nn.Linear(4, 4), _Attention())
    graph = fx.Tracer().trace(model)
    top, owner = scopes.build(graph, model, set())
    coords = next(n for n in graph.nodes if n.op == "get_attr")
    assert owner[coords.name].qual == "1"
    mlp = next(s for s in top.walk() if s.qual == "1.rel_pos.mlp")
    assert mlp.inputs == [coords]   # handed in as the MLP's input


def test_an_attribute_no_module_on_its_way_holds_is_read_by_the_root():
    """timm's shared relative-position table: the root holds it, and makes the bias itself."""
    model = _Attention()
    graph = fx.Tracer().trace(model)
    top, owner = scopes.build(graph, model, set())
    coords = next(n for n in graph.nodes if n.op == "get_attr")
    assert owner[coords.name] is top


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(4, 4), _Attention()), _Attention()],
                         ids=["held by a block", "held by the root"])
def test_a_module_handed_its_owner_s_table_converts_and_keeps_the_function(model):
    import random_models as rm
    from aimgen.loader import InputSpec

    torch.manual_seed(0)
    conv = rm.check_conversion(model.eval(), [InputSpec((1, 3, 4))], source_name="relpos")
    assert "self.rel_pos.mlp(self.rel_pos.coords" in conv.source
