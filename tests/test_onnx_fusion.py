"""aimgen.onnx_fusion: the rewrites that give onnxruntime back its fusions, on graphs exported
from small sum-form layers (and from a generated model through aimgen's own export): what
is rewritten, what is left alone, and that the numbers do not change.
"""
from __future__ import annotations

import collections
import io

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from aimgen.export import export_model
from aimgen.onnx_fusion import fuse_for_onnxruntime
from aimgen.readback import load_generated

from conftest import convert_to_file


class Tap(nn.Module):
    """One tapped layer of a residual block in the sum form: BN(conv(x) + conv(m)), then the
    residual and the ReLU."""

    def __init__(self, bias: bool = False, residual: bool = True, shared: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=bias)
        self.memory = self.conv if shared else nn.Conv2d(1 if not shared else 8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.residual = residual

    def forward(self, x, m):
        out = self.bn(self.conv(x) + self.memory(m))
        return torch.relu(out + x if self.residual else out)


def _exported(module: nn.Module, m_channels: int = 1):
    torch.manual_seed(0)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
        module.bn.weight.uniform_(0.5, 2)
        module.bn.bias.uniform_(-1, 1)
    module.eval()
    args = (torch.randn(2, 8, 6, 6), torch.randn(2, m_channels, 6, 6))
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, input_names=["x", "m"], verbose=False)
    return program, {"x": args[0].numpy(), "m": args[1].numpy()}


def _run(proto, feeds) -> np.ndarray:
    buffer = io.BytesIO()
    onnx.save(proto, buffer)
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _ops(proto) -> collections.Counter:
    return collections.Counter(n.op_type for n in proto.graph.node)


def test_batch_norm_folds_into_both_convs_and_the_residual_sum_moves_inward():
    program, feeds = _exported(Tap())
    before = program.model_proto
    expected = _run(before, feeds)
    assert _ops(before)["BatchNormalization"] == 1

    assert fuse_for_onnxruntime(program.model) == {"batch_norms_folded": 1, "sums_moved": 1}
    after = program.model_proto
    assert _ops(after)["BatchNormalization"] == 0
    np.testing.assert_allclose(_run(after, feeds), expected, rtol=1e-5, atol=1e-5)
    # relu(conv_a + (conv_b + x)): each Add has a Conv of its own to become that Conv's Sum
    producer = {out: node for node in after.graph.node for out in node.output}
    relu = next(n for n in after.graph.node if n.op_type == "Relu")
    outer = producer[relu.input[0]]
    kinds = sorted(producer[i].op_type for i in outer.input)
    assert outer.op_type == "Add" and kinds == ["Add", "Conv"]
    inner = next(producer[i] for i in outer.input if producer[i].op_type == "Add")
    assert sorted(producer[i].op_type if i in producer else i for i in inner.input) == ["Conv", "x"]


def test_a_conv_bias_is_scaled_and_the_shift_lands_once():
    program, feeds = _exported(Tap(bias=True, residual=False))
    expected = _run(program.model_proto, feeds)
    assert fuse_for_onnxruntime(program.model) == {"batch_norms_folded": 1, "sums_moved": 0}
    np.testing.assert_allclose(_run(program.model_proto, feeds), expected, rtol=1e-5, atol=1e-5)


def test_a_weight_that_two_convs_read_is_not_rescaled():
    """Scaling a shared weight for one of its readers would change the other."""
    program, feeds = _exported(Tap(shared=True, residual=False), m_channels=8)
    expected = _run(program.model_proto, feeds)
    assert fuse_for_onnxruntime(program.model) == {"batch_norms_folded": 0, "sums_moved": 0}
    assert _ops(program.model_proto)["BatchNormalization"] == 1
    np.testing.assert_allclose(_run(program.model_proto, feeds), expected, rtol=1e-6, atol=1e-6)


def test_a_lone_conv_and_batch_norm_are_left_to_onnxruntime():
    module = nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
    with torch.no_grad():
        program = torch.onnx.export(module, (torch.randn(2, 8, 6, 6),), dynamo=True, verbose=False)
    assert fuse_for_onnxruntime(program.model) == {"batch_norms_folded": 0, "sums_moved": 0}


class Block(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN, plus the input, then ReLU: a basic residual block."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block()
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


def test_aimgen_export_of_a_generated_residual_block_has_no_batch_norm_left(tmp_path):
    """Both tapped convs of the block lose their BatchNorm in both graphs; the stateless graph
    still computes what the model computes (aimgen's own parity check runs on it elsewhere)."""
    path = convert_to_file(Net(), [(1, 3, 10, 10)], tmp_path / "net_aim.py")
    gen = load_generated(path, random_weights=True)
    for stateful in (False, True):
        exported = export_model(gen, stateful=stateful)
        assert _ops(exported.program.model_proto)["BatchNormalization"] == 0, stateful
    x = torch.randn(3, 3, 10, 10)
    gen.model.eval()
    with torch.no_grad():
        expected = gen.model(x).numpy()
    got = _run(export_model(gen, stateful=False).program.model_proto, {"x": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
