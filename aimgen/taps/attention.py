"""nn.MultiheadAttention: memory features join the input of each of its projections.

torch runs the whole layer as one function (its query, key and value projections are one packed
``in_proj_weight``, its output projection the ``out_proj`` Linear), so a tap is the layer
written out: ``MemoryMultiheadAttention`` computes what nn.MultiheadAttention computes, with each
projection ``p(x)`` read as a Linear tap reads it, ``p(x) + F.linear(m, its memory weights)``
(``linear(cat([x, m], -1))``), m broadcast over the sequence. One parameter, ``memory_weight``
(4 * embed_dim, k), holds the memory's weights of the query, key, value and output projections,
in that order. Sum form only: a widened packed weight would no longer be nn.MultiheadAttention's.
Layers with separate key/value widths (kdim, vdim), ``add_bias_kv`` or ``add_zero_attn`` are
left as they are, with the reason.
"""
from __future__ import annotations

import math

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..runtime import weight_parameter
from .base import REGISTRY, CallSource, Constructor, Skip, TapKind, TapSite, TapWidth, node_arg, not_batched


# --- what the generated code runs (copied into every file that taps this kind) -----------

def additive_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """A boolean attention mask as the float mask it means (-inf where True), as torch.nn does."""
    if mask is None or mask.is_floating_point():
        return mask
    zeros = torch.zeros(mask.shape, dtype=like.dtype, device=like.device)
    return zeros.masked_fill(mask, float("-inf"))


def project(query, key, value, weight, bias):
    """q, k, v from the packed in_proj weight, as nn.MultiheadAttention computes them (one
    product where the inputs are one tensor, so the numbers are its own to the last bit)."""
    e = query.shape[-1]
    if key is value and query is key:
        qkv = F.linear(query, weight, bias).unflatten(-1, (3, e))
        return qkv.unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous().unbind(0)
    if key is value:
        b_q, b_kv = (None, None) if bias is None else bias.split([e, 2 * e])
        w_q, w_kv = weight.split([e, 2 * e])
        kv = F.linear(key, w_kv, b_kv).unflatten(-1, (2, e))
        kv = kv.unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        return (F.linear(query, w_q, b_q), *kv.unbind(0))
    biases = (None, None, None) if bias is None else bias.chunk(3)
    inputs = (query, key, value)
    return tuple(F.linear(x, w, b) for x, w, b in zip(inputs, weight.chunk(3), biases))


class MemoryMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention whose query, key, value and output projections also read
    ``memory_features`` fitted memory features m (broadcast over the sequence): each
    projection p(x) is p(x) + F.linear(m, its rows of ``memory_weight``), = p(cat([x, m], -1)).
    The rest is what torch.nn computes, step for step (F.multi_head_attention_forward),
    sequence first."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.embed_dim + memory_features
        self.memory_weight = weight_parameter((4 * self.embed_dim, memory_features), fan_in)

    def forward(self, query, key, value, m, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        # to (L, N, E), keeping which inputs are one tensor (as torch.nn does)
        if self.batch_first:
            if key is value and query is key:
                query = key = value = query.transpose(1, 0)
            elif key is value:
                query, key = query.transpose(1, 0), key.transpose(1, 0)
                value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        length, n, e = query.shape
        heads, d = self.num_heads, e // self.num_heads
        m = m.transpose(0, 1)   # (N or 1, 1, k) -> (1, N or 1, k): the batch is the second axis
        memory_weights = self.memory_weight.chunk(4)   # q, k, v, output
        projected = project(query, key, value, self.in_proj_weight, self.in_proj_bias)
        q, k, v = (p + F.linear(m, w) for p, w in zip(projected, memory_weights))
        mask, pad = additive_mask(attn_mask, q), additive_mask(key_padding_mask, q)
        mask = mask.unsqueeze(0) if mask is not None and mask.dim() == 2 else mask
        q = q.view(length, n * heads, d).transpose(0, 1)
        k = k.view(k.shape[0], n * heads, d).transpose(0, 1)
        v = v.view(v.shape[0], n * heads, d).transpose(0, 1)
        if pad is not None:
            pad = pad.view(n, 1, 1, k.shape[1]).expand(-1, heads, -1, -1)
            pad = pad.reshape(n * heads, 1, k.shape[1])
            mask = pad if mask is None else mask + pad
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scaled = q * math.sqrt(1.0 / d)
            scores = torch.bmm(scaled, k.transpose(-2, -1)) if mask is None else \
                torch.baddbmm(mask, scaled, k.transpose(-2, -1))
            attn = torch.softmax(scores, dim=-1)
            attn = F.dropout(attn, p=dropout) if dropout > 0.0 else attn
            out = torch.bmm(attn, v).transpose(0, 1).contiguous().view(length * n, e)
            attn = attn.view(n, heads, length, k.shape[1])
            attn = attn.mean(dim=1) if average_attn_weights else attn
        else:
            causal = is_causal and pad is None   # torch's hint: the mask is then left to it
            if mask is not None and not causal:
                shared = mask.shape[0] == 1 and mask.dim() == 3
                mask = mask.unsqueeze(0) if shared else mask.view(n, heads, -1, k.shape[1])
            q, k, v = q.view(n, heads, length, d), k.view(n, heads, -1, d), v.view(n, heads, -1, d)
            mask = None if causal else mask
            out = F.scaled_dot_product_attention(q, k, v, mask, dropout, causal)
            out, attn = out.permute(2, 0, 1, 3).contiguous().view(length * n, e), None
        out = self.out_proj(out).view(length, n, e) + F.linear(m, memory_weights[3])
        return (out.transpose(1, 0) if self.batch_first else out), attn


# --- the kind ---------------------------------------------------------------------------------

ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
        "is_causal")


