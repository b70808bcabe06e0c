"""The torch.export capture path (aimgen/capture.py): Hugging Face transformers models, built from
small configs (no download), convert with every Linear/conv layer tapped or listed, standalone
source (torch, the standard library, and transformers only for the ModelOutput class), the
planned parameter count, the base model's function with its weights (in eval() and, with the
same random draws, in train()), and ONNX parity. Plus the aten table of the code generator, and
the messages of models neither path can capture."""
from __future__ import annotations

import ast
import copy
import dataclasses
import re
import sys
import textwrap
import time

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

import aimgen
from aimgen import capture
from aimgen.codegen.expressions import CONST, MARK, Expressions
from aimgen.errors import PlanError, TraceError
from aimgen.loader import InputSpec, flat_tensors
from aimgen.report import rows
from aimgen.sourcecopy import SourceCopier

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
from transformers.pytorch_utils import Conv1D  # noqa: E402

aten = torch.ops.aten
TOL = 1e-5


# --- the four models -------------------------------------------------------------------------

def bert():
    return transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64)), InputSpec((1, 16), torch.int64)


def gpt2():
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64)), InputSpec((1, 16), torch.int64)


def vit():
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=10)), InputSpec((1, 3, 32, 32))


def resnet():
    return transformers.ResNetForImageClassification(transformers.ResNetConfig(
        num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic",
        num_labels=10)), InputSpec((1, 3, 32, 32))


MODELS = {"bert": bert, "gpt2": gpt2, "vit": vit, "resnet": resnet}
_CACHE: dict[str, tuple] = {}


def converted(name: str):
    """(base model, spec, conversion with base weights), converted once per test session."""
    if name not in _CACHE:
        torch.manual_seed(0)
        model, spec = MODELS[name]()
        model.eval()
        conv = aimgen.convert(model, [spec], base_weights=model.state_dict())
        _CACHE[name] = (model, spec, conv)
    return _CACHE[name]


def inputs(model, spec: InputSpec, batch: int, length: int | None = None, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    if spec.dtype == torch.int64:
        shape = (batch, length or spec.shape[1])
        return (torch.randint(0, model.config.vocab_size, shape, generator=g),)
    return (torch.randn((batch, *spec.shape[1:]), generator=g),)


def weight_layers(model: nn.Module) -> list[str]:
    return [q for q, m in model.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, Conv1D))]


def imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return found


# --- the HF models, through aimgen.convert ---------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_hf_model_is_captured_with_torch_export_and_says_so(name):
    model, _, conv = converted(name)
    assert conv._traced.capture == "torch.export"
    assert conv.report_dict()["capture"] == "torch.export"
    assert "captured with torch.export (non-strict): torch.fx could not trace the root module" in conv.report
    header = conv.source.split("\nimport ", 1)[0].replace("\n#   ", " ")   # wrapped lines joined
    assert "# captured with torch.export (non-strict)" in header
    out_cls = type(model(*inputs(model, converted(name)[1], 2))).__name__
    assert f"# returns {out_cls} as the base model does, imported from transformers.modeling_outputs" in header
    # readable: every aten call is written as a torch call, every size is read, none baked in
    assert "torch.ops.aten" not in conv.source
    if name != "resnet":   # attention reshapes by the batch size, read where it is used
        assert re.search(r"\n +batch_size = \w+\.shape\[0\]\n", conv.source)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_linear_and_conv_layer_is_tapped_or_listed_with_its_reason(name):
    model, _, conv = converted(name)
    tapped = {t.qualname.split(":")[0] for t in conv.plan.taps}
    skipped = {s.qualname: s.reason for s in conv.plan.skipped}
    layers = weight_layers(model)
    assert layers and all(q in tapped or skipped.get(q) for q in layers), \
        [q for q in layers if q not in tapped and q not in skipped]
    assert all(q in tapped for q in layers), skipped   # all of them are tapped, in fact
    listed = {r[0] for r in rows(conv.plan) if r[2] == "tapped"}
    assert {t.qualname for t in conv.plan.taps} == listed


def test_attention_q_k_v_out_and_mlp_projections_are_tapped_by_name():
    """The report names each attention projection and MLP layer it taps."""
    for name, wanted in [
        ("bert", ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "intermediate.dense", "output.dense"]),
        ("vit", ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj", "mlp.fc1",
                 "mlp.fc2"]),
        ("gpt2", ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]),
    ]:
        _, _, conv = converted(name)
        table = {r[0]: r[2] for r in rows(conv.plan)}
        for layer in (0, 1):
            for w in wanted:
                hits = [q for q, status in table.items() if status == "tapped" and f".{layer}.{w}" in q]
                assert len(hits) == 1, (name, layer, w, sorted(table))
    # GPT-2's Conv1D projections are taps of F.linear on the transposed weight, one each
    _, _, conv = converted("gpt2")
    c_attn = next(t for t in conv.plan.taps if t.qualname.startswith("transformer.h.0.attn.c_attn"))
    assert (c_attn.layer_type, c_attn.in_size, c_attn.out_size) == ("F.linear", 32, 96)


