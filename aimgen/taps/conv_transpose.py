"""ConvTranspose1d/2d/3d modules. Their weight is (in, out/groups, *kernel): the memory adds
rows on the input axis (dim 0), ``k`` per group, each group's rows followed by its memory rows.

Sum form: ``MemoryConvTransposeNd`` with ``memory_weight`` (k, out, *kernel): every group reads
the same memory rows, so the memory part is one ungrouped transposed convolution.
"""
from __future__ import annotations

import math

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .. import runtime
from ..runtime import weight_parameter
from .base import REGISTRY, Constructor, Skip, TapKind, TapSite, TapWidth, per_dimension
from .conv import module_site



# --- what the generated code runs (copied into every file that taps this kind) -----------

class _MemoryConvTranspose:
    """conv_transpose(cat([x, m], 1)) computed as conv_transpose(x) plus one ungrouped
    transposed convolution of the memory with ``memory_weight`` (k, out, *kernel)."""

    def __init__(self, *args, memory_channels: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        shape = (memory_channels, self.out_channels, *self.kernel_size)
        fan_in = (self.out_channels // self.groups) * math.prod(self.kernel_size)
        self.memory_weight = weight_parameter(shape, fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        dims = len(self.kernel_size)
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
        memory = conv(m, self.memory_weight, None, self.stride, self.padding, self.output_padding,
                      1, self.dilation)
        return super().forward(x) + memory


MemoryConvTranspose1d, MemoryConvTranspose2d, MemoryConvTranspose3d = per_dimension(
    _MemoryConvTranspose, "MemoryConvTranspose", (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
    "{base} that also reads ``memory_channels`` fitted memory channels.")


# --- the kind ---------------------------------------------------------------------------------

@REGISTRY.register
class ConvTransposeKind(TapKind):
    key = "conv_transpose"
    module_types = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    runtime_objects = (MemoryConvTranspose1d, MemoryConvTranspose2d, MemoryConvTranspose3d,
                       runtime.cat_channels, runtime.cat_grouped)
    in_arg = "in_channels"

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        return module_site(self.key, node, root, extra_args="called with an output_size argument")

    def _sum_class(self, site: TapSite):
        return (MemoryConvTranspose1d, MemoryConvTranspose2d,
                MemoryConvTranspose3d)[len(site.kernel) - 1]

    def runtime(self, site: TapSite, form: str, width: TapWidth):
        return super().runtime(site, form, width) if form == "literal" else (self._sum_class(site),)

    def layer_sum(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        return ctor.renamed(self._sum_class(site).__name__).with_arg("memory_channels", width.k)

    def memory_shape(self, site: TapSite, width: TapWidth) -> tuple[int, ...]:
        return (width.k, site.out_size, *site.kernel)

    def literal_shape(self, site: TapSite, base_shape: tuple[int, ...], width: TapWidth) -> tuple[int, ...]:
        return (base_shape[0] + site.groups * width.k, *base_shape[1:])

    def to_literal(self, site: TapSite, weight: torch.Tensor, memory: torch.Tensor, width: TapWidth) -> torch.Tensor:
        g, k = site.groups, width.k
        per_in, per_out = weight.shape[0] // g, weight.shape[1]
        parts = weight.reshape(g, per_in, *weight.shape[1:])
        # memory (k, out, *kernel): group j's output columns are out[j*per_out:(j+1)*per_out]
        mem = memory.to(weight.dtype).reshape(k, g, per_out, *weight.shape[2:]).transpose(0, 1)
        return torch.cat([parts, mem], 1).reshape(g * (per_in + k), *weight.shape[1:])

    def to_sum(self, site: TapSite, widened: torch.Tensor, width: TapWidth) -> tuple[torch.Tensor, torch.Tensor]:
        g, k = site.groups, width.k
        per_in = site.in_size // g
        parts = widened.reshape(g, per_in + k, *widened.shape[1:])
        weight = parts[:, :per_in].reshape(g * per_in, *widened.shape[1:])
        memory = parts[:, per_in:].transpose(0, 1).reshape(k, g * widened.shape[1], *widened.shape[2:])
        return weight.clone(), memory.clone()

    def sizes(self, module: nn.Module) -> tuple[int, int]:
        return module.in_channels, module.out_channels

    def parallel_branch(self, module: nn.Module, hidden: int):
        if module.groups != 1:
            return None
        dims = len(module.kernel_size) - 1
        down = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims](
            module.in_channels, hidden, module.kernel_size, stride=module.stride, padding=module.padding,
            output_padding=module.output_padding, dilation=module.dilation)
        return down, (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims](hidden, module.out_channels, 1, bias=False)
