"""Functional convolutions: ``F.conv2d(x, weight, bias, stride, padding, dilation, groups)`` (and
1d/3d, and the ``torch.conv*d`` aliases).

Sum form: ``F.conv2d(x, ...) + read_conv_memory(m, self.<weight>_memory, F.conv2d, stride,
padding, dilation)``: the memory's weights are a parameter of their own beside the weight, so
this works even when the weight is computed in forward (weight standardisation, as in NFNets
and BiT). Literal form: the weight must be a parameter read directly, and is widened.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .. import runtime
from .conv import center_tap_pads
from .base import (REGISTRY, CallSource, Skip, TapKind, TapSite, TapWidth, batched_input, node_arg, owner_of,
                   not_batched, row_layout, weight_param)

ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


# --- what the generated code runs (copied into every file that taps this kind) -----------

def read_conv_memory(m: torch.Tensor, weight: torch.Tensor, conv, stride=1, padding=0, dilation=1,
                     kernel_size: tuple[int, ...] | None = None) -> torch.Tensor:
    """The memory's part of a functional convolution (``F.conv2d(x, self.weight, ...)``) in the
    sum form, ``weight`` the memory's own (out, k, ...); with ``kernel_size`` (the layer's) it
    reads through that kernel's center tap only (a pointwise memory kernel)."""
    if kernel_size is None:
        return conv(m, weight, None, stride, padding, dilation)
    n = len(kernel_size)
    if not isinstance(padding, str):
        padding = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * n
    dilation = tuple(dilation) if isinstance(dilation, (tuple, list)) else (dilation,) * n
    return conv(F.pad(m, center_tap_pads(kernel_size, padding, dilation)), weight, None, stride)


# --- the kind ---------------------------------------------------------------------------------

@REGISTRY.register
class FunctionalConvKind(TapKind):
    key = "functional_conv"
    functions = (F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d)
    runtime_objects = (read_conv_memory, runtime.weight_parameter, runtime.cat_channels, runtime.cat_grouped)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        kind = f"F.{node.target.__name__}"
        dims = int(node.target.__name__[-2])
        owner = owner_of(node)
        weight, why = weight_param(node, root, ARGS)
        groups = node_arg(node, ARGS, "groups", 1)
        if not isinstance(groups, int):
            return Skip(node.name, weight or owner or node.name, kind, "its groups argument is computed in forward")
        shape = batched_input(node, dims + 2, windows=True)
        if shape is None:
            return Skip(node.name, weight or owner or node.name, kind,
                        not_batched(node, "input is not batched with the batch axis first"))
        meta = getattr(node_arg(node, ARGS, "weight"), "meta", {}).get("tensor_meta")
        if meta is None:
            return Skip(node.name, owner or node.name, kind, f"its weight's shape is unknown ({why})")
        w_shape = tuple(meta.shape)
        return TapSite(
            node=node.name, qualname=weight or f"{owner}:{node.name}", layer_type=kind,
            kind=self.key, axis=1, in_size=w_shape[1] * groups, out_size=w_shape[0], groups=groups,
            kernel=w_shape[2:], spatial=tuple(shape[2:]), weight=weight or "", functional=True,
            computed_weight=weight is None, **row_layout(node),
        )

    def width_choices(self, site: TapSite, form: str, group_kernel: str) -> str:
        if form == "sum" and site.groups > 1 and group_kernel == "pointwise":
            return "pointwise"
        return "full"

    def runtime(self, site: TapSite, form: str, width: TapWidth):
        return super().runtime(site, form, width) if form == "literal" else (read_conv_memory,)

    def call(self, site: TapSite, form: str, width: TapWidth, src: CallSource) -> str:
        args = src.named(ARGS, DEFAULTS)
        base = src.original()
        if form == "literal":
            x = (f"cat_grouped({args['input']}, {src.memory}, {site.groups})" if site.groups > 1
                 else f"cat_channels({args['input']}, {src.memory})")
            return src.original(replace_first=x)
        extra = ", ".join(f"{args[k]}" for k in ("stride", "padding", "dilation"))
        kernel = f", kernel_size={site.kernel!r}" if width.kernel == "pointwise" else ""
        return f"{base} + read_conv_memory({src.memory}, {src.memory_weight}, {src.callee}, {extra}{kernel})"
