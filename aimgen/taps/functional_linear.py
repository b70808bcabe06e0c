"""Functional linears: ``F.linear(x, weight, bias)``.

Sum form: ``F.linear(x, weight, bias) + F.linear(m, self.<weight>_memory)``, the memory's
weights a parameter of their own (so a weight computed in forward works too). Literal form: the
weight must be a parameter read directly, and is widened on its input axis.
"""
from __future__ import annotations

import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .. import runtime
from .base import (REGISTRY, CallSource, Skip, TapKind, TapSite, TapWidth, batched_input, node_arg, owner_of,
                   not_batched, row_layout, weight_param)

ARGS = ("input", "weight", "bias")


@REGISTRY.register
class FunctionalLinearKind(TapKind):
    key = "functional_linear"
    functions = (F.linear,)
    runtime_objects = (runtime.weight_parameter, runtime.cat_features)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        owner = owner_of(node)
        weight, why = weight_param(node, root, ARGS)
        shape = batched_input(node, windows=True)
        if shape is None or len(shape) < 2:
            return Skip(node.name, weight or owner or node.name, "F.linear",
                        not_batched(node, "input is not batched (N, ..., D) with the batch first"))
        meta = getattr(node_arg(node, ARGS, "weight"), "meta", {}).get("tensor_meta")
        if meta is None or len(meta.shape) != 2:
            return Skip(node.name, owner or node.name, "F.linear", f"its weight's shape is unknown ({why})")
        out, inp = tuple(meta.shape)
        return TapSite(
            node=node.name, qualname=weight or f"{owner}:{node.name}",
            layer_type="F.linear", kind=self.key, axis=-1, in_size=inp, out_size=out, groups=1, kernel=(),
            spatial=(), weight=weight or "", functional=True, computed_weight=weight is None,
            **row_layout(node),
        )

    def call(self, site: TapSite, form: str, width: TapWidth, src: CallSource) -> str:
        if form == "literal":
            x = src.named(ARGS, {"bias": None})["input"]
            return src.original(replace_first=f"cat_features({x}, {src.memory})")
        return f"{src.original()} + F.linear({src.memory}, {src.memory_weight})"
