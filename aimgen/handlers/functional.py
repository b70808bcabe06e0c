"""Functional convs and linears on a parameter: ``F.conv2d(x, self.weight, ...)``, ``F.linear``.

The weight must be a parameter read directly (a ``get_attr``); a weight computed first (for
example weight standardisation) cannot be widened and is reported as skipped.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .base import REGISTRY, Skip, TapHandler, TapSite, batched_input

_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_LINEAR_ARGS = ("input", "weight", "bias")


def _arg(node: fx.Node, names: tuple[str, ...], name: str, default=None):
    i = names.index(name)
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _weight_param(node: fx.Node, root: nn.Module, names) -> tuple[str | None, str]:
    w = _arg(node, names, "weight")
    if not isinstance(w, fx.Node) or w.op != "get_attr":
        return None, "its weight is computed in forward, not a parameter read directly"
    try:
        param = root.get_parameter(w.target)
    except AttributeError:
        return None, f"its weight {w.target!r} is a buffer or constant, not a parameter"
    if not isinstance(param, nn.Parameter):
        return None, "its weight is not a parameter"
    return w.target, ""


@REGISTRY.register
class FunctionalConvHandler(TapHandler):
    key = "functional_conv"
    functions = (F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        kind = f"F.{node.target.__name__}"
        dims = int(node.target.__name__[-2])
        qual = (node.meta.get("nn_module_stack") or {}) and list(node.meta["nn_module_stack"].values())[-1][0]
        weight, why = _weight_param(node, root, _CONV_ARGS)
        if weight is None:
            return Skip(node.name, qual or node.name, kind, why)
        groups = _arg(node, _CONV_ARGS, "groups", 1)
        if not isinstance(groups, int):
            return Skip(node.name, weight, kind, "its groups argument is computed in forward")
        shape = batched_input(node, dims + 2)
        if shape is None:
            return Skip(node.name, weight, kind, "input is not batched with the batch axis first")
        w = root.get_parameter(weight)
        return TapSite(
            node=node.name, qualname=weight, layer_type=kind, handler=self.key, axis=1,
            in_size=w.shape[1] * groups, out_size=w.shape[0], groups=groups, kernel=tuple(w.shape[2:]),
            spatial=tuple(shape[2:]), weight=weight, functional=True,
        )


@REGISTRY.register
class FunctionalLinearHandler(TapHandler):
    key = "functional_linear"
    functions = (F.linear,)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        weight, why = _weight_param(node, root, _LINEAR_ARGS)
        if weight is None:
            return Skip(node.name, node.name, "F.linear", why)
        shape = batched_input(node)
        if shape is None or len(shape) < 2:
            return Skip(node.name, weight, "F.linear", "input is not batched (N, ..., D) with the batch first")
        w = root.get_parameter(weight)
        return TapSite(
            node=node.name, qualname=weight, layer_type="F.linear", handler=self.key, axis=-1,
            in_size=w.shape[1], out_size=w.shape[0], groups=1, kernel=(), spatial=(),
            weight=weight, functional=True,
        )
