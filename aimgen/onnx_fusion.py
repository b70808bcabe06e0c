"""Rewrites of an exported AiM graph into the shapes onnxruntime fuses; exact up to rounding.

In the sum form a tapped convolution is ``conv(x, W) + conv(m, W_m)``. onnxruntime fuses a
Conv with the BatchNormalization and the activation after it, and runs the result in its
blocked (NCHWc) layout with a residual ``Add`` folded in as the conv's "Sum" input. The memory's
``Add`` between a Conv and its BatchNormalization stops the first fusion, so each normalization
becomes a pass of its own over the feature map; and where a residual follows, the conv's one Sum
input is taken by the memory's Add, so the residual Add and the activation run on their own.
Two rewrites of the graph give onnxruntime the shapes it fuses:

- ``BN(conv_a + conv_b)`` becomes ``conv_a' + conv_b'``: both weights scaled by the
  normalization's scale, its shift folded into one bias (what onnxruntime does for a lone Conv);
- ``(conv_a + conv_b) + c`` becomes ``conv_a + (conv_b + c)``: each Add then has a Conv of
  its own to be folded into.

Measured in benchmarks/forms.py (onnxruntime inference of resnet50 and mobilenet_v2).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def fuse_for_onnxruntime(model: Any) -> dict[str, int]:
    """Apply both rewrites to an onnx_ir model in place; returns how many of each were made."""
    graph = model.graph
    folded = sum(_fold_batch_norm(graph, node) for node in list(graph) if _is(node, "BatchNormalization"))
    moved = sum(_reassociate(node) for node in list(graph) if _is(node, "Add"))
    if moved:
        graph.sort()
    return {"batch_norms_folded": folded, "sums_moved": moved}


def _is(node: Any, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def _only_use(value: Any) -> Any:
    """The node that is this value's only reader, or None (several, or a graph output)."""
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0]


def _const(value: Any) -> np.ndarray | None:
    """The value's constant array; None for a computed value or a graph input (a default value
    that a caller may replace, as the stateful graph's memory)."""
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def _summed_convs(value: Any) -> tuple[Any, Any, Any] | None:
    """(add, conv_a, conv_b) where ``value`` is ``conv_a + conv_b``, read only once, and each
    Conv's output is read only by that Add."""
    add = value.producer()
    if not _is(add, "Add") or len(add.inputs) != 2:
        return None
    convs = [v.producer() for v in add.inputs]
    if not all(_is(c, "Conv") and _only_use(c.outputs[0]) is add for c in convs):
        return None
    return add, convs[0], convs[1]


def _fold_batch_norm(graph: Any, bn: Any) -> bool:
    """BN(conv_a + conv_b) -> conv_a' + conv_b' with scaled weights; False where it does not fit."""
    if len(bn.outputs) != 1 or bn.outputs[0].is_graph_output() or len(bn.inputs) != 5:
        return False
    if bn.attributes.get_int("training_mode", 0):
        return False
    found = _summed_convs(bn.inputs[0])
    params = [_const(v) for v in bn.inputs[1:]]
    if found is None or _only_use(bn.inputs[0]) is not bn or any(p is None for p in params):
        return False
    add, *convs = found
    weights = [c.inputs[1] for c in convs]
    if any(_const(w) is None or len(list(w.uses())) != 1 for w in weights):
        return False
    if any(len(c.inputs) > 2 and c.inputs[2] is not None and _const(c.inputs[2]) is None for c in convs):
        return False
    scale, shift, mean, var = (p.astype(np.float64) for p in params)
    eps = bn.attributes.get_float("epsilon", 1e-5)
    s = scale / np.sqrt(var + eps)
    if any(_const(w).shape[0] != s.shape[0] for w in weights):
        return False
    for i, (conv, weight) in enumerate(zip(convs, weights)):
        w = _const(weight)
        _set(weight, (w.astype(np.float64) * s.reshape(-1, *[1] * (w.ndim - 1))).astype(w.dtype))
        bias = conv.inputs[2] if len(conv.inputs) > 2 else None
        b = _const(bias).astype(np.float64) if bias is not None else np.zeros_like(s)
        b = b * s + (shift - mean * s if i == 0 else 0.0)
        if bias is not None:
            _set(bias, b.astype(w.dtype))
        elif i == 0:
            _add_bias(graph, conv, b.astype(w.dtype))
    bn.outputs[0].replace_all_uses_with(add.outputs[0])
    graph.remove(bn, safe=True)
    return True


def _set(value: Any, array: np.ndarray) -> None:
    import onnx_ir as ir

    value.const_value = ir.Tensor(array, name=value.name)


def _add_bias(graph: Any, conv: Any, array: np.ndarray) -> None:
    import onnx_ir as ir

    name = f"{conv.inputs[1].name}_folded_bias"
    value = ir.Value(name=name, const_value=ir.Tensor(array, name=name),
                     shape=ir.Shape(array.shape), type=ir.TensorType(conv.inputs[1].dtype))
    graph.register_initializer(value)
    conv.resize_inputs(3)
    conv.replace_input_with(2, value)


def _reassociate(outer: Any) -> bool:
    """(conv_a + conv_b) + c -> conv_a + (conv_b + c); False where it does not fit."""
    if len(outer.inputs) != 2:
        return False
    for side in (0, 1):
        found = _summed_convs(outer.inputs[side])
        if found is None or _only_use(outer.inputs[side]) is not outer:
            continue
        inner, conv_a, conv_b = found
        other = outer.inputs[1 - side]
        if other is conv_a.outputs[0] or other is conv_b.outputs[0]:
            return False
        inner.replace_input_with(0, conv_b.outputs[0])
        inner.replace_input_with(1, other)
        outer.replace_input_with(side, conv_a.outputs[0])
        outer.replace_input_with(1 - side, inner.outputs[0])
        return True
    return False
