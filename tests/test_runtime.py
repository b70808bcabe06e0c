"""aimgen/runtime.py: the memory, its fits (each computed once), the carry, the update block and
the literal form's concatenations, as real code (the same code generated files carry)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aimgen import runtime as rt


@pytest.mark.parametrize("numel,channels,size", [(50, 1, (4, 4)), (50, 2, (8, 8)), (64, 1, (8, 8)), (10, 3, ())])
def test_fit_memory_pads_or_folds_so_every_value_is_seen_once(numel, channels, size):
    memory = torch.randn(2, numel)
    fitted = rt.fit_memory(memory, channels, size)
    assert fitted.shape == (2, channels, *size)
    assert torch.allclose(fitted.sum((1, *range(2, 2 + len(size)))), memory.sum(1), atol=1e-5)
    per_fold = channels * math.prod(size)
    if numel <= per_fold:  # the article's case: one zero-padded copy
        assert torch.equal(fitted.reshape(2, -1)[:, :numel], memory)


def test_memory_state_fits_each_size_once_and_broadcasts_a_single_row():
    state = rt.MemoryState(torch.randn(4, 3, 3))
    calls = []
    original = rt.fit_memory
    rt.fit_memory = lambda *a: calls.append(a[1:]) or original(*a)
    try:
        x, y = torch.randn(8, 5, 6, 6), torch.randn(8, 7, 6, 6)
        assert state.channels(1, x) is state.channels(1, y)  # same width and size: computed once
        assert state.channels(1, x).shape == (1, 1, 6, 6)    # one row for every sample
        state.channels(1, torch.randn(8, 5, 3, 3))
        state.features(9, torch.randn(8, 2, 16))
        assert state.features(9, torch.randn(8, 16)).shape == (1, 9)
    finally:
        rt.fit_memory = original
    assert calls == [(1, (6, 6)), (1, (3, 3)), (9, ())]


def test_the_carry_moves_in_train_stays_in_eval_and_resets():
    memory = rt.Memory((2, 3, 3), carry_rate=0.5)
    target = memory.read().detach() + 1.0
    memory.eval()
    memory.write(target)
    assert memory.carry.abs().sum() == 0
    memory.train()
    memory.write(target)
    assert torch.allclose(memory.carry, torch.full((2, 3, 3), 0.5))
    memory.reset()
    assert memory.carry.abs().sum() == 0 and "carry" in memory.state_dict()


def test_an_update_block_writes_a_bounded_per_sample_memory():
    update = rt.MemoryUpdate(features=6, memory_channels=4, rank=2)
    state = rt.MemoryState(torch.randn(4, 3, 3))
    new = update(state, torch.randn(5, 6, 3, 3) * 100)
    assert new.tensor.shape == (5, 4, 3, 3) and new.fits == {}
    bound = torch.maximum(state.tensor.abs(), torch.ones(1)).max()
    assert new.tensor.abs().max() <= bound + 1e-6  # a gated mix of the old value and a tanh
    assert new.final().shape == (4, 3, 3)


def test_memory_sequential_threads_the_memory_through_its_blocks():
    class Block(torch.nn.Module):
        def forward(self, x, memory):
            return x + memory.channels(1, x), rt.MemoryState(memory.tensor * 2, batched=True)

    seq = rt.MemorySequential(Block(), Block())
    x, memory = seq(torch.zeros(2, 1, 2, 2), rt.MemoryState(torch.ones(4)))
    assert torch.equal(memory.tensor, torch.full((1, 4), 4.0)) and torch.equal(x, torch.full((2, 1, 2, 2), 3.0))
    assert list(dict(seq.named_children())) == ["0", "1"]


def test_literal_concatenations():
    x, m = torch.randn(3, 4, 5, 5), torch.randn(1, 1, 5, 5)
    assert rt.cat_channels(x, m).shape == (3, 5, 5, 5)
    grouped = rt.cat_grouped(x, m, 2)  # [x0, x1, m, x2, x3, m]
    assert torch.equal(grouped[:, 2], m.expand(3, 1, 5, 5)[:, 0]) and torch.equal(grouped[:, 3], x[:, 2])
    feats = rt.cat_features(torch.randn(3, 7, 8), torch.randn(1, 1, 2))
    assert feats.shape == (3, 7, 10)


def test_weight_parameter_is_drawn_like_a_layer():
    torch.manual_seed(0)
    w = rt.weight_parameter((64, 16), fan_in=16)
    assert isinstance(w, torch.nn.Parameter) and w.abs().max() <= 0.25 and w.std() > 0.1


def test_an_update_block_draws_what_three_linear_layers_would_and_computes_as_them():
    torch.manual_seed(0)
    update = rt.MemoryUpdate(features=6, memory_channels=4, rank=3)
    torch.manual_seed(0)
    from_features, from_memory = torch.nn.Linear(6, 3), torch.nn.Linear(4, 3, bias=False)
    to_memory = torch.nn.Linear(3, 8)
    for mine, theirs in ((update.weight_features, from_features.weight), (update.bias_features, from_features.bias),
                         (update.weight_memory, from_memory.weight), (update.weight_write, to_memory.weight),
                         (update.bias_write, to_memory.bias)):
        torch.testing.assert_close(mine, theirs, atol=1e-7, rtol=0)
    state, features = rt.MemoryState(torch.randn(4, 2, 2)), torch.randn(5, 6, 2, 2)
    m = state.tensor.movedim(1, -1)
    gate, candidate = to_memory(torch.relu(from_features(features.movedim(1, -1)) + from_memory(m))).chunk(2, -1)
    gate = torch.sigmoid(gate)
    expected = ((1 - gate) * m + gate * torch.tanh(candidate)).movedim(-1, 1)
    torch.testing.assert_close(update(state, features).tensor, expected, atol=1e-6, rtol=0)
    assert sorted(dict(update.named_parameters())) == ["bias_features", "bias_write", "weight_features",
                                                       "weight_memory", "weight_write"]


@pytest.mark.parametrize("shape,rows,channels_last", [((3, 5, 4, 6), 3, False), ((3, 5, 4, 6), 1, False),
                                                       ((3, 5, 4, 6), 3, True), ((2, 4, 7), 1, False),
                                                       ((2, 4, 3, 2, 5), 2, False)])
def test_add_product_of_one_value_is_addcmul_in_value_and_gradients(shape, rows, channels_last):
    out = torch.randn(shape)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    out.requires_grad_()
    m = torch.randn(rows, 1, *shape[2:], requires_grad=True)
    weight = torch.randn(shape[1], 1, *([1] * (len(shape) - 2)), requires_grad=True)
    grad = torch.randn(shape)
    broadcast = weight.view(1, -1, *[1] * (len(shape) - 2))
    results = []
    for y in (rt.add_product(out, m, weight), torch.addcmul(out, m, broadcast)):
        results.append([y.detach(), *torch.autograd.grad(y, (out, m, weight), grad)])
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows,stride,padding,dilation,channels_last", [
    (3, 1, 1, 1, False), (1, 2, 3, 1, False), (3, 2, 0, 2, False), (3, 1, 1, 1, True)])
def test_add_product_of_patches_is_a_one_channel_conv(rows, stride, padding, dilation, channels_last):
    """A k x k layer's memory read: its unfolded patches through a (C, 1, k, k) weight."""
    m = torch.randn(rows, 1, 11, 11, requires_grad=True)
    weight = torch.randn(6, 1, 3, 3, requires_grad=True)
    conv = torch.nn.functional.conv2d(m, weight, None, stride, padding, dilation)
    out = torch.randn(3, 6, *conv.shape[2:])
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    out.requires_grad_()
    patches = torch.nn.functional.unfold(m, 3, dilation, padding, stride)
    grad = torch.randn(out.shape)
    results = []
    for y in (rt.add_product(out, patches, weight), out + conv):
        results.append([y.detach(), *torch.autograd.grad(y, (out, m, weight), grad)])
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_an_update_block_hands_back_a_channels_first_gradient():
    """A channels-last gradient for the pooled features made adaptive_avg_pool2d's backward
    clone and copy the whole feature map it pooled (about 60 ms of a resnet50 step each)."""
    update = rt.MemoryUpdate(features=6, memory_channels=4, rank=3)
    features = torch.randn(5, 6, 3, 3, requires_grad=True) * 1  # not a leaf: .grad's layout is not
    seen = []                                                     # forced there
    features.register_hook(seen.append)
    update(rt.MemoryState(torch.randn(4, 3, 3)), features).tensor.sum().backward()
    assert seen[0].is_contiguous()


