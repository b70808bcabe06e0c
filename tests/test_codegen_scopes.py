"""aimgen/codegen/scopes.py: which modules' nodes form a scope, and which scopes are outlined."""
from __future__ import annotations

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
