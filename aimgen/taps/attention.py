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
from .base import REGISTRY, CallSource, Constructor, Skip, TapKind, TapSite, TapWidth, not_batched


# --- what the generated code runs (copied into every file that taps this kind) -----------

def attention_mask(attn_mask, key_padding_mask, q: torch.Tensor) -> torch.Tensor | None:
    """nn.MultiheadAttention's masks as one additive mask over (N, heads, L, S) scores: a
    boolean mask is -inf where True, a float mask is added as it is; (N * heads, L, S) masks
    are per head, (L, S) masks shared, key_padding_mask (N, S) masks keys per sample."""
    def additive(mask):
        if mask is None or mask.is_floating_point():
            return mask
        return torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(mask, float("-inf"))

    mask, pad = additive(attn_mask), additive(key_padding_mask)
    if mask is not None and mask.dim() == 3:
        mask = mask.view(q.shape[0], q.shape[1], *mask.shape[1:])
    if pad is not None:
        pad = pad.view(pad.shape[0], 1, 1, pad.shape[1])
        mask = pad if mask is None else mask + pad
    return mask


class MemoryMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention whose query, key, value and output projections also read
    ``memory_features`` fitted memory features m (broadcast over the sequence): each projection
    p(x) is p(x) + F.linear(m, its rows of ``memory_weight``), = p(cat([x, m], -1)). The rest is
    the attention nn.MultiheadAttention computes, written out."""

    def __init__(self, *args, memory_features: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        fan_in = self.embed_dim + memory_features
        self.memory_weight = weight_parameter((4 * self.embed_dim, memory_features), fan_in)

    def forward(self, query, key, value, m, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self.batch_first:   # (L, N, E) -> (N, L, E); m is (N or 1, 1, k) either way
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, length, e = query.shape
        weights = self.in_proj_weight.chunk(3)
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        memory = self.memory_weight.chunk(4)
        q, k, v = (F.linear(x, w, b) + F.linear(m, mw) for x, w, b, mw in zip((query, key, value), weights,
                                                                            biases, memory))
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))  # (N, heads, L, d)
        mask = attention_mask(attn_mask, key_padding_mask, q)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            attn = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            attn = F.dropout(attn, dropout) if dropout > 0 else attn
            out = attn @ v
            attn = attn.mean(1) if average_attn_weights else attn
        else:
            out, attn = F.scaled_dot_product_attention(q, k, v, mask, dropout), None
        out = self.out_proj(out.transpose(1, 2).reshape(n, length, e)) + F.linear(m, memory[3])
        return (out if self.batch_first else out.transpose(0, 1)), attn


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
        inputs = [node.args[i] if len(node.args) > i else node.kwargs.get(name) for i, name in enumerate(ARGS[:3])]
        for x in inputs:
            meta = getattr(x, "meta", {}).get("tensor_meta") if isinstance(x, fx.Node) else None
            if meta is None or len(meta.shape) != 3:
                return Skip(node.name, node.target, "MultiheadAttention", "its query, key and value are not all "
                            "batched sequences (3-d)")
            if not (x.meta.get("batch_axis_ok") if mha.batch_first else x.meta.get("batch_second")):
                layout = "(N, L, E) with the batch first" if mha.batch_first else "(L, N, E) with the batch second"
                return Skip(node.name, node.target, "MultiheadAttention", not_batched(node, f"its inputs are not {layout}"))
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
        were given (``self.attn(q, k, value=v)``), then the memory, then the rest by name."""
        named = src.named(ARGS, {})
        rest = [f"{name}={named[name]}" for name in ARGS[3:] if name in named]
        return f"{src.callee}({', '.join([named['query'], named['key'], named['value'], src.memory] + rest)})"

    def comment(self, site: TapSite, width: TapWidth, name: str, x: str = "x") -> str:
        return f"= {name} with cat([., m], -1) into its q, k, v and output projections"
