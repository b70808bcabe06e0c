"""The one interface every tappable layer kind implements, and the registry that finds them.

A *tap* concatenates ``k`` memory channels (or features) onto a layer's input and widens the
layer's weight to match. A handler knows, for its kind of layer:
- whether a graph node is a layer of its kind, and if so the facts about it (``inspect``);
- how many parameters one memory channel costs (``TapSite.per_channel``);
- how the widened layer is built (``widen_kwargs``) and how its input is fitted (``input_expr``);
- how a base weight is copied into the widened weight, new slots zero (``widen_weight``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.fx as fx
from torch import nn


@dataclass
class TapSite:
    """A weight layer in the graph that can read memory."""

    node: str                # fx node name
    qualname: str            # module qualified name, or the weight parameter's for functional calls
    layer_type: str          # e.g. "Conv2d", "F.linear"
    handler: str             # registry key
    axis: int                # 1: channels (convs), -1: last axis (linear)
    in_size: int             # input channels / features of the base layer
    out_size: int
    groups: int
    kernel: tuple[int, ...]  # () for linear
    spatial: tuple[int, ...]  # the input's spatial size at the example input; () for linear
    weight: str              # qualified name of the weight that widens
    k: int = 0               # memory channels (convs) or features (linear) read; set by the planner
    functional: bool = False

    @property
    def per_channel(self) -> int:
        """Parameters one extra input channel (feature) adds: out x prod(kernel)."""
        return self.out_size * math.prod(self.kernel)

    @property
    def extra_params(self) -> int:
        return self.per_channel * self.k


@dataclass
class Skip:
    """A layer of a tappable kind that is left as it is, and why."""

    node: str
    qualname: str
    layer_type: str
    reason: str


class TapHandler:
    """Base class: subclasses set ``key`` and implement ``match``/``inspect``."""

    key: ClassVar[str] = ""
    module_types: ClassVar[tuple[type, ...]] = ()
    functions: ClassVar[tuple[Any, ...]] = ()

    def match(self, node: fx.Node, root: nn.Module) -> bool:
        if node.op == "call_module":
            return type(root.get_submodule(node.target)) in self.module_types
        if node.op == "call_function":
            return node.target in self.functions
        return False

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        raise NotImplementedError

    # --- rendering -------------------------------------------------------------------------
    def input_expr(self, site: TapSite, x: str) -> str:
        """Source of the fitted input, given the source ``x`` of the layer's input."""
        if site.axis == -1:
            return f"torch.cat([{x}, fit_features(memory, {site.k}, {x})], -1)"
        if site.groups > 1:
            return f"fit_grouped({x}, memory, {site.k}, {site.groups})"
        return f"torch.cat([{x}, fit_memory(memory, {site.k}, {x}.shape[2:])], 1)"

    def widened_in(self, site: TapSite) -> str:
        """Source of the widened input size: ``64 + 1`` or ``32 + 32 * 1`` for grouped convs."""
        if site.groups > 1:
            return f"{site.in_size} + {site.groups} * {site.k}"
        return f"{site.in_size} + {site.k}"

    def comment(self, site: TapSite) -> str:
        unit = "feature" if site.axis == -1 else "channel"
        plural = "s" if site.k != 1 else ""
        where = f" at {'x'.join(map(str, site.spatial))}" if site.spatial else ""
        per = f" per group ({site.groups} groups)" if site.groups > 1 else ""
        return f"+ memory: {site.k} {unit}{plural}{per}{where}"

    # --- weights ---------------------------------------------------------------------------
    def widened_shape(self, site: TapSite, base_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Weight shape after widening (conv/linear layout: (out, in/groups + k, *kernel))."""
        shape = list(base_shape)
        shape[1] += site.k
        return tuple(shape)

    def widen_weight(self, site: TapSite, weight: torch.Tensor) -> torch.Tensor:
        """The base weight in its original slots, zeros where the layer reads memory."""
        shape = self.widened_shape(site, tuple(weight.shape))
        out = weight.new_zeros(shape)
        out[:, : weight.shape[1]] = weight
        return out


@dataclass
class Registry:
    handlers: list[TapHandler] = field(default_factory=list)

    def register(self, handler_cls: type[TapHandler]) -> type[TapHandler]:
        self.handlers.append(handler_cls())
        return handler_cls

    def find(self, node: fx.Node, root: nn.Module) -> TapHandler | None:
        for handler in self.handlers:
            if handler.match(node, root):
                return handler
        return None

    def get(self, key: str) -> TapHandler:
        for handler in self.handlers:
            if handler.key == key:
                return handler
        raise KeyError(key)

    @property
    def layer_types(self) -> list[str]:
        names = []
        for h in self.handlers:
            names += [t.__name__ for t in h.module_types]
            names += [f"F.{f.__name__}" for f in h.functions if hasattr(f, "__name__")]
        return sorted(set(names))


REGISTRY = Registry()


def batched_input(node: fx.Node, expected_rank: int | None = None) -> tuple | None:
    """The shape of the node's first input if its first axis is the batch axis, else None."""
    arg = node.args[0] if node.args else None
    if not isinstance(arg, fx.Node):
        return None
    meta = arg.meta.get("tensor_meta")
    meta2 = arg.meta.get("tensor_meta_b2")
    if meta is None:
        return None
    shape = tuple(meta.shape)
    if expected_rank is not None and len(shape) != expected_rank:
        return None
    if meta2 is not None and arg.meta.get("batch_axis_ok") is False:
        return None
    return shape
