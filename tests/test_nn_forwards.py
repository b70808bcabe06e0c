"""aimgen/nn_forwards.py: the forwards torch.fx follows through torch.nn's transformer modules
compute what the modules' own forwards compute (their fused eval() kernel included), masks
and both layouts alike."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from aimgen.nn_forwards import TRACED_FORWARDS


def _same(module: nn.Module, *args, **kwargs) -> None:
    forward = TRACED_FORWARDS[type(module)]
    with torch.no_grad():
        want, got = module(*args, **kwargs), forward(module, *args, **kwargs)
    assert got.shape == want.shape and (got - want).abs().max() < 1e-5


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_decoder_and_transformer_compute_what_torch_computes(norm_first, batch_first):
    torch.manual_seed(0)
    model = nn.Transformer(16, 2, 2, 2, 32, dropout=0.0, batch_first=batch_first, norm_first=norm_first).eval()
    src, tgt = torch.randn(3, 7, 16), torch.randn(3, 5, 16)
    if not batch_first:
        src, tgt = src.transpose(0, 1), tgt.transpose(0, 1)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[0, 5:] = True
    for training in (False, True):   # eval() may take torch's fused kernel; train() its Python path
        model.train(training)
        _same(model, src, tgt)
        _same(model, src, tgt, tgt_mask=causal, tgt_is_causal=True)
        _same(model.encoder, src, mask=torch.triu(torch.ones(7, 7, dtype=torch.bool), 1))
        _same(model.decoder, tgt, model.encoder(src), tgt_mask=causal, memory_key_padding_mask=padding)
        layer = model.encoder.layers[0]
        _same(layer, src, src_key_padding_mask=padding if training else None)
        _same(model.decoder.layers[1], tgt, model.encoder(src), tgt_mask=causal, tgt_is_causal=True,
              memory_key_padding_mask=padding)


def test_only_the_encoder_with_a_padding_mask_in_eval_may_differ_and_only_at_padded_positions():
    """torch's encoder, in eval() without gradients, runs nested tensors for a padding mask and
    returns zeros at the padded positions; the forward aimgen follows returns the values there.
    Everywhere else they agree (nn_forwards.py says so)."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2).eval()
    src = torch.randn(3, 7, 16)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[0, 5:] = True
    with torch.no_grad():
        want = encoder(src, src_key_padding_mask=padding)
        got = TRACED_FORWARDS[nn.TransformerEncoder](encoder, src, src_key_padding_mask=padding)
    keep = ~padding
    assert (got[keep] - want[keep]).abs().max() < 1e-5