@pytest.mark.parametrize("name", list(MODELS))
def test_generated_source_is_standalone_but_for_the_output_class(name):
    _, _, conv = converted(name)
    found = imports(conv.source)
    others = {m for m in found if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "torch"}
    assert others == {"transformers.modeling_outputs"}
    assert "Depends on torch and: transformers (the base model's output class)." in conv.source
    assert not re.search(r"transformers\.(models|pytorch_utils|activations)", conv.source)


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_count_is_the_plan(name):
    model, _, conv = converted(name)
    aim = conv.build()
    assert sum(p.numel() for p in aim.parameters()) == conv.plan.aim_params
    assert conv.plan.base_params == sum(p.numel() for p in model.parameters())
    assert set(model.state_dict()) <= set(aim.state_dict())   # every base key kept


@pytest.mark.parametrize("name", list(MODELS))
def test_base_function_is_kept_in_eval_at_other_batch_and_sequence_sizes(name):
    model, spec, conv = converted(name)
    assert conv.base_match().ok, conv.base_match().detail
    aim = conv.build().eval()
    sizes = [(3, None)] + ([(2, 9)] if spec.dtype == torch.int64 else [])
    for batch, length in sizes:
        x = inputs(model, spec, batch, length)
        with torch.no_grad():
            want, got = model(*x), aim(*x)
        assert type(got) is type(want)   # the same ModelOutput class: model(x).logits works
        assert got.logits.shape == want.logits.shape
        assert (got.logits - want.logits).abs().max().item() <= TOL


@pytest.mark.parametrize("name", ["bert", "gpt2", "resnet"])
def test_train_mode_behaves_like_the_base_model_dropout_and_batch_norm_included(name):
    """train(): dropout is live (two forwards differ) and, with the same random draws, the AiM
    model computes what the base model computes (batch statistics for batch norm)."""
    model, spec, conv = converted(name)
    base = copy.deepcopy(model).train()
    aim = conv.build().train()
    x = inputs(model, spec, 4)
    torch.manual_seed(7)
    want = base(*x).logits
    torch.manual_seed(7)
    got = aim(*x).logits
    assert (got - want).abs().max().item() <= TOL
    if name != "resnet":
        torch.manual_seed(8)
        again = aim(*x).logits
        assert (again - got).abs().max().item() > 1e-3, "dropout is not live in train()"
        with torch.no_grad():
            aim.eval()
            assert torch.equal(aim(*x).logits, aim(*x).logits)
    else:   # batch norm used the batch statistics and updated its running ones, as the base did
        key = "resnet.embedder.embedder.normalization.running_mean"
        assert torch.allclose(aim.state_dict()[key], base.state_dict()[key], atol=TOL)
        assert not torch.allclose(aim.state_dict()[key], model.state_dict()[key])


def test_training_dependent_constants_become_self_training_and_tied_weights_stay_tied():
    _, _, conv = converted("bert")
    # BERT's attention reads its dropout rate only in train(): torch.export saw 0.1 and 0.0
    assert "(0.1 if self.training else 0.0)" in conv.source
    aim = conv.build()
    _, _, conv = converted("gpt2")
    aim = conv.build()
    assert aim.lm_head.weight is aim.transformer.wte.weight
    assert "self.lm_head.weight = self.transformer.wte.weight  # tied, as in the base model" in conv.source


def onnx_failures(name: str, tmp_path) -> list[str]:
    from aimgen.onnx_checks import onnx_checks

    _, _, conv = converted(name)
    path = tmp_path / f"{name}_aim.py"
    path.write_text(conv.source, encoding="utf-8")
    weights = tmp_path / f"{name}_aim.pt"
    torch.save(conv.state_dict, weights)
    checks = onnx_checks(path, weights=weights)
    assert sum(c.name.startswith("onnxruntime parity") for c in checks) == 4   # stateful and stateless, batch 1 and 3
    return [c.line() for c in checks if not c.ok]


def test_hf_resnet_passes_onnx_parity(tmp_path):
    assert onnx_failures("resnet", tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "gpt2", "vit"])
def test_hf_transformers_pass_onnx_parity(name, tmp_path):
    assert onnx_failures(name, tmp_path) == []


def test_hf_gpt2_is_written_after_the_fresh_process_checks(tmp_path):
    """`aimgen convert`'s validation of the written file (without ONNX): imports, a fresh
    process without aimgen, the parameter count with the tied head, a train step, the carry."""
    _, _, conv = converted("gpt2")
    written = conv.write(tmp_path / "gpt2_aim.py", onnx=False)
    assert [c.line() for c in written.checks if not c.ok] == []
    names = {c.name for c in written.checks}
    assert {"matches the base model", "fresh import", "parameter count", "forward/backward"} <= names
    assert (tmp_path / "gpt2_aim.py").exists() and (tmp_path / "gpt2_aim.pt").exists()


# --- what cannot be captured ---------------------------------------------------------------

class DataDependent(nn.Module):
    """Neither torch.fx nor torch.export can capture this forward (a branch on a tensor value)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        y = self.fc(x)
        if y.sum() > 0:  # THE LINE
            y = y * 2
        return y


def test_a_model_neither_path_captures_is_refused_with_its_class_line_and_what_to_do():
    with pytest.raises(TraceError) as info:
        aimgen.convert(DataDependent(), [(2, 4)], source_name="dd_model")
    msg = str(info.value)
    line = next(i for i, text in enumerate(open(__file__).read().splitlines(), 1) if "# THE LINE" in text)
    assert "dd_model (DataDependent) cannot be captured" in msg
    assert f"test_capture.py:{line} (`if y.sum() > 0:  # THE LINE`)" in msg
    assert "torch.cond" in msg and "torch.where" in msg and "\n" not in msg


class MatmulLinear(nn.Linear):
    """Falcon's FalconLinear: the linear function, computed as x @ W.T + b."""

    def forward(self, x):
        return x @ self.weight.T + self.bias


