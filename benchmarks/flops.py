"""What a conversion costs in arithmetic, from the plan (analytic) and counted by torch
(``torch.utils.flop_counter.FlopCounterMode``) as a cross-check.

Analytic multiply-accumulates per sample, forward, counting what FlopCounterMode counts
(convolutions and matrix products; elementwise work is not counted by either):
- base: every Conv/Linear of the traced graph: output elements x (input channels / groups)
  x kernel size (Linear: output elements x in_features); an nn.MultiheadAttention: its four
  projections and its two attention products;
- taps: a tap adds ``k`` input channels (features) to its layer, ``tap.extra_params`` weights,
  each used once per output position: ``extra_params x output positions`` (output elements
  / output channels);
- update blocks: three 1x1 mixes on the memory grid (P positions): features -> rank,
  memory channels -> rank, rank -> 2 x memory channels: ``P x (F r + C r + 2 r C)``;
- fitting the memory (pad, fold-sum, concat) is data movement, no MACs; it is reported as
  the elements the taps copy (``tap_copy``: each tap's input plus its memory channels, the
  ``torch.cat``), next to the elements the base graph's layers read (``base_reads``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aimgen.shapes import tensor_meta


def _per_sample(meta) -> int:
    shape = tuple(meta.shape)
    return math.prod(shape[1:]) if shape else 1


def _attention(module: nn.MultiheadAttention, node) -> int:
    """nn.MultiheadAttention per sample: the q, k, v and output projections (L or S tokens x
    E x E each) and the two attention products (L x S x E each)."""
    q, k = (tensor_meta(a).shape for a in (node.args[0], node.args[1] if len(node.args) > 1 else node.args[0]))
    axis = 1 if module.batch_first else 0
    length, keys, e = q[axis], k[axis], module.embed_dim
    return 2 * length * e * e + 2 * keys * e * e + 2 * length * keys * e


def analytic(conversion) -> dict:
    """MACs per sample (forward) of the base model, the taps and the update blocks."""
    traced, plan = conversion._traced, conversion.plan
    nodes = {n.name: n for n in traced.graph.nodes}
    base = reads = 0
    for node in traced.graph.nodes:
        if node.op != "call_module" or tensor_meta(node) is None:
            continue
        module = traced.root.get_submodule(node.target)
        out = _per_sample(tensor_meta(node))
        arg = node.args[0] if node.args and hasattr(node.args[0], "meta") else None
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
            base += out * module.in_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.modules.conv._ConvNd) and arg is not None and tensor_meta(arg) is not None:
            base += _per_sample(tensor_meta(arg)) * module.out_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.Linear):
            base += out * module.in_features
        elif isinstance(module, nn.MultiheadAttention) and arg is not None and tensor_meta(arg) is not None:
            base += _attention(module, node)
        else:
            continue
        if arg is not None and tensor_meta(arg) is not None:
            reads += _per_sample(tensor_meta(arg))
    taps = copy = 0
    for tap in plan.taps:
        node = nodes[tap.node]
        out_meta, in_meta = tensor_meta(node), tensor_meta(node.args[0])
        # (an attention's output is a tuple: its positions are its query's tokens)
        positions = _per_sample(out_meta if out_meta is not None else in_meta) // max(tap.out_size, 1)
        taps += plan.tap_params_of(tap) * positions
        inputs = _per_sample(in_meta)
        copy += inputs + inputs // max(tap.in_size, 1) * plan.width(tap).k * max(tap.groups, 1)
    grid = math.prod(plan.grid) if plan.grid else 1
    r, c = plan.rank, plan.memory_channels
    updates = sum(grid * (u.features * r + c * r + 2 * r * c) for u in plan.updates)
    return {"base": base, "taps": taps, "updates": updates, "increase": (taps + updates) / max(base, 1),
            "tap_copy": copy, "base_reads": reads}


def counted(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs torch counts for one training step (forward + backward) of ``model`` on ``x``."""
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()
