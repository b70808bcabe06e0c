"""Conv1d/2d/3d modules: memory channels join the input channels (in every group)."""
from __future__ import annotations

import torch.fx as fx
from torch import nn

from .base import REGISTRY, Skip, TapHandler, TapSite, batched_input


@REGISTRY.register
class ConvHandler(TapHandler):
    key = "conv"
    module_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        conv = root.get_submodule(node.target)
        dims = len(conv.kernel_size)
        kind = type(conv).__name__
        shape = batched_input(node, dims + 2)
        if shape is None:
            return Skip(node.name, node.target, kind,
                        f"input is not a batched (N, C, {'x'.join('*' * dims)}) tensor whose first axis is the batch")
        if len(node.args) != 1 or node.kwargs:
            return Skip(node.name, node.target, kind, "called with more than one argument")
        return TapSite(
            node=node.name, qualname=node.target, layer_type=kind, handler=self.key, axis=1,
            in_size=conv.in_channels, out_size=conv.out_channels, groups=conv.groups,
            kernel=tuple(conv.kernel_size), spatial=tuple(shape[2:]), weight=f"{node.target}.weight",
        )