class ScaledLinear(nn.Linear):
    """Also an nn.Linear subclass, but not the linear function: not taken for one."""

    def forward(self, x):
        return 2 * (x @ self.weight.T) + self.bias


class FalconLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = MatmulLinear(8, 16)
        self.down = MatmulLinear(16, 8)
        self.odd = ScaledLinear(8, 8)

    def forward(self, x, **kwargs):
        return self.odd(self.down(self.up(x).relu()))


def test_a_linear_subclass_that_computes_the_linear_function_is_tapped_as_one():
    model = FalconLike().eval()
    conv = aimgen.convert(model, [(1, 4, 8)], base_weights=model.state_dict())
    assert conv._traced.capture == "torch.export"
    assert sorted(t.qualname for t in conv.plan.taps) == ["down.weight", "up.weight"]   # F.linear on them
    assert [s.qualname for s in conv.plan.skipped] == ["odd"], conv.plan.skipped
    x = torch.randn(3, 5, 8)
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    assert set(model.state_dict()) <= set(aim.state_dict())
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= TOL


class NeedsAToken(nn.Module):
    """Checks its input's values outside tracing, as BART checks for <eos> tokens."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, ids, **kwargs):
        if not torch.compiler.is_compiling() and not (ids == 10).any(dim=1).all():  # never, below 10
            raise ValueError("Each example must contain at least one <eos> token")
        return self.emb(ids).mean(1)


def test_a_model_that_fails_on_the_example_values_is_told_apart_from_an_aimgen_bug():
    with pytest.raises(TraceError) as info:
        aimgen.convert(NeedsAToken(), [InputSpec((1, 6), torch.int64)], source_name="bart_like")
    msg = str(info.value)
    assert "bart_like (NeedsAToken) itself fails on aimgen's example input: ValueError: Each example must" in msg
    assert "particular values" in msg and "bug in aimgen" not in msg


class NeedsTargets(nn.Module):
    """Like torchvision's detection models: its training forward needs targets."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, images, targets=None):
        x = self.bn(self.conv(images))
        if self.training and targets is None:
            raise ValueError("targets should not be none when in training mode")
        return x


def test_a_model_whose_training_forward_needs_more_than_its_inputs_is_told_so():
    model = NeedsTargets()
    statistics = model.bn.running_mean.clone()
    with pytest.raises(TraceError) as info:
        aimgen.convert(model, torch.randn(1, 3, 8, 8), source_name="detector")
    msg = str(info.value)
    assert ("detector (NeedsTargets) fails in train() mode on the example input alone, before any tracing: "
            "ValueError: targets should not be none when in training mode.") in msg
    assert "convert the part that computes features" in msg and "bug in aimgen" not in msg
    assert torch.equal(model.bn.running_mean, statistics)   # the eager run left no trace


class NeedsLargeMaps(nn.Module):
    """Fails at small inputs in either mode (as RAFT's correlation pyramid does)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, images):
        if images.shape[-1] < 32:
            raise ValueError("Feature maps are too small to be down-sampled")
        return self.conv(images)


def test_a_model_that_fails_in_both_modes_is_told_to_check_its_input_shape():
    with pytest.raises(TraceError) as info:
        aimgen.convert(NeedsLargeMaps(), torch.randn(1, 3, 8, 8), source_name="flow")
    msg = str(info.value)
    assert ("flow (NeedsLargeMaps) itself fails on aimgen's example input, in train() and eval(): "
            "ValueError: Feature maps are too small to be down-sampled.") in msg
    assert "Check --input-shape" in msg and "targets" not in msg


class TrainBranch(nn.Module):
    """Its root forward computes something else in eval(), not a part of what train() computes:
    one graph cannot hold both (one that runs only more in train() is written with
    ``if self.training:``, tests/test_tracing.py)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        y = self.fc(x)
        if not self.training:
            y = y.relu()  # EVAL ONLY
        return y


def test_a_root_that_branches_on_training_is_refused_with_its_line():
    with pytest.raises(TraceError) as info:
        aimgen.convert(TrainBranch(), [(2, 4)])
    msg = str(info.value)
    line = next(i for i, text in enumerate(open(__file__).read().splitlines(), 1) if "# EVAL ONLY" in text)
    assert "TrainBranch: the forward of the root module takes a different path in train() and eval() mode" in msg
    assert f"test_capture.py:{line}" in msg and "self.training" in msg


class KwargsNet(nn.Module):
    """torch.fx traces this, but makes ``**kwargs`` an input: the torch.export path is used."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x, **kwargs):
        y = self.bn(self.conv(x))
        y += x.mean(1, keepdim=True)       # an in-place add, written as y = y + ...
        return {"logits": self.head(y.mean((2, 3)))}


def test_a_forward_with_kwargs_goes_through_torch_export_with_layers_as_modules():
    model = KwargsNet().eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict())
    assert conv._traced.capture == "torch.export"
    assert "**kwargs" in conv.report
    assert [t.qualname for t in conv.plan.taps] == ["conv", "head"]
    ops = {n.op for n in conv._traced.graph.nodes}
    assert {n.target for n in conv._traced.graph.nodes if n.op == "call_module"} == {"conv", "bn", "head"}
    assert "get_attr" not in ops
    src = conv.source
    assert "def forward(self, x):" in src and ".add_(" not in src
    assert conv.base_match().ok
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert (conv.build().eval()(x)["logits"] - model(x)["logits"]).abs().max() <= TOL


class _SameDepthwise(nn.Conv2d):
    """Hugging Face EfficientNet's depthwise conv: an nn.Conv2d subclass with padding="same"."""


