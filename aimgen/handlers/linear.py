"""Linear modules: memory features join the last axis (broadcast over (N, ..., D) middles)."""
from __future__ import annotations

import torch.fx as fx
from torch import nn

from .base import REGISTRY, Skip, TapHandler, TapSite, batched_input


@REGISTRY.register
class LinearHandler(TapHandler):
    key = "linear"
    module_types = (nn.Linear,)

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        lin = root.get_submodule(node.target)
        shape = batched_input(node)
        if shape is None or len(shape) < 2:
            return Skip(node.name, node.target, "Linear", "input is not batched (N, ..., D) with the batch first")
        return TapSite(
            node=node.name, qualname=node.target, layer_type="Linear", handler=self.key, axis=-1,
            in_size=lin.in_features, out_size=lin.out_features, groups=1, kernel=(),
            spatial=(), weight=f"{node.target}.weight",
        )