@REGISTRY.register
class MultiheadAttentionKind(TapKind):
    key = "attention"
    module_types = (nn.MultiheadAttention,)
    runtime_objects = (MemoryMultiheadAttention,)
    literal = False

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        mha = root.get_submodule(node.target)
        why = ("its key and value widths differ from the query's (kdim, vdim)" if not mha._qkv_same_embed_dim else
               "it has add_bias_kv" if mha.bias_k is not None else
               "it has add_zero_attn" if mha.add_zero_attn else "")
        if why:
            return Skip(node.name, node.target, "MultiheadAttention", why + ": left as torch.nn computes it")
        for x in (node_arg(node, ARGS, name) for name in ARGS[:3]):
            meta = getattr(x, "meta", {}).get("tensor_meta") if isinstance(x, fx.Node) else None
            if meta is None or len(meta.shape) != 3:
                return Skip(node.name, node.target, "MultiheadAttention", "its query, key and value are not all "
                            "batched sequences (3-d)")
            if not (x.meta.get("batch_axis_ok") if mha.batch_first else x.meta.get("batch_second")):
                layout = "(N, L, E) with the batch first" if mha.batch_first else "(L, N, E) with the batch second"
                return Skip(node.name, node.target, "MultiheadAttention",
                            not_batched(node, f"its inputs are not {layout}"))
        return TapSite(
            node=node.name, qualname=node.target, layer_type="MultiheadAttention", kind=self.key, axis=-1,
            in_size=mha.embed_dim, out_size=mha.embed_dim, groups=1, kernel=(), spatial=(),
            weight=f"{node.target}.in_proj_weight",
        )

    def runtime(self, site: TapSite, form: str, width: TapWidth):
        return (MemoryMultiheadAttention,)

    def extra_params(self, site: TapSite, width: TapWidth) -> int:
        return 4 * site.in_size * width.k   # the query, key, value and output projections

    def memory_shape(self, site: TapSite, width: TapWidth) -> tuple[int, ...]:
        return (4 * site.in_size, width.k)

    def layer_sum(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        return ctor.renamed("MemoryMultiheadAttention").with_arg("memory_features", width.k)

    def input_source(self, src: CallSource) -> str:
        return src.named(ARGS, {})["query"]

    def call(self, site: TapSite, form: str, width: TapWidth, src: CallSource) -> str:
        """``layer(query, key, value, m, ...)``: the three inputs positional whichever way they
        were given (``self.attn(q, k, value=v)``), then the memory, then the rest by name, in
        the caller's order."""
        named = src.named(ARGS, {})
        rest = [f"{name}={value}" for name, value in zip(ARGS[3:], src.args[3:])]
        rest += [f"{name}={value}" for name, value in src.kwargs.items() if name not in ARGS[:3]]
        return f"{src.callee}({', '.join([named['query'], named['key'], named['value'], src.memory] + rest)})"

    def comment(self, site: TapSite, width: TapWidth, name: str, x: str = "x") -> str:
        return f"= {name} with cat([., m], -1) into its q, k, v and output projections"