class SamePadded(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = _SameDepthwise(8, 8, 3, padding="same", groups=8)
        self.head = nn.Linear(8, 2)

    def forward(self, x, **kwargs):
        return self.head(self.depthwise(torch.relu(self.stem(x))).mean((2, 3)))


def test_a_conv_with_padding_given_as_a_string_is_tapped_on_the_export_path():
    """torch.export records it as ``aten.conv2d.padding`` (its padding a string), which was not
    taken for F.conv2d: the layer was listed, 'its weight goes into conv2d.padding'."""
    model = SamePadded().eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict())
    assert conv._traced.capture == "torch.export"
    assert sorted(t.qualname for t in conv.plan.taps) == ["depthwise.weight", "head", "stem"]  # as F.conv2d
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert (conv.build().eval()(x) - model(x)).abs().max() <= TOL


class PooledBranch(nn.Module):
    """DeepLabV3's ASPP pooling as smp writes it: a batch-normalised branch at 1x1, upsampled back
    to the map's size. In train() the exporter computes that size (``(height - 1) // 2 + 1``)
    inside ``bn``, where BatchNorm checks the batch; in eval() where ``interpolate`` reads it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x, **kwargs):
        y = self.bn(self.stem(x))
        p = F.interpolate(self.pool(y), size=y.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([y, p], 1))


def test_size_arithmetic_the_exporter_puts_inside_a_layer_in_train_is_computed_where_it_is_used():
    model = PooledBranch().eval()
    conv = aimgen.convert(model, [(1, 3, 16, 16)], base_weights=model.state_dict())
    assert conv._traced.capture == "torch.export"
    called = {n.target for n in conv._traced.graph.nodes if n.op == "call_module"}
    assert {"bn", "pool.2"} <= called          # both BatchNorms are layers again, in both modes
    assert [t.qualname for t in conv.plan.taps] == ["stem", "pool.1", "head"]
    # written as the user wrote it: the map's own size, read where it is used, and F.interpolate
    assert "height = y.shape[2]" in conv.source and "// 2" not in conv.source.split("class Aim")[-1]
    assert "F.interpolate(p, size=[height, width], mode='bilinear', align_corners=False)" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    for size in (16, 22):                       # the size is computed, not baked in
        x = torch.randn(3, 3, size, size)
        with torch.no_grad():
            assert (aim.eval()(x) - model.eval()(x)).abs().max() <= TOL
            assert (aim.train()(x) - model.train()(x)).abs().max() <= TOL


class DropPath(nn.Module):
    """Stochastic depth as timm and transformers write it: nothing at all in eval()."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class DropPathNet(nn.Module):
    """Residual blocks with stochastic depth, captured by torch.export (``**kwargs``)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.drop1 = DropPath(0.5)
        self.fc2 = nn.Linear(8, 8)
        self.drop2 = DropPath(0.5)
        self.head = nn.Linear(8, 3)

    def forward(self, x, **kwargs):
        x = x + self.drop1(self.fc1(x))
        x = x + self.drop2(self.fc2(x).relu())
        return self.head(x)


def test_stochastic_depth_that_computes_only_in_train_is_kept_whole_and_stays_live():
    model = DropPathNet().eval()
    conv = aimgen.convert(model, [(1, 8)], base_weights=model.state_dict())
    assert conv._traced.capture == "torch.export"
    assert sorted(conv._traced.leaf_reasons) == ["drop1", "drop2"]
    assert "stochastic depth" in conv._traced.leaf_reasons["drop1"]
    assert [t.qualname for t in conv.plan.taps] == ["fc1", "fc2", "head"]
    assert "class DropPath(nn.Module):" in conv.source and "self.drop1 = DropPath(0.5)" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(64, 8)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= TOL
        model.train(), aim.train()
        torch.manual_seed(3)
        want = model(x)
        torch.manual_seed(3)
        got = aim(x)
        torch.manual_seed(4)
        other = aim(x)
    assert (got - want).abs().max() <= TOL          # the same draws: the same samples dropped
    assert (other - got).abs().max() > 1e-3         # and they are draws: another seed differs


@dataclasses.dataclass
class Pair:
    logits: torch.Tensor
    features: torch.Tensor


class DataclassNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x, **kwargs):
        return Pair(self.fc(x), x)


def test_a_users_dataclass_output_is_copied_and_known_to_torch_export_only_while_it_runs():
    import torch.utils._pytree as pytree

    model = DataclassNet().eval()
    conv = aimgen.convert(model, [(1, 4)], base_weights=model.state_dict())
    assert conv._traced.capture == "torch.export" and conv.base_match().ok
    assert "Standalone: imports torch and the standard library only." in conv.source
    assert "class Pair:" in conv.source and "# returns" not in conv.source
    out = conv.build().eval()(torch.randn(2, 4))
    assert type(out).__name__ == "Pair" and out.logits.shape == (2, 3) and out.features.shape == (2, 4)
    assert Pair not in pytree.SUPPORTED_NODES


# --- the aten table ------------------------------------------------------------------------

def written(op, args, kwargs=None):
    """The source the code generator writes for one aten call, and its value."""
    g = fx.Graph()
    env = {}

    def lift(v):
        if isinstance(v, torch.Tensor):
            p = g.placeholder(f"t{len(env)}")
            env[p.name] = v
            return p
        if isinstance(v, (list, tuple)):
            return type(v)(lift(x) for x in v)
        return v

    node = g.call_function(op, lift(args), {k: lift(v) for k, v in (kwargs or {}).items()})
    ex = Expressions({}, SourceCopier(taken=set()))
    text = ex.expression(node)
    text = re.sub(f"{MARK}([^{MARK}]+){MARK}", lambda m: m.group(1), text)
    text = re.sub(f"{CONST}([0-9]+){CONST}", lambda m: repr(ex.constants[m.group(1)]), text)
    value = eval(text, {"torch": torch, "F": F, **env})
    return text, value


X = torch.randn(2, 3, 4, 5)
S = torch.randn(2, 6, 8)
IDS = torch.tensor([[1, 0, 3], [2, 2, 0]])
W = torch.randn(5, 4)

CASES = [
    (aten.view.default, (S, [2, 3, -1]), {}, "t0.view(2, 3, -1)"),
    (aten.reshape.default, (S, [12, 8]), {}, "t0.reshape(12, 8)"),
    (aten.expand.default, (torch.randn(1, 8), [3, -1]), {}, "t0.expand(3, -1)"),
    (aten.permute.default, (X, [0, 2, 3, 1]), {}, "t0.permute(0, 2, 3, 1)"),
    (aten.transpose.int, (S, 1, 2), {}, "t0.transpose(1, 2)"),
    (aten.t.default, (W,), {}, "t0.t()"),
    (aten.unsqueeze.default, (S, 1), {}, "t0.unsqueeze(1)"),
    (aten.flatten.using_ints, (X, 2), {}, "t0.flatten(2)"),
    (aten.flatten.using_ints, (X, 1, 2), {}, "t0.flatten(1, 2)"),
    (aten.contiguous.default, (S.transpose(1, 2),), {}, "t0.contiguous()"),
    (aten.sym_size.int, (S, 1), {}, "t0.shape[1]"),
    (aten.select.int, (S, 1, 0), {}, "t0[:, 0]"),
    (aten.select.int, (S, -1, 2), {}, "t0[..., 2]"),
    (aten.slice.Tensor, (S, 1, 0, 9223372036854775807), {}, "t0[:, :]"),
    (aten.slice.Tensor, (S, 2, 1, 5, 2), {}, "t0[:, :, 1:5:2]"),
    (aten.slice.Tensor, (S, -1, 0, 3), {}, "t0[..., :3]"),
    (aten.index.Tensor, (S, [None, torch.tensor([0, 2])]), {}, "t0[:, t1]"),
    (aten.add.Tensor, (S, S), {}, "t0 + t1"),
    (aten.add.Tensor, (S, 1.5), {}, "t0 + 1.5"),
    (aten.add.Tensor, (S, S), {"alpha": 2}, "torch.ops.aten.add.Tensor(t0, t1, alpha=2)"),
    (aten.mul.Tensor, (S, 0.5), {}, "t0 * 0.5"),
    (aten.div.Tensor, (S, 4.0), {}, "t0 / 4.0"),
    (aten.rsub.Scalar, (S, 1.0), {}, "1.0 - t0"),
    (aten.pow.Tensor_Scalar, (S, 3.0), {}, "t0 ** 3.0"),
    (aten.ge.Scalar, (S, 0), {}, "t0 >= 0"),
    (aten.__and__.Tensor, (S > 0, S < 1), {}, "t0 & t1"),
    (aten.neg.default, (S,), {}, "-t0"),
    (aten.linear.default, (S, torch.randn(4, 8), torch.randn(4)), {}, "F.linear(t0, t1, t2)"),
    (aten.conv2d.default, (X, torch.randn(6, 3, 3, 3), None, [1, 1], [1, 1]), {}, "F.conv2d(t0, t1, None, [1, 1], [1, 1])"),
    (aten.layer_norm.default, (S, [8], torch.randn(8), torch.randn(8), 1e-12, False), {}, "F.layer_norm(t0, [8], t1, t2, 1e-12)"),
    (aten.group_norm.default, (X, 3, None, None, 1e-5, True), {}, "F.group_norm(t0, 3)"),
    (aten.batch_norm.default, (X, torch.rand(3), torch.rand(3), torch.rand(3), torch.rand(3) + 0.5, False, 0.1,
                               1e-5, True), {}, "F.batch_norm(t0, t3, t4, t1, t2, False, 0.1, 1e-05)"),
    (aten.embedding.default, (W, IDS), {}, "F.embedding(t1, t0)"),
    (aten.embedding.default, (W, IDS, 0), {}, "F.embedding(t1, t0, padding_idx=0)"),
    (aten.dropout.default, (S, 0.1, False), {}, "F.dropout(t0, 0.1, False)"),
    (aten.gelu.default, (S,), {"approximate": "tanh"}, "F.gelu(t0, approximate='tanh')"),
    (aten.gelu.default, (S,), {"approximate": "none"}, "F.gelu(t0)"),
    (aten.scaled_dot_product_attention.default, (X, X, X), {"scale": 0.25},
     "F.scaled_dot_product_attention(t0, t1, t2, scale=0.25)"),
    (aten.max_pool2d.default, (X, [2, 2], [], [0, 0]), {}, "F.max_pool2d(t0, [2, 2])"),
    (aten.avg_pool2d.default, (X, [2, 2], [1, 1]), {}, "F.avg_pool2d(t0, [2, 2], [1, 1])"),
    (aten.adaptive_avg_pool2d.default, (X, [1, 1]), {}, "F.adaptive_avg_pool2d(t0, [1, 1])"),
    (aten.softmax.int, (S, -1), {}, "t0.softmax(-1)"),
    (aten.mean.dim, (X, [2, 3], True), {}, "t0.mean([2, 3], True)"),
    (aten.cat.default, ([S, S], 1), {}, "torch.cat([t0, t1], 1)"),
    (aten.where.self, (S > 0, S, S * 2), {}, "torch.where(t0, t1, t2)"),
    (aten.arange.default, (5,), {"dtype": torch.int64}, "torch.arange(5, dtype=torch.int64)"),
    (aten.new_ones.default, (S, [2, 2]), {"dtype": torch.bool}, "t0.new_ones([2, 2], dtype=torch.bool)"),
    (aten.to.dtype, (S, torch.float64), {}, "t0.to(torch.float64)"),
    (aten.masked_fill.Scalar, (S, S > 0, -1.0), {}, "t0.masked_fill(t1, -1.0)"),
    (aten.gather.default, (S, 1, torch.zeros(2, 1, 8, dtype=torch.int64)), {}, "t0.gather(1, t1)"),
    (aten.cumsum.default, (IDS, -1), {}, "t0.cumsum(-1)"),
    (aten.diff.default, (IDS, 1, -1, IDS[:, :1]), {}, "torch.diff(t0, 1, -1, t1)"),
    (aten.split.Tensor, (S, 2, 2), {}, "t0.split(2, 2)"),
    (aten.constant_pad_nd.default, (S, [1, 1], 0.0), {}, "F.pad(t0, [1, 1], value=0.0)"),
    (aten.addmm.default, (torch.randn(4), torch.randn(3, 5), W), {}, "torch.addmm(t0, t1, t2)"),
    (aten.tanh.default, (S,), {}, "torch.tanh(t0)"),
    (aten.atan2.default, (S, S), {}, "torch.ops.aten.atan2.default(t0, t1)"),   # not in the table
]


@pytest.mark.parametrize("op,args,kwargs,text", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_aten_calls_are_written_as_torch_calls_that_compute_the_same(op, args, kwargs, text):
    got_text, value = written(op, args, kwargs)
    assert got_text == text
    want = op(*args, **kwargs)
    if not isinstance(want, (torch.Tensor, list, tuple)):
        assert value == want
        return
    want, value = flat_tensors(want), flat_tensors(value)
    assert len(want) == len(value) > 0
    for a, b in zip(want, value):
        assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b), text


def test_arguments_that_differ_between_train_and_eval_are_kept_even_at_their_default():
    g = fx.Graph()
    q = g.placeholder("q")
    node = g.call_function(aten.scaled_dot_product_attention.default, (q, q, q, None, 0.0))
    text = Expressions({node.name: {(0, 4): (0.1, 0.0)}}, SourceCopier(taken=set())).expression(node)
    assert "(0.1 if self.training else 0.0)" in text
    assert textwrap.dedent(text).startswith("F.scaled_dot_product_attention(")


def test_a_failure_inside_numpy_is_placed_at_the_models_own_line():
    # wav2vec2's SpecAugment calls numpy in forward; the line to show is the model's, not numpy's
    import numpy as np

    from aimgen.capture import user_location

    try:
        np.put_along_axis(np.zeros((2, 3)), np.array([[0.5]]), 1, -1)  # THE NUMPY CALL
    except IndexError as err:
        loc = user_location(err)
    line = next(i for i, text in enumerate(open(__file__).read().splitlines(), 1) if "# THE NUMPY CALL" in text)
    assert loc.startswith(f"{__file__}:{line} (`np.put_along_axis(")



def test_a_module_path_through_a_slice_of_a_sequential_is_read_as_the_layer_it_names():
    """torch.export can name what runs inside ``for m in self.model[:-1]`` after the slice
    (ultralytics' RT-DETR: ``model.slice(None, -1, None).0.stem1.conv``); it was looked up as
    is, an AttributeError that ended the conversion. It is the layer ``model.0.stem1.conv``."""
    from aimgen.capture import _Lowering

    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4)), nn.Linear(4, 4))
    lowering = _Lowering(model, None, [], frozenset())
    assert lowering._real_name("slice(None, -1, None).1.0") == "1.0"
    assert lowering._real_name("slice(1, None, None).1") == "1"   # a slice keeps its items' keys
    assert lowering._real_name("slice(None, -1, None).2") is None   # not in the slice
    assert lowering._real_name("2") == "2"


class _NoGradScale(nn.Module):
    """A factor computed under ``torch.no_grad()`` (timm's Gemma4 rotary embedding makes its
    tables so), and a branch on the input's rank that torch.fx cannot trace."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.alpha = nn.Parameter(torch.full((4,), 0.5))

    def forward(self, x):
        if x.ndim != 2:
            x = x.flatten(1)
        with torch.no_grad():
            scale = torch.sigmoid(self.alpha) * 2
        return self.fc(x) * scale


def test_a_no_grad_region_is_written_inline_and_still_passes_no_gradient():
    """torch.export calls a no-grad region as a graph of its own (``wrap_with_set_grad_enabled``),
    which the lowering could not write ("nonexistent target submod_1"): its operations are
    copied in place and its results detached, so the parameter it reads still gets no gradient."""
    import random_models as rm

    torch.manual_seed(0)
    conv = rm.check_conversion(_NoGradScale().eval(), [InputSpec((1, 4))], source_name="no_grad")
    assert conv._traced.capture == "torch.export"
    assert [t.qualname for t in conv.plan.taps] == ["fc"]
    assert re.search(r"\n        scale = \w+\.detach\(\)\n", conv.source)
    aim = conv.build().train()
    aim(torch.randn(3, 4)).sum().backward()
    assert aim.alpha.grad is None and aim.fc.weight.grad is not None


class _FusedInTraining(nn.Module):
    """transformers' Mamba mixer in small: the same function by another path in train()."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if self.training:
            return torch.addmm(self.fc.bias, x.reshape(-1, 4), self.fc.weight.t()).view_as(x)
        return self.fc(x)


class _ModeSplitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.mixer = _FusedInTraining()

    def forward(self, x):
        if x.ndim != 2:   # (torch.fx cannot trace this: torch.export captures the model)
            x = x.flatten(1)
        return self.mixer(torch.relu(self.proj(x)))


def test_a_module_whose_forward_differs_by_mode_is_kept_whole_and_the_rest_converts():
    """One captured graph cannot hold both paths: the model was refused. The module is now called
    whole in both modes (its own code picks the path), and listed with why."""
    import random_models as rm

    torch.manual_seed(0)
    conv = rm.check_conversion(_ModeSplitNet().eval(), [InputSpec((1, 4))], source_name="mode_split")
    assert conv._traced.capture == "torch.export"
    assert "takes another path in train() than in eval()" in conv._traced.leaf_reasons["mixer"]
    assert [t.qualname for t in conv.plan.taps] == ["proj"]
    assert "self.mixer(" in conv.source


class _SinusoidEmbed(nn.Module):
    """VideoMAE's embeddings in small: a sinusoid table kept as a plain attribute (not a buffer,
    so not in state_dict), and a forward of two required arguments."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 8)
        self.table = torch.sin(torch.arange(80.0)).view(1, 10, 8)

    def forward(self, x, mask):
        x = self.proj(x)
        return x + self.table[:, : x.shape[1]]


