"""Conv1d/2d/3d modules: memory channels join the input channels, in every group.

Sum form: the layer becomes ``MemoryConvNd`` (below), an ``nn.ConvNd`` with one more
parameter, ``memory_weight`` (out, k, *kernel); ``weight`` keeps its base shape. A grouped or
depthwise conv becomes ``GroupedMemoryConvNd``: every group reads the same memory channels, so
the memory part is one ungrouped convolution, by default through the kernel's center tap only
(``memory_kernel='pointwise'``: (out, k, 1, 1), k x k fewer weights than the literal form).
Literal form: ``in_channels`` grows by k per group and the input is ``cat_channels`` /
``cat_grouped``.
"""
from __future__ import annotations

import math

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .. import runtime
from ..runtime import add_product, weight_parameter
from .base import (REGISTRY, Constructor, Skip, TapKind, TapSite, TapWidth, batched_input, not_batched,
                   per_dimension, row_layout)



# --- what the generated code runs (copied into every file that taps this kind) -----------

class _MemoryConv:
    """conv(cat([x, m], 1)) computed as conv(x) + conv(m, memory_weight): ``weight`` keeps its
    base shape and ``memory_weight`` holds what the memory channels would get in a widened
    layer (and is drawn the way PyTorch would draw them there)."""

    def __init__(self, *args, memory_channels: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        shape = (self.out_channels, memory_channels, *self.kernel_size)
        fan_in = (self.in_channels // self.groups + memory_channels) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter(shape, fan_in)
        # one memory channel: a product added to the output (add_product) of its values (1x1)
        # or its k x k patches (2-d); in ONNX always a conv, which onnxruntime fuses
        self.memory_read = "conv"
        if memory_channels == 1 and self.padding_mode == "zeros":
            unpadded = isinstance(self.padding, str) or not any(self.padding)
            if math.prod(self.kernel_size) == 1 and unpadded:
                self.memory_read = "value"
            elif len(self.kernel_size) == 2 and not isinstance(self.padding, str):
                self.memory_read = "patches"

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(x, self.weight, self.bias)
        # a memory shared by the batch (before the first update) is convolved once, at batch 1
        shared = self.memory_read == "patches" and m.shape[0] < out.shape[0]
        if self.memory_read == "conv" or shared or torch.onnx.is_in_onnx_export():
            return out + self._conv_forward(m, self.memory_weight, None)
        if self.memory_read == "patches":
            m = F.unfold(m, self.kernel_size, self.dilation, self.padding, self.stride)
            return add_product(out, m, self.memory_weight)
        return add_product(out, m, self.memory_weight, self.stride)


MemoryConv1d, MemoryConv2d, MemoryConv3d = per_dimension(
    _MemoryConv, "MemoryConv", (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "{base} that also reads ``memory_channels`` fitted memory channels.")


def center_tap_pads(kernel_size, padding, dilation) -> tuple[int, ...]:
    """F.pad amounts (last axis first; negative ones crop) after which a 1x1 convolution of
    the memory reads what the center tap of a k x k kernel with this padding reads."""
    if padding == "valid":
        padding = (0,) * len(kernel_size)
    pads = []
    for i in reversed(range(len(kernel_size))):
        k, d = kernel_size[i], dilation[i]
        total = d * (k - 1)
        before = total // 2 if padding == "same" else padding[i]
        after = total - total // 2 if padding == "same" else padding[i]
        pads += [before - d * ((k - 1) // 2), after - d * (k - 1 - (k - 1) // 2)]
    return tuple(pads)


class _GroupedMemoryConv:
    """A grouped or depthwise conv that reads the memory in every group. Every group reads the
    same memory channels, so the memory's part is one ungrouped convolution; by default
    (``memory_kernel='pointwise'``) through the kernel's center tap only: the widened layer
    with its other memory taps fixed at zero, k x k times fewer weights."""

    def __init__(self, *args, memory_channels: int = 1, memory_kernel: str = "pointwise",
                 **kwargs):
        super().__init__(*args, **kwargs)
        kernel = self.kernel_size if memory_kernel == "full" else (1,) * len(self.kernel_size)
        fan_in = (self.in_channels // self.groups + memory_channels) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter((self.out_channels, memory_channels, *kernel), fan_in)
        self.memory_kernel = memory_kernel
        padding = self.padding if self.padding_mode == "zeros" else "valid"  # others pad first
        self.memory_pads = center_tap_pads(self.kernel_size, padding, self.dilation)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[len(self.kernel_size) - 1]
        if self.padding_mode != "zeros":
            m = F.pad(m, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        out = self._conv_forward(x, self.weight, self.bias)
        if self.memory_kernel == "full":
            padding = self.padding if self.padding_mode == "zeros" else 0
            return out + conv(m, self.memory_weight, None, self.stride, padding, self.dilation)
        if any(self.memory_pads):
            m = F.pad(m, self.memory_pads)
        # one channel: a product added by add_product; in ONNX a conv, which onnxruntime fuses
        if self.memory_weight.shape[1] > 1 or torch.onnx.is_in_onnx_export():
            return out + conv(m, self.memory_weight, None, self.stride)
        return add_product(out, m, self.memory_weight, self.stride)


GroupedMemoryConv1d, GroupedMemoryConv2d, GroupedMemoryConv3d = per_dimension(
    _GroupedMemoryConv, "GroupedMemoryConv", (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "A grouped or depthwise {base} that reads the memory in every group.")


def module_site(key: str, node: fx.Node, root: nn.Module, extra_args: str) -> TapSite | Skip:
    """The facts of one call of a torch.nn convolution or transposed convolution module on an
    (N, C, *spatial) input; ``extra_args``: why a call with more arguments is skipped."""
    conv = root.get_submodule(node.target)
    dims = len(conv.kernel_size)
    kind = type(conv).__name__
    shape = batched_input(node, dims + 2, windows=True)
    if shape is None:
        return Skip(node.name, node.target, kind, not_batched(
            node, f"input is not a batched (N, C, {'x'.join('*' * dims)}) tensor whose first axis is the batch"))
    if len(node.args) != 1 or node.kwargs:
        return Skip(node.name, node.target, kind, extra_args)
    return TapSite(
        node=node.name, qualname=node.target, layer_type=kind, kind=key, axis=1,
        in_size=conv.in_channels, out_size=conv.out_channels, groups=conv.groups,
        kernel=tuple(conv.kernel_size), spatial=tuple(shape[2:]), weight=f"{node.target}.weight",
        **row_layout(node),
    )


# --- the kind ---------------------------------------------------------------------------------

@REGISTRY.register
class ConvKind(TapKind):
    key = "conv"
    module_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    runtime_objects = (MemoryConv1d, MemoryConv2d, MemoryConv3d, GroupedMemoryConv1d,
                       GroupedMemoryConv2d, GroupedMemoryConv3d, runtime.cat_channels,
                       runtime.cat_grouped)
    in_arg = "in_channels"

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        return module_site(self.key, node, root, extra_args="called with more than one argument")

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
            return (GroupedMemoryConv1d, GroupedMemoryConv2d, GroupedMemoryConv3d)[dims - 1]
        return (MemoryConv1d, MemoryConv2d, MemoryConv3d)[dims - 1]

    def layer_sum(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        out = ctor.renamed(self._sum_class(site).__name__).with_arg("memory_channels", width.k)
        if site.groups > 1 and width.kernel != "pointwise":
            out = out.with_arg("memory_kernel", width.kernel)
        return out

    def sizes(self, module: nn.Module) -> tuple[int, int]:
        return module.in_channels, module.out_channels

    def parallel_branch(self, module: nn.Module, hidden: int):
        if module.groups != 1:
            return None
        conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(module.kernel_size) - 1]
        down = conv(module.in_channels, hidden, module.kernel_size, stride=module.stride,
                    padding=module.padding, dilation=module.dilation, padding_mode=module.padding_mode)
        return down, conv(hidden, module.out_channels, 1, bias=False)
