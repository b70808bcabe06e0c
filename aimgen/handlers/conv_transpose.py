"""ConvTranspose1d/2d/3d modules. Their weight is (in, out/groups, *kernel): the memory adds
rows to the input axis, ``k`` per group, each group's rows followed by its memory rows."""
from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from .base import REGISTRY, Skip, TapHandler, TapSite, batched_input


@REGISTRY.register
class ConvTransposeHandler(TapHandler):
    key = "conv_transpose"
    module_types = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        conv = root.get_submodule(node.target)
        dims = len(conv.kernel_size)
        kind = type(conv).__name__
        shape = batched_input(node, dims + 2)
        if shape is None:
            return Skip(node.name, node.target, kind, "input is not a batched tensor whose first axis is the batch")
        if len(node.args) != 1 or node.kwargs:
            return Skip(node.name, node.target, kind, "called with an output_size argument")
        return TapSite(
            node=node.name, qualname=node.target, layer_type=kind, handler=self.key, axis=1,
            in_size=conv.in_channels, out_size=conv.out_channels, groups=conv.groups,
            kernel=tuple(conv.kernel_size), spatial=tuple(shape[2:]), weight=f"{node.target}.weight",
        )

    def widened_shape(self, site: TapSite, base_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = list(base_shape)
        shape[0] += site.groups * site.k
        return tuple(shape)

    def widen_weight(self, site: TapSite, weight: torch.Tensor) -> torch.Tensor:
        g, k = site.groups, site.k
        per = weight.shape[0] // g
        parts = weight.reshape(g, per, *weight.shape[1:])
        zeros = weight.new_zeros(g, k, *weight.shape[1:])
        return torch.cat([parts, zeros], 1).reshape(g * (per + k), *weight.shape[1:])
