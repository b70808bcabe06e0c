"""Linear modules: memory features join the last axis (broadcast over (N, ..., D) middles, or
over the sequence of a sequence-first (L, N, ..., D) input).

Sum form: ``MemoryLinear`` with ``memory_weight`` (out, k): linear(x) + m @ memory_weight.T,
the memory broadcast over the middle axes without a copy. Literal form: ``in_features``
grows by k and the input is ``cat_features``.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .. import runtime
from ..runtime import weight_parameter
from .base import REGISTRY, Constructor, Skip, TapKind, TapSite, TapWidth, batched_input, not_batched, row_layout


# --- what the generated code runs (copied into every file that taps this kind) -----------

class MemoryLinear(nn.Linear):
    """nn.Linear that also reads ``memory_features`` fitted memory features: linear(cat([x, m],
    -1)) as linear(x) + linear(m, memory_weight), m broadcast over the middle axes, not copied."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.in_features + memory_features
        self.memory_weight = weight_parameter((self.out_features, memory_features), fan_in)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(m, self.memory_weight)


def is_linear_subclass(module: nn.Module) -> bool:
    """A subclass of nn.Linear (not nn.Linear itself, no submodules) with a forward of its own:
    a layer that may compute the linear function its own way (Falcon's ``x @ W.T + b``)."""
    return isinstance(module, nn.Linear) and type(module) is not nn.Linear and not module._modules


def computes_f_linear(module: nn.Linear, x: torch.Tensor, out) -> bool:
    """Whether ``out``, the module's output on ``x``, is F.linear(x, weight, bias)."""
    with torch.no_grad():
        want = F.linear(x, module.weight, module.bias)
    return isinstance(out, torch.Tensor) and out.shape == want.shape and \
        torch.allclose(out, want, atol=1e-5, rtol=1e-4)


# --- the kind ---------------------------------------------------------------------------------

@REGISTRY.register
class LinearKind(TapKind):
    key = "linear"
    module_types = (nn.Linear,)
    runtime_objects = (MemoryLinear, runtime.cat_features)
    in_arg = "in_features"

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        lin = root.get_submodule(node.target)
        shape = batched_input(node, windows=True)
        second = shape is None and isinstance(node.args[0], fx.Node) and bool(node.args[0].meta.get("batch_second"))
        if (shape is None or len(shape) < 2) and not second:
            return Skip(node.name, node.target, "Linear",
                        not_batched(node, "input is not batched (N, ..., D) with the batch first, nor (L, N, ..., D)"))
        return TapSite(
            node=node.name, qualname=node.target, layer_type="Linear", kind=self.key, axis=-1,
            in_size=lin.in_features, out_size=lin.out_features, groups=1, kernel=(),
            spatial=(), weight=f"{node.target}.weight", batch_second=second, **row_layout(node),
        )

    def runtime(self, site: TapSite, form: str, width: TapWidth):
        return super().runtime(site, form, width) if form == "literal" else (MemoryLinear,)

    def layer_sum(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        return ctor.renamed("MemoryLinear").with_arg("memory_features", width.k)

    def sizes(self, module: nn.Module) -> tuple[int, int]:
        return module.in_features, module.out_features

    def parallel_branch(self, module: nn.Module, hidden: int):
        return nn.Linear(module.in_features, hidden), nn.Linear(hidden, module.out_features, bias=False)