def test_an_update_block_of_a_memory_without_a_grid():
    update = rt.MemoryUpdate(features=6, memory_channels=4, rank=3)
    new = update(rt.MemoryState(torch.randn(4)), torch.randn(5, 6))
    assert new.tensor.shape == (5, 4) and new.final().shape == (4,)


@pytest.mark.parametrize("shape,grid", [
    ((2, 3, 8, 14, 14), (2, 7, 7)), ((1, 2, 5, 9, 7), (3, 4, 2)), ((2, 1, 3, 3, 3), (3, 3, 3)),   # 3-d
    ((2, 5, 14, 14), (7, 7)), ((2, 5, 9, 7), (4, 2)), ((3, 4, 7, 7), (7, 7)), ((2, 3, 12, 8), (3, 4)),  # 2-d
    ((2, 3, 10), (5,)), ((2, 3, 7), (3,)), ((2, 3, 4), (4,))])                                         # 1-d
def test_pool_to_grid_is_adaptive_average_pooling(shape, grid):
    """Whole windows (14 -> 7), uneven ones (9 -> 4), overlapping ones (7 -> 2 takes 0:4 and 3:7)
    and the identity (7 -> 7); forward and backward."""
    pool = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[len(grid) - 1]
    x = torch.randn(shape, requires_grad=True)
    got, want = rt.pool_to_grid(x, grid), pool(x, grid)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)
    w = torch.randn(want.shape)
    (gx,) = torch.autograd.grad((got * w).sum(), x)
    (wx,) = torch.autograd.grad((want * w).sum(), x)
    assert torch.allclose(gx, wx, atol=1e-6)


