"""diffusers' U-Nets and VAE, from small configs (random weights, nothing downloaded): each
converts with every conv and Linear layer tapped, keeps the base function with base weights,
and trains (``-m slow``: about a minute in all; the mechanisms they need have fast tests in
test_tracing.py and test_zoo.py)."""
from __future__ import annotations

import diffusers
import pytest
import torch

import aimgen
from aimgen.loader import InputSpec
from aimgen.records import recording

pytestmark = pytest.mark.slow

SMALL = dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8)
MODELS = {
    "unet2d": (lambda: diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8, **SMALL),
        [InputSpec((1, 3, 16, 16)), InputSpec((1,), torch.int64)]),
    "unet2d_condition": (lambda: diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=8, **SMALL),
        [InputSpec((1, 4, 16, 16)), InputSpec((1,), torch.int64), InputSpec((1, 4, 16))]),
    "autoencoder_kl": (lambda: diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, **SMALL),
        [InputSpec((1, 3, 16, 16))]),
}


def weight_layers(model: torch.nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))}


def inputs(specs, batch: int):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 1000, (batch, *s.shape[1:]), generator=g) if s.dtype == torch.int64
            else torch.randn((batch, *s.shape[1:]), generator=g) for s in specs]


@pytest.mark.parametrize("name", list(MODELS))
def test_diffusers_model_converts_with_every_layer_tapped_and_keeps_its_function(name):
    build, specs = MODELS[name]
    torch.manual_seed(0)
    with recording() as records:
        model = build().eval()
    conv = aimgen.convert(model, specs, base_weights=model.state_dict(), source_name=name,
                          constructor_args=records.by_name(model))
    assert {t.qualname for t in conv.plan.taps} == weight_layers(model) and not conv.plan.skipped
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    assert set(model.state_dict()) <= set(aim.state_dict())
    x = inputs(specs, 2)
    with torch.no_grad():
        assert (aim.eval()(*x)[0] - model(*x)[0]).abs().max() <= 1e-5
    aim.train()(*x)[0].square().mean().backward()
    reads = [p.grad for n, p in aim.named_parameters() if n.endswith("memory_weight")]
    assert len(reads) == len(conv.plan.taps) and all(g is not None and g.abs().sum() > 0 for g in reads)
