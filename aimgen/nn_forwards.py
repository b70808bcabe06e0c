"""torch.nn's transformer modules, traced through: the forwards torch.fx follows instead of theirs.

torch.fx keeps every torch.nn module whole (a leaf), which for nn.TransformerEncoder,
nn.TransformerDecoder and nn.Transformer hides every Linear and attention inside them from the
memory. Their own forwards cannot be traced either: they branch on the input (``src.dim()``,
``src.is_nested``) to choose between a fused inference kernel and the Python code of their
layers. What torch.fx follows here instead is that Python code, torch's own "slow path",
which the fused kernel computes the same function as (to float rounding) for the inputs it
accepts. One difference: torch's encoder, given a ``src_key_padding_mask`` in eval mode
without gradients, may run on nested tensors and then returns zeros at the padded positions;
the forward written here returns the values computed there (the unpadded positions agree).

The layers call their submodules and their own ``_sa_block``/``_mha_block``/``_ff_block``
methods as torch writes them; masks are handed on as given (nn.MultiheadAttention, and
aimgen's MemoryMultiheadAttention, accept boolean and float masks alike).
"""
from __future__ import annotations

from torch import nn


def encoder_layer(self: nn.TransformerEncoderLayer, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
    x = src
    if self.norm_first:
        x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
        x = x + self._ff_block(self.norm2(x))
    else:
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
        x = self.norm2(x + self._ff_block(x))
    return x


def encoder(self: nn.TransformerEncoder, src, mask=None, src_key_padding_mask=None, is_causal=None):
    output = src
    for mod in self.layers:
        output = mod(output, src_mask=mask, is_causal=bool(is_causal), src_key_padding_mask=src_key_padding_mask)
    if self.norm is not None:
        output = self.norm(output)
    return output


def decoder_layer(self: nn.TransformerDecoderLayer, tgt, memory, tgt_mask=None, memory_mask=None,
                  tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False,
                  memory_is_causal=False):
    # torch's own forward, as written there: here so that its lines name the values in the
    # written class (torch's files name nothing), the same in every layer
    x = tgt
    if self.norm_first:
        x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
        x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
        x = x + self._ff_block(self.norm3(x))
    else:
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        x = self.norm3(x + self._ff_block(x))
    return x


def decoder(self: nn.TransformerDecoder, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
            memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
    output = tgt
    for mod in self.layers:
        output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                     tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                     tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
    if self.norm is not None:
        output = self.norm(output)
    return output


def transformer(self: nn.Transformer, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                src_is_causal=None, tgt_is_causal=None, memory_is_causal=False):
    memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
    return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)


#: torch.nn class -> the forward torch.fx traces for it
TRACED_FORWARDS = {
    nn.TransformerEncoderLayer: encoder_layer,
    nn.TransformerDecoderLayer: decoder_layer,
    nn.TransformerEncoder: encoder,
    nn.TransformerDecoder: decoder,
    nn.Transformer: transformer,
}