class _LoopTableEmbed(_SinusoidEmbed):
    """A table like it filled in a loop: no expression of its ``__init__`` makes it, and at 1,280
    values it is too large for a literal (1,024 at most for a table no checkpoint restores)."""

    def __init__(self):
        super().__init__()
        table = torch.zeros(1, 160, 8)
        for i in range(160):
            table[0, i] = torch.sin(torch.arange(8.0) + 8 * i)
        self.table = table


class _TableNet(nn.Module):
    def __init__(self, embed: type = _SinusoidEmbed):
        super().__init__()
        self.embed = embed()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        if x.ndim != 3:   # (torch.fx cannot trace this: torch.export captures the model)
            x = x.unsqueeze(0)
        return self.head(self.embed(x, None))


def test_a_large_plain_tensor_attribute_is_written_as_its_init_makes_it():
    """torch.export lifts it as a constant, too large to write as a literal, that no checkpoint
    restores. It is read from its module, as torch.fx reads one, and written as the expression
    its ``__init__`` assigns, so the module's layers are tapped too (it was kept whole)."""
    import random_models as rm

    torch.manual_seed(0)
    conv = rm.check_conversion(_TableNet().eval(), [InputSpec((1, 6, 4))], source_name="table")
    assert conv._traced.capture == "torch.export"
    assert [t.qualname for t in conv.plan.taps] == ["embed.proj", "head"]
    assert "self.table = nn.Buffer(torch.sin(torch.arange(80.0)).view(1, 10, 8), persistent=False)" in conv.source


