"""Conv1d/2d/3d modules: memory channels join the input channels, in every group.

Sum form: the layer becomes ``MemoryConvNd`` (aimgen/runtime.py), an ``nn.ConvNd`` with one
more parameter, ``memory_weight`` (out, k, *kernel); ``weight`` keeps its base shape. In a
grouped or depthwise conv every group reads the same memory channels, so the memory part is
one ungrouped convolution, and by default it reads through the kernel's center tap only
(``memory_kernel='pointwise'``: (out, k, 1, 1), k x k fewer weights than the literal form).
Literal form: ``in_channels`` grows by k per group and the input is ``cat_channels`` /
``cat_grouped``.
"""
from __future__ import annotations

import torch.fx as fx
from torch import nn

from .. import runtime
from .base import REGISTRY, Constructor, Skip, TapKind, TapSite, TapWidth, batched_input



@REGISTRY.register
class ConvKind(TapKind):
    key = "conv"
    module_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    runtime_objects = (runtime.MemoryConv1d, runtime.MemoryConv2d, runtime.MemoryConv3d, runtime.GroupedMemoryConv1d,
                       runtime.GroupedMemoryConv2d, runtime.GroupedMemoryConv3d, runtime.cat_channels,
                       runtime.cat_grouped)
    in_arg = "in_channels"

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
            node=node.name, qualname=node.target, layer_type=kind, kind=self.key, axis=1,
            in_size=conv.in_channels, out_size=conv.out_channels, groups=conv.groups,
            kernel=tuple(conv.kernel_size), spatial=tuple(shape[2:]), weight=f"{node.target}.weight",
        )

    def width_choices(self, site: TapSite, form: str, group_kernel: str) -> str:
        if form == "sum" and site.groups > 1 and group_kernel == "pointwise":
            return "pointwise"
        return "full"

    def runtime(self, site: TapSite, form: str, width: TapWidth):
        if form == "literal":
            return super().runtime(site, form, width)
        return (self._sum_class(site),)

    def _sum_class(self, site: TapSite):
        dims = len(site.kernel)
        if site.groups > 1:
            return (runtime.GroupedMemoryConv1d, runtime.GroupedMemoryConv2d, runtime.GroupedMemoryConv3d)[dims - 1]
        return (runtime.MemoryConv1d, runtime.MemoryConv2d, runtime.MemoryConv3d)[dims - 1]

    def layer_sum(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        out = ctor.renamed(self._sum_class(site).__name__).with_arg("memory_channels", width.k)
        if site.groups > 1 and width.kernel != "pointwise":
            out = out.with_arg("memory_kernel", width.kernel)
        return out

    def sizes(self, module: nn.Module) -> tuple[int, int]:
        return module.in_channels, module.out_channels
