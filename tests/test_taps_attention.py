"""aimgen/taps/attention.py: nn.MultiheadAttention written out, each of its projections reading
the memory as a Linear tap reads it; what torch.nn computes otherwise."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import aimgen
from aimgen.taps.attention import MemoryMultiheadAttention


def _pair(batch_first: bool, bias: bool = True, dropout: float = 0.0):
    torch.manual_seed(0)
    base = nn.MultiheadAttention(16, 4, dropout=dropout, bias=bias, batch_first=batch_first)
    aim = MemoryMultiheadAttention(16, 4, dropout=dropout, bias=bias, batch_first=batch_first, memory_features=3)
    aim.load_state_dict(base.state_dict(), strict=False)
    return base.eval(), aim.eval()


MASKS = {
    "none": {},
    "causal bool": {"attn_mask": torch.triu(torch.ones(5, 7, dtype=torch.bool), 1)},
    "float per head": {"attn_mask": torch.randn(2 * 4, 5, 7)},
    "padding": {"key_padding_mask": torch.tensor([[False] * 6 + [True], [False] * 7])},
    "both": {"attn_mask": torch.triu(torch.ones(5, 7, dtype=torch.bool), 1),
             "key_padding_mask": torch.tensor([[False] * 5 + [True] * 2, [False] * 7])},
}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("masks", list(MASKS))
@pytest.mark.parametrize("need_weights", [True, False])
def test_with_zero_memory_weights_it_computes_what_nn_multiheadattention_computes(batch_first, masks, need_weights):
    base, aim = _pair(batch_first)
    query, key = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    if not batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    m = torch.randn(2, 1, 3)
    nn.init.zeros_(aim.memory_weight)
    kwargs = dict(MASKS[masks], need_weights=need_weights)
    with torch.no_grad():
        out, weights = aim(query, key, key, m, **kwargs)
        want, want_weights = base(query, key, key, **kwargs)
    assert out.shape == want.shape and torch.equal(out, want)   # step for step: the same numbers
    assert (weights is None) == (want_weights is None)
    if weights is not None:
        assert (weights - want_weights).abs().max() < 1e-6
    with torch.no_grad():   # weights per head
        _, per_head = aim(query, key, key, m, **MASKS[masks], average_attn_weights=False)
        _, want_per_head = base(query, key, key, **MASKS[masks], average_attn_weights=False)
    assert per_head.shape == (2, 4, 5, 7) and (per_head - want_per_head).abs().max() < 1e-6


@pytest.mark.parametrize("bias", [True, False])
def test_the_memory_enters_each_projection_as_its_concatenated_features_would(bias):
    """Each sample's m is a constant across its sequence: cat([x, m]) through a widened
    projection is the base projection plus memory_weight @ m, a per-sample bias. So the layer
    equals nn.MultiheadAttention run sample by sample with those biases added."""
    base, aim = _pair(batch_first=True, bias=bias)
    nn.init.normal_(aim.memory_weight)
    x, m = torch.randn(2, 5, 16), torch.randn(2, 1, 3)
    with torch.no_grad():
        out, _ = aim(x, x, x, m, need_weights=False)
        for i in range(2):
            extra = aim.memory_weight @ m[i, 0]
            ref = nn.MultiheadAttention(16, 4, bias=True, batch_first=True).eval()
            ref.in_proj_weight.copy_(base.in_proj_weight)
            ref.out_proj.weight.copy_(base.out_proj.weight)
            ref.in_proj_bias.copy_((base.in_proj_bias if bias else 0) + extra[:48])
            ref.out_proj.bias.copy_((base.out_proj.bias if bias else 0) + extra[48:])
            want, _ = ref(x[i:i + 1], x[i:i + 1], x[i:i + 1], need_weights=False)
            assert (out[i:i + 1] - want).abs().max() < 1e-5


class Attention(nn.Module):
    def __init__(self, batch_first: bool = True, kdim: int | None = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, dropout=0.1, batch_first=batch_first, kdim=kdim, vdim=kdim)
        self.head = nn.Linear(16, 3)
        self.batch_first = batch_first

    def forward(self, x):
        seq = x if self.batch_first else x.transpose(0, 1)
        y, _ = self.attn(seq, seq, seq)
        return self.head((y if self.batch_first else y.transpose(0, 1)).mean(1))


@pytest.mark.parametrize("batch_first", [True, False])
def test_a_model_with_nn_multiheadattention_taps_it_and_keeps_its_function_with_base_weights(batch_first):
    torch.manual_seed(0)
    base = Attention(batch_first)
    conv = aimgen.convert(base, [(2, 6, 16)], base_weights=base.state_dict())
    assert sorted(t.qualname for t in conv.plan.taps) == ["attn", "head"] and not conv.plan.skipped
    k = conv.plan.width(next(t for t in conv.plan.taps if t.qualname == "attn")).k
    assert "MemoryMultiheadAttention(16, 4, dropout=0.1, " in conv.source
    # the user's own unpacking of its (output, weights), the memory read after its three inputs
    assert re.search(r"\n +y, _ = self\.attn\((\w+), \1, \1, memory\.features\(\d+, \1\)\)", conv.source)
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    assert aim.attn.memory_weight.shape == (64, k) and not aim.attn.memory_weight.any()
    assert set(base.state_dict()) <= set(aim.state_dict())
    x = torch.randn(3, 6, 16)
    with torch.no_grad():
        assert (aim.eval()(x) - base.eval()(x)).abs().max() < 1e-5
    aim.train()(x).square().mean().backward()
    assert aim.attn.memory_weight.grad.abs().sum() > 0


def test_the_literal_form_and_other_key_widths_leave_it_as_it_is_with_the_reason():
    literal = aimgen.convert(Attention(), [(2, 6, 16)], options=aimgen.Options(form="literal")).plan
    assert [t.qualname for t in literal.taps] == ["head"]
    assert "only the sum form" in {s.qualname: s.reason for s in literal.skipped}["attn"]
    torch.manual_seed(0)

    class Cross(Attention):
        def forward(self, x):
            y, _ = self.attn(x, x[..., :8], x[..., :8])
            return self.head(y.mean(1))

    plan = aimgen.convert(Cross(kdim=8), [(2, 6, 16)]).plan
    assert "(kdim, vdim)" in {s.qualname: s.reason for s in plan.skipped}["attn"]


def test_weights_move_between_forms_the_attention_reads_memory_only_in_the_sum_form():
    """convert_form: the literal form leaves nn.MultiheadAttention untapped, so its memory
    weights go to zeros on the way to the sum form, and come back only where they are zero."""
    from aimgen.errors import WeightsError
    from aimgen.weights import convert_form

    torch.manual_seed(0)
    model = aimgen.convert(Attention(), [(2, 6, 16)]).build()
    sd = model.state_dict()
    with pytest.raises(WeightsError, match="attn.memory_weight: a MemoryMultiheadAttention reads the memory only"):
        convert_form(sd, model, to="literal")
    sd["attn.memory_weight"].zero_()
    literal = convert_form(sd, model, to="literal")
    assert "attn.memory_weight" not in literal and literal["head.weight"].shape[1] > 16
    back = convert_form(literal, model, to="sum")
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_inputs_given_by_name_are_written_in_order_before_the_memory():
    """RT-DETR calls ``self.ma(q, k, value=src, attn_mask=...)``: the memory went in as the
    third positional argument ('got multiple values for argument value')."""
    class ByName(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            y = self.attn(x + 1, key=x, value=x, need_weights=False)[0]
            return self.head(y.mean(1))

    torch.manual_seed(0)
    base = ByName()
    conv = aimgen.convert(base, [(2, 6, 16)], base_weights=base.state_dict())
    assert re.search(r"self\.attn\((\w+), x, x, memory\.features\(\d+, \1\), need_weights=False\)", conv.source)
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(3, 6, 16)
    with torch.no_grad():
        assert (aim.eval()(x) - base.eval()(x)).abs().max() < 1e-5
