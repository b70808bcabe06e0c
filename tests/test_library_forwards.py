"""The forwards torch.fx follows for torchvision's Swin attention compute torchvision's own
function: every mode of it (shifted or not, the shift turned off where the window covers the
map, V1 and V2, padding), bit for bit where the operations are the same."""
from __future__ import annotations

import pytest
import torch
from torchvision.models import swin_transformer as swin

from aimgen.library_forwards import library_forward


@pytest.mark.parametrize("cls", [swin.ShiftedWindowAttention, swin.ShiftedWindowAttentionV2])
@pytest.mark.parametrize("shift", [0, 3])
@pytest.mark.parametrize("size", [(14, 14), (9, 12), (7, 7), (5, 5)])  # (7, 7), (5, 5): no shift there
def test_swin_attention_is_torchvisions(cls, shift, size):
    torch.manual_seed(0)
    attn = cls(dim=32, window_size=[7, 7], shift_size=[shift, shift], num_heads=4).eval()
    with torch.no_grad():   # V2's key bias is zeroed inside torchvision's function: make it matter
        attn.qkv.bias.normal_()
        attn.proj.bias.normal_()
    x = torch.randn(2, *size, 32)
    forward = library_forward(attn)
    assert forward is not None
    with torch.no_grad():
        torch.testing.assert_close(forward(attn, x), attn(x), atol=1e-6, rtol=0)


def test_only_the_listed_classes_have_a_forward():
    assert library_forward(torch.nn.Linear(2, 2)) is None
    assert library_forward(swin.PatchMerging(8)) is None


@pytest.mark.parametrize("shift", [[0, 0, 0], [4, 3, 3], [1, 3, 3]])
@pytest.mark.parametrize("size", [(8, 14, 14), (3, 9, 5), (2, 3, 3), (16, 16, 16)])  # (2, 3, 3): windows shrink
def test_video_swin_attention_is_torchvisions(shift, size):
    from torchvision.models.video import swin_transformer as swin3d

    torch.manual_seed(0)
    attn = swin3d.ShiftedWindowAttention3d(32, [8, 7, 7], shift, 4).eval()
    x = torch.randn(2, *size, 32)
    with torch.no_grad():
        assert torch.equal(library_forward(attn)(attn, x), attn(x))