def test_pool_to_grid_of_a_map_at_the_grids_size_is_a_copy_the_model_may_change_in_place():
    """The identity pooling costs what a real one costs (22 ms a step at resnet50's last stage), so
    it is skipped; but x itself would break the backward pass where the base model then changes
    x in place (nn.ReLU(inplace=True)), so the features are a copy."""
    update = rt.MemoryUpdate(features=4, memory_channels=2, rank=2)
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    y = x * 1
    memory = update(rt.MemoryState(torch.randn(2, 5, 5)), rt.pool_to_grid(y, (5, 5)))
    F.relu(y, inplace=True)
    (memory.final().sum() + y.sum()).backward()      # no "modified by an inplace operation"
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_weight_parameter_draws_as_a_layer_with_its_fan_in_from_the_shape_unless_given():
    torch.manual_seed(0)
    w = rt.weight_parameter((16, 8, 3, 3))
    assert isinstance(w, torch.nn.Parameter) and w.requires_grad
    assert w.abs().max() <= 72 ** -0.5 and w.abs().max() > 0.9 * 72 ** -0.5   # fan_in = 8 * 3 * 3
    torch.manual_seed(0)
    assert torch.equal(rt.weight_parameter((16, 8, 3, 3), 72), w)
    assert rt.weight_parameter((16, 8, 3, 3), 9).abs().max() > 72 ** -0.5      # a given fan_in wins


def test_per_view_gives_each_view_row_its_samples_memory():
    """x holds v views of N samples, view after view (torch.cat([a, b])): row j * N + i is
    sample i's; one memory row (shared by the batch) goes to every row."""
    from aimgen.runtime import per_view

    m = torch.arange(3.0).reshape(3, 1, 1, 1)           # one row a sample
    x = torch.zeros(6, 4, 2, 2)                           # two views of three samples
    assert per_view(m, x).flatten().tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    assert per_view(torch.ones(1, 1, 2, 2), x).shape == (6, 1, 2, 2)
