"""Shared checks for the tap-kind tests: a one-layer model converted in both forms."""
from __future__ import annotations

import torch
from torch import nn

import aimgen
from aimgen.weights import convert_form


def forms_agree(model: nn.Module, x: torch.Tensor, atol: float = 1e-5, **options):
    """Convert ``model`` in the sum and the literal form; give the sum form's memory weights
    non-zero values; move them to the literal form with ``convert_form``: both compute the same.
    Also both forms keep the base function with base weights. Returns (sum model, literal model)."""
    torch.manual_seed(0)
    opts = dict(updates="none", memory_size=64, budget=100.0) | options
    sum_conv = aimgen.convert(model, x[:1], base_weights=model.state_dict(), **opts)
    lit_conv = aimgen.convert(model, x[:1], base_weights=model.state_dict(), form="literal", **opts)
    with torch.no_grad():
        want = model.eval()(x)
    for conv in (sum_conv, lit_conv):
        aim = conv.build().eval()
        with torch.no_grad():
            assert (aim(x) - want).abs().max() <= atol, conv.plan.form
    summ, lit = sum_conv.build().eval(), lit_conv.build().eval()
    with torch.no_grad():
        for name, p in summ.named_parameters():
            if name.endswith("memory_weight") or name.endswith("_memory"):
                p.normal_()
    lit.load_state_dict(convert_form(summ.state_dict(), summ, to="literal"))
    back = convert_form(lit.state_dict(), summ, to="sum")
    assert all(torch.equal(back[k], v) for k, v in summ.state_dict().items())
    memory = summ.memory.read() + torch.randn_like(summ.memory.read())
    with torch.no_grad():
        a = summ.forward_with_memory(x, memory)[0]
        b = lit.forward_with_memory(x, memory)[0]
    assert (a - b).abs().max() <= atol, (a - b).abs().max()
    assert (a - want).abs().max() > 1e-3  # the memory matters
    return summ, lit