def test_a_large_plain_tensor_attribute_no_expression_makes_keeps_its_module_whole():
    """Filled in a loop, it cannot be written: its module is kept whole (its __init__ makes the
    table) and read from, not called (its forward takes two arguments; a call with one failed the
    capture's check)."""
    import random_models as rm

    torch.manual_seed(0)
    conv = rm.check_conversion(_TableNet(_LoopTableEmbed).eval(), [InputSpec((1, 6, 4))], source_name="table")
    assert "too large to write as a literal" in conv._traced.leaf_reasons["embed"]
    assert [t.qualname for t in conv.plan.taps] == ["head"]
    assert "self.embed.table" in conv.source


class _WindowNet(nn.Module):
    """Windows of 4x4 cells, as window attention cuts them: sizes torch.export reasons about."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 1)
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        if x.ndim != 4:   # (torch.fx cannot trace this: torch.export captures the model)
            x = x[None]
        x = self.embed(x)
        b, c, h, w = x.shape
        windows = x.reshape(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, c)
        return self.head(self.mix(windows).mean(1))


def test_sizes_torch_export_reasons_about_too_long_are_taken_at_the_example_s(monkeypatch):
    """RegionViT's einops window patterns kept torch.export's symbolic shape reasoning busy for
    good (the conversion never ended). Past ``SYMBOLIC_SECONDS`` the capture takes the sizes
    besides the batch at the example's, and the header says so. (The export with symbolic sizes
    is made to sleep past the limit here.)"""
    import random_models as rm

    real = capture._export

    def slow_when_sized(*args, sized=True, **kwargs):
        if sized:
            time.sleep(30)   # interrupted by the time limit
        return real(*args, sized=sized, **kwargs)

    monkeypatch.setattr(capture, "SYMBOLIC_SECONDS", 0.5)
    monkeypatch.setattr(capture, "_export", slow_when_sized)
    torch.manual_seed(0)
    start = time.perf_counter()
    conv = rm.check_conversion(_WindowNet().eval(), [InputSpec((1, 3, 8, 8))], source_name="windows")
    assert time.perf_counter() - start < 25
    assert conv._traced.capture == "torch.export"
    header = " ".join(line.lstrip("#").strip() for line in conv.source.splitlines() if line.startswith("#"))
    assert "sizes besides the batch fixed at the example's (torch.export reasoned about them for over 0.5 s; " \
           "sizes='any' waits)" in header
    assert [t.qualname for t in conv.plan.taps] == ["embed", "mix", "head"]
    aim = conv.build().eval()
    assert aim(torch.randn(3, 3, 8, 8)).shape == (3, 2)   # the batch stays free


def test_sizes_any_waits_for_symbolic_sizes_and_sizes_example_fixes_them_at_once(monkeypatch):
    """The choice the time limit makes, made by the user: ``sizes='any'`` keeps every size
    symbolic however long the exporter takes (the model then runs at other sizes);
    ``sizes='example'`` never asks for symbolic sizes (a quick conversion for one size)."""
    import random_models as rm

    real, asked = capture._export, []

    def slow_when_sized(*args, sized=True, **kwargs):
        asked.append(sized)
        if sized:
            time.sleep(1.5)   # past the limit, which 'any' does not set
        return real(*args, sized=sized, **kwargs)

    monkeypatch.setattr(capture, "SYMBOLIC_SECONDS", 0.5)
    monkeypatch.setattr(capture, "_export", slow_when_sized)

    def header(conv) -> str:
        return " ".join(line.lstrip("#").strip() for line in conv.source.splitlines() if line.startswith("#"))

    torch.manual_seed(0)
    waits = rm.check_conversion(_WindowNet().eval(), [InputSpec((1, 3, 8, 8))], source_name="windows",
                                sizes="any", flat=False)
    assert asked == [True, True] and "fixed at the example's" not in header(waits)
    assert "options: " in header(waits) and "sizes=any" in header(waits)
    assert waits.build().eval()(torch.randn(2, 3, 12, 12)).shape == (2, 2)   # another size
    asked.clear()
    fixed = rm.check_conversion(_WindowNet().eval(), [InputSpec((1, 3, 8, 8))], source_name="windows",
                                sizes="example", flat=False)
    assert asked == [False, False]
    assert "sizes besides the batch fixed at the example's (sizes=example)" in header(fixed)
    with pytest.raises(PlanError, match="sizes='some': use one of auto, any, example"):
        aimgen.convert(_WindowNet(), [(1, 3, 8, 8)], sizes="some")


@torch.amp.autocast("cuda", enabled=False)
def _rotate(x):
    return torch.cat([-x[..., 2:], x[..., :2]], -1) * x.sin()


@torch.amp.autocast("cpu", dtype=torch.bfloat16)
def _half_mix(x):
    return x @ x.transpose(-2, -1)


class _AutocastNet(nn.Module):
    def __init__(self, half: bool = False):
        super().__init__()
        self.half = half
        self.proj = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        if x.ndim != 3:   # (torch.fx cannot trace this: torch.export captures the model)
            x = x[None]
        x = self.proj(x)
        x = _half_mix(x).float() @ x if self.half else _rotate(x)
        return self.head(x)


def test_a_region_that_turns_autocast_off_is_copied_in_its_place():
    """vit-pytorch's rotary embeddings are decorated ``@autocast('cuda', enabled=False)``:
    torch.export wraps them in a graph of their own (``wrap_with_autocast``), which the written
    model could not call ('Node referenced nonexistent target submod_1'). One that turns autocast
    on is refused with its place: the written model would compute it in float32."""
    import random_models as rm

    torch.manual_seed(0)
    conv = rm.check_conversion(_AutocastNet().eval(), [InputSpec((2, 3, 4))], source_name="net")
    assert [t.qualname for t in conv.plan.taps] == ["proj", "head"]
    assert "autocast" not in conv.source.split("# parameters:")[1] and "torch.cat([neg, slice_], -1)" in conv.source
    with pytest.raises(TraceError, match=r"torch.autocast\('cpu'\) \(at .*test_capture.py:\d+ \(`x = _half_mix\(x\)"):
        aimgen.convert(_AutocastNet(half=True).eval(), [InputSpec((2, 3, 4))], source_name="net")


def test_time_limits_nest_and_the_outer_one_keeps_its_time():
    """The torch.export attempt for more taps has SEE_MORE_SECONDS in all and half of it for
    symbolic sizes: an inner limit that fires leaves the outer one running, with its own end."""
    start = time.monotonic()
    with pytest.raises(TraceError, match="more than 0.3 s"):
        with capture.time_limit(0.3):
            with pytest.raises(TraceError, match="more than 0.1 s"):
                with capture.time_limit(0.1):
                    time.sleep(5)
            time.sleep(5)
    assert 0.25 < time.monotonic() - start < 2
    start = time.monotonic()
    with pytest.raises(TraceError, match="more than 0.2 s"):
        with capture.time_limit(0.2):
            with capture.time_limit(10):   # the outer one ends first: it governs
                time.sleep(5)
    assert time.monotonic() - start < 2 and not capture._DEADLINES
