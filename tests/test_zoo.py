"""Issue 5: the hard cases of real model code, one zoo file per case (tests/zoo/), each either
converted correctly (the invariants of random_models.check_conversion: standalone imports,
counted parameters equal the plan, base weights in -> same function out, forward/backward,
eval determinism) or refused with the file and line, a non-zero exit code and no file."""
from __future__ import annotations

import ast
import builtins
import dataclasses
import os
import re

import pytest
import torch

import aimgen
import random_models as rm
from aimgen.loader import InputSpec, load_model
from conftest import ZOO, leftovers


def zoo(target: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return load_model(str(ZOO / target)).model


def check(target: str, *shapes, **options):
    """Convert a zoo model held to every invariant; a second conversion under another global
    seed must write the same bytes (recorded constructor arguments included)."""
    specs = [s if isinstance(s, InputSpec) else InputSpec(s) for s in shapes]
    torch.manual_seed(0)
    loaded = load_model(str(ZOO / target))
    return rm.check_conversion(loaded.model, specs, source_name=target, twice=True,
                               constructor_args=loaded.constructor_args, **options)


def carry_moves(conv) -> bool:
    aim = conv.build().train()
    aim(*conv.example_inputs(batch=2))
    return bool(aim.memory.carry.abs().sum() > 0)


def kept_whole(conv) -> dict:
    """Why each module is kept whole, as the generated file's own AIMGEN record says."""
    for stmt in ast.parse(conv.source).body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "AIMGEN":
            return ast.literal_eval(stmt.value)["kept_whole"]
    raise AssertionError("no AIMGEN record")


def lines_with(source: str, text: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if text in line]


# --- case 1: training-mode branches -------------------------------------------------------

def test_training_branches_keep_train_and_eval_behaviour():
    conv = check("training_branch.py:Net", (1, 3, 8, 8))
    src = conv.source
    assert "class NoisyIdentity(nn.Module):" in src and "class MyDropout(nn.Module):" in src  # kept whole, copied
    assert lines_with(src, "F.dropout(") and all("self.training" in line for line in lines_with(src, "F.dropout("))
    aim = conv.build()
    x = torch.randn(4, 3, 8, 8)
    aim.train()
    with torch.no_grad():
        a, b = aim(x), aim(x)
    assert not torch.allclose(a, b)  # noise and dropout are live in train()
    aim.eval()
    with torch.no_grad():
        assert torch.equal(aim(x), aim(x))


def test_stochastic_depth_drops_rows_in_train_only():
    conv = check("stochastic_depth.py:Net", (1, 3, 8, 8))
    assert lines_with(conv.source, "stochastic_depth(") and "self.training" in conv.source
    # the fx-wrapped library function the forward calls is copied: the file stays standalone,
    # the copy's docstring cut to its first paragraph (the library documents the rest)
    assert "import torchvision" not in conv.source and "def stochastic_depth(" in conv.source
    copied = conv.source[conv.source.index("def stochastic_depth("):]
    assert "branches of residual architectures.\n    \"\"\"\n" in copied and "Args:" not in copied[:600]
    aim = conv.build().train()
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(aim(x), aim(x))


def test_a_function_told_the_mode_is_called_whole_and_its_block_is_traced():
    """``drop_connect(y, p, training=self.training)`` takes another path in eval(): the block was
    kept whole, and its conv read no memory (smp's EfficientNet-B0 encoder: 46 of 91 layers)."""
    conv = check("drop_connect.py:Net", (1, 3, 16, 16))
    assert sorted(t.qualname for t in conv.plan.taps) == ["blocks.0.conv", "blocks.1.conv", "head", "stem"]
    assert lines_with(conv.source, "drop_connect(") == [
        "def drop_connect(inputs, p, training):", "y = drop_connect(y, 0.2, training=self.training)"]  # copied
    aim = conv.build()
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(aim.train()(x), aim(x))   # rows dropped at random in train()
        aim.eval()
        assert torch.equal(aim(x), aim(x))


def test_a_root_that_branches_on_training_is_refused_with_its_line(tmp_path, cli):
    code, _, err = cli("convert", ZOO / "root_training_branch.py", "--input-shape", "1,3,8,8",
                       "-o", tmp_path / "out.py", "--no-onnx")
    assert code != 0 and "Traceback" not in err
    assert "root_training_branch.py:16" in err and "train() and eval()" in err
    assert leftovers(tmp_path, set()) == []


def test_a_root_that_returns_aux_logits_in_train_only_converts(tmp_path, cli):
    """What only train() computes and returns (the aux head) is written under
    ``if self.training:``; the file validates, and returns what the base returns in each mode."""
    out = tmp_path / "out.py"
    code, text, err = cli("convert", ZOO / "root_aux_logits.py", "--input-shape", "1,3,8,8", "-o", out, "--no-onnx")
    assert code == 0, err
    assert "aux" in text and "runs only in train()" in text
    src = out.read_text()
    assert "        if self.training:\n            aux = self.aux(x)\n            return (fc, aux), memory.final()\n" \
        "        return fc, memory.final()\n" in src
    aim = load_model(f"{out}:build_model").model
    x = torch.randn(2, 3, 8, 8)
    logits, aux = aim.train()(x)
    assert logits.shape == aux.shape == (2, 2) and aim.eval()(x).shape == (2, 2)
    # every invariant: base function with base weights, the flat rendering the same, the same
    # bytes twice, and the eval() graph exported with onnxruntime parity and carry
    check("root_aux_logits.py:Net", (1, 3, 8, 8), onnx=True)


# --- case 2: one module called several times ----------------------------------------------

def test_a_module_called_at_two_resolutions_reads_memory_at_each():
    conv = check("shared_module.py:Net", (1, 3, 16, 16))
    tapped = [t.qualname for t in conv.plan.taps]
    assert tapped.count("shared") == 2 and tapped.count("proj") == 2
    calls = lines_with(conv.source, "= self.shared(")
    assert len(calls) == 2 and all("memory.channels(1, " in c for c in calls)  # each call fitted to its input
    assert lines_with(conv.source, "self.shared = MemoryConv2d(8, 8, 3, padding=1, memory_channels=1)")
    (shared,) = [t for t in conv.report_dict()["taps"] if t["layer"] == "shared" and t["params"]]
    assert shared["params"] == 8 * 9  # counted once: 8 outputs x 3x3 for the one memory channel
    assert "taps: 4 of 4 weight layers" in conv.source and "called again" in conv.report


def test_a_module_called_twice_in_the_literal_form_is_widened_once():
    conv = check("shared_module.py:Net", (1, 3, 16, 16), form="literal")
    assert lines_with(conv.source, "self.shared = nn.Conv2d(8 + 1, 8, 3, padding=1)")
    assert len(lines_with(conv.source, "self.shared(cat_channels(")) == 2


def test_with_the_full_tap_width_a_shared_layer_reads_its_widest_fit():
    conv = check("shared_module.py:Net", (1, 3, 16, 16), tap_width="full", memory_size=512)
    (a, b) = [t for t in conv.plan.taps if t.qualname == "shared"]
    assert conv.plan.width(a) == conv.plan.width(b)
    assert conv.plan.width(a).k == 512 // (8 * 8)  # the 8x8 call needs 8 channels for all 512 floats; 16x16 pads


# --- case 3: functional layers on parameters ----------------------------------------------

def test_functional_conv_and_linear_on_parameters_are_tapped():
    conv = check("functional_params.py:Net", (1, 3, 8, 8))
    assert [t.layer_type for t in conv.plan.taps] == ["F.conv2d", "F.conv2d", "F.linear"]
    assert not conv.plan.skipped
    dw = conv.plan.taps[1]
    assert dw.groups == 8  # depthwise: memory in every group
    # the sum form: the memory's own weights beside each weight; the base weights keep their shapes
    aim = conv.build()
    assert aim.weight.shape == (8, 3, 3, 3) and aim.weight_memory.shape == (8, 1, 3, 3)
    assert aim.dw_memory.shape == (8, 1, 1, 1)  # depthwise: a pointwise memory kernel
    assert aim.w_out_memory.shape == (4, conv.plan.width(conv.plan.taps[2]).k)


def test_a_conv_that_standardises_its_weight_reads_the_memory_in_the_sum_form():
    conv = check("weight_standardisation.py:Net", (1, 3, 8, 8))
    assert [t.qualname for t in conv.plan.taps] == ["conv1:conv2d", "conv2", "fc"]
    assert conv.plan.taps[0].computed_weight and not conv.plan.skipped
    # the standardised weight convolves x, the memory's own weights the fitted memory
    assert "F.conv2d(x, truediv, self.bias" in conv.source and "self.memory_weight, F.conv2d" in conv.source
    assert conv.build().conv1.memory_weight.shape == (8, 1, 3, 3)


def test_in_the_literal_form_a_standardised_weight_is_left_as_is_with_the_reason():
    conv = check("weight_standardisation.py:Net", (1, 3, 8, 8), form="literal")
    assert [t.qualname for t in conv.plan.taps] == ["conv2", "fc"]
    (skip,) = conv.plan.skipped
    assert skip.qualname == "conv1:conv2d" and "computed in forward" in skip.reason and "form='sum'" in skip.reason


# --- cases 4 and 5: user code copied in, untraceable code kept whole or refused -----------

def test_user_leaf_classes_and_wrapped_functions_are_copied_so_the_output_stays_standalone():
    conv = check("custom_leaf.py:Net", (1, 3, 16, 16))
    src = conv.source
    for needed in ("class Gate(nn.Module):", "def _clip(x, limit):", "def scaled_swish(x):", "THRESHOLD = 0.0",
                   "SCALE = 1.5", "import math"):
        assert needed in src, needed
    assert not [line for line in src.splitlines() if "import" in line and "custom_leaf" in line]
    assert [t.qualname for t in conv.plan.taps] == ["conv", "fc"]


def test_a_library_leaf_is_copied_from_the_library_so_the_output_stays_standalone():
    conv = aimgen.convert(zoo("library_leaf.py:Net"), [(1, 3, 8, 8)], source_name="library_leaf", leaf=["sd"])
    assert "Standalone: imports torch and the standard library only" in conv.source
    assert "import torchvision" not in conv.source and "class StochasticDepth(nn.Module):" in conv.source
    assert "def stochastic_depth(" in conv.source  # what it calls, copied too
    assert lines_with(conv.source, "self.sd = ") == ["self.sd = StochasticDepth(0.2, 'batch')"]
    aim = conv.build()  # every name the copied code uses is bound (annotations included)
    assert sum(p.numel() for p in aim.parameters()) == conv.plan.aim_params


def test_len_of_a_traced_tensor_keeps_the_submodule_whole():
    conv = check("len_proxy.py:Net", (1, 5, 6))
    assert "class SeqPool(nn.Module):" in conv.source
    assert [t.qualname for t in conv.plan.taps] == ["fc1", "fc2"]


def test_untraceable_root_is_refused_with_file_line_and_the_option_that_helps(tmp_path, cli):
    code, _, err = cli("convert", ZOO / "untraceable_root.py", "--input-shape", "1,3,8,8", "-o", tmp_path / "o.py")
    assert code != 0 and "Traceback" not in err and err.count("\n") == 1
    assert "untraceable_root.py:14" in err and "if x.sum() > 0:" in err and "--leaf" in err
    assert leftovers(tmp_path, set()) == []


# --- case 6: hostile names ----------------------------------------------------------------

def test_hostile_names_never_run_and_the_model_keeps_its_function(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("AIMGEN_MARKER", str(marker))
    model = zoo("hostile_names.py:Net")
    conv = rm.check_conversion(model, [InputSpec((1, 3, 8, 8))], source_name="hostile", tmp=tmp_path)
    aim = conv.build()
    assert set(model.state_dict()) <= set(aim.state_dict())  # every base key kept, verbatim
    assert set(aim(torch.randn(2, 3, 8, 8))) == {"def", next(k for k in model.heads if k != "def")}
    assert len(conv.plan.taps) == 1 + len(model.blocks) + 2
    # the file itself, imported and validated in a fresh process, runs nothing either
    out = tmp_path / "hostile_aim.py"
    conv.write(out, onnx=False)
    assert not marker.exists() and not hasattr(builtins, "AIMGEN_PWNED")
    assert os.environ["AIMGEN_MARKER"] == str(marker)


# --- case 7: inputs, outputs and layer kinds ----------------------------------------------

def test_several_inputs_and_a_dict_output_with_a_nested_tuple(tmp_path):
    conv = check("multi_io.py:Net", (1, 3, 8, 8), (1, 5), tmp=tmp_path, onnx=True)
    assert "def forward(self, img, meta):" in conv.source
    out = conv.build()(torch.randn(2, 3, 8, 8), torch.randn(2, 5))
    assert set(out) == {"logits", "parts"} and isinstance(out["parts"], tuple) and out["parts"][1].shape == (2, 1)


@pytest.mark.parametrize("name,type_name", [("Net", "Output"), ("PairNet", "Pair")])
def test_dataclass_and_namedtuple_outputs_are_returned_as_such(name, type_name):
    conv = check(f"dataclass_output.py:{name}", (1, 3, 8, 8))
    out = conv.build()(torch.randn(2, 3, 8, 8))
    assert type(out).__name__ == type_name
    first = out.logits if dataclasses.is_dataclass(out) else out.first
    assert first.shape == (2, 3)


def test_token_ids_sequences_and_attention_every_weight_layer_reads_the_memory():
    """Token ids in; nn.MultiheadAttention is tapped as one layer (its packed projections and
    out_proj read the memory through its own memory_weight), as are the Linear layers."""
    conv = check("sequence.py:Net", InputSpec((1, 16), torch.int64))
    assert "EXAMPLE_INPUT_DTYPES = ['int64']" in conv.source
    assert {t.qualname for t in conv.plan.taps} == {"attn", "ff.0", "ff.2", "head"}
    assert [u["layer"] for u in conv.report_dict()["untapped"]] == ["embed"]   # a table, not a weight layer
    assert "attn.out_proj" not in conv.report
    assert "a, _ = self.attn(h, h, h, memory.features(" in conv.source


@pytest.mark.parametrize("name,shape,memory_rank", [("Net1d", (1, 2, 32), 2), ("Net3d", (1, 1, 8, 8, 8), 4),
                                                    ("Decoder", (1, 3, 16, 16), 3)])
def test_conv1d_conv3d_and_transposed_convs(name, shape, memory_rank):
    conv = check(f"conv_dims.py:{name}", shape)
    assert len(conv.plan.memory_shape) == memory_rank
    assert not conv.plan.skipped and len(conv.plan.taps) == sum(
        isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)) for m in zoo(f"conv_dims.py:{name}").modules())
    if name == "Decoder":
        assert {t.layer_type for t in conv.plan.taps} == {"Conv2d", "ConvTranspose2d"}
        assert next(t for t in conv.plan.taps if t.qualname == "up_g").groups == 2


def test_channel_shuffle_and_squeeze_excitation_on_1x1_maps():
    conv = check("shuffle_se.py:Net", (1, 3, 8, 8))
    taps = {t.qualname: t for t in conv.plan.taps}
    assert set(taps) == {"stem", "group_conv", "se.reduce", "se.expand", "fc"}
    assert taps["se.reduce"].spatial == (1, 1)  # the whole memory folded onto a 1x1 map


# --- issue 15: the families that got no memory, or no file ------------------------------------

def test_a_unet_gets_update_blocks_and_its_carry_moves():
    conv = check("unet.py:UNet", (1, 3, 32, 32))
    assert len(conv.plan.updates) >= 4 and carry_moves(conv)
    assert {t.layer_type for t in conv.plan.taps} >= {"Conv2d", "ConvTranspose2d"} and not conv.plan.skipped


def test_a_conditioned_denoiser_with_two_inputs_gets_update_blocks():
    conv = check("denoiser.py:Denoiser", (1, 3, 16, 16), (1,))
    assert conv.plan.updates and carry_moves(conv)
    assert "def forward(self, x, t):" in conv.source
    assert conv.code.block_classes.get("ResBlock") == 3  # one class, its emb input passed along


def test_a_kept_leaf_with_data_dependent_control_flow_is_written_and_onnx_is_not_possible(tmp_path, cli):
    conv = check("data_dependent_leaf.py:Net", (1, 3, 8, 8))
    assert "class SignGate(nn.Module):" in conv.source and carry_moves(conv)
    assert "data_dependent_leaf.py:9 (`if x.mean() > 0:`)" in conv.source and str(ZOO) not in conv.source
    out = tmp_path / "gate_aim.py"
    code, stdout, err = cli("convert", f"{ZOO / 'data_dependent_leaf.py'}:Net", "--input-shape", "1,3,8,8", "-o", out)
    assert code == 0 and out.exists(), err
    line = next(l for l in stdout.splitlines() if l.startswith("[not possible] onnx export"))
    assert "data_dependent_leaf.py:9 (`if x.mean() > 0:`);" in line and "torch.cond" in line
    assert ".tmp" not in stdout + err


def test_raw_parameters_are_written_as_their_own_initialisation():
    conv = check("raw_parameter.py:Net", (1, 4, 8))
    src = conv.source
    assert "self.cls_token = nn.Parameter(torch.randn(1, 1, 16) * 0.02)" in src
    assert "self.pos = nn.Parameter(torch.randn(1, 4 + 1, 16) * 0.02)" in src
    assert "self.gamma = nn.Parameter(torch.full((16,), 0.0001))" in src  # a constant: its value


# --- a bias module read through a method, with an index table too large to write ---------------

def test_an_index_table_too_large_to_write_is_written_as_its_init_computes_it():
    """Its __init__ registers ``relative_index(window)``: the function is copied and called with
    the recorded argument (it kept the module whole, and wrote its class, before)."""
    conv = check("relative_position.py:Net", (1, 3, 9, 9))
    assert lines_with(conv.source, "index=nn.Buffer(") == ["index=nn.Buffer(relative_index(9), persistent=False),"]
    assert "def relative_index(" in conv.source and "class RelPosBias" not in conv.source
    assert "'kept_whole'" not in conv.source   # nothing is
    assert lines_with(conv.source, "self.rel_pos.table[self.rel_pos.index]")   # get_bias, written inline


def test_a_float_buffer_left_out_of_state_dict_is_built_by_its_own_constructor():
    """No checkpoint restores it, so a drawn value would change the function (it did)."""
    conv = check("relative_position.py:NetWithTable", (1, 3, 9, 9))
    assert lines_with(conv.source, "self.position = SinusoidalTable(") == ["self.position = SinusoidalTable(81, 16)"]
    assert kept_whole(conv)["position"].startswith("its (81, 16) tensor table (not in state_dict) is too large")


def test_a_mask_a_method_of_the_block_computes_is_written_as_a_call_of_that_method():
    """timm's Swin registers its shifted-window mask (not in state_dict, too large to write)
    in reset_parameters() -> _init_buffers() from self.get_attn_mask(), a method reading the
    window geometry from self: the shifted blocks were kept whole, their layers untapped. The
    method is copied as a function of the values it reads; the attention's reshape of the
    buffer by its own shape is traced, not frozen into a (1, 4, 1, 16, 16) constant."""
    conv = check("shifted_window.py:Net", (1, 3, 16, 16), onnx=True)
    assert "kept_whole" not in conv.source
    assert [t.qualname for t in conv.plan.taps] == [
        "embed", "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.1.attn.qkv", "blocks.1.attn.proj", "head"]
    assert lines_with(conv.source, "make_mask(") == [
        "def make_mask(dtype: torch.dtype = torch.float32, *, shift, resolution, window):",
        "self.attn_mask = nn.Buffer(make_mask(dtype=torch.float32, shift=2, resolution=8, window=4),"]
    assert lines_with(conv.source, "if not shift:") == ["if not shift:"]   # self.shift read as shift
    assert "def partition(" in conv.source and "self.shift" not in conv.source.split("def make_mask")[1][:600]
    aim, base = conv.build(), zoo("shifted_window.py:Net")
    assert torch.equal(aim.blocks[1].attn_mask, base.blocks[1].attn_mask)
    assert getattr(aim.blocks[0], "attn_mask", None) is None   # no mask unshifted: None there


def test_a_large_constant_the_forward_makes_keeps_that_module_whole():
    conv = check("relative_position.py:NetWithMask", (1, 3, 9, 9))
    assert lines_with(conv.source, "self.mix = CausalMix(") == ["self.mix = CausalMix(81, 16)"]
    assert kept_whole(conv)["mix"].startswith("its forward makes a (81, 81) tensor that torch.fx records as a constant")


def test_a_block_torch_fx_would_keep_whole_with_its_layers_goes_through_torch_export():
    loaded = load_model(str(ZOO / "ndim_branch.py:Net"))
    model = loaded.model.eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict(), source_name="ndim_branch.py:Net")
    assert conv._traced.capture == "torch.export"
    assert sorted(t.qualname for t in conv.plan.taps) == [
        "attn.to_k", "attn.to_out", "attn.to_q", "attn.to_v", "conv_in", "conv_out"]
    assert "# captured with torch.export (non-strict): torch.fx kept 1 module whole (attn: torch.fx" in conv.source
    line = next(i for i, t in enumerate((ZOO / "ndim_branch.py").read_text().splitlines(), 1) if "x.ndim == 4" in t)
    assert f"ndim_branch.py:{line} (`if x.ndim == 4:`)" in conv.source and str(ZOO) not in conv.source
    assert conv.base_match().ok
    x = torch.randn(2, 3, 12, 12)
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-5


def test_where_torch_export_cannot_see_into_a_kept_block_either_torch_fx_s_graph_stands():
    loaded = load_model(str(ZOO / "ndim_branch.py:GatedNet"))
    model = loaded.model.eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict(),
                          constructor_args=loaded.constructor_args)
    assert conv._traced.capture == "torch.fx" and sorted(conv._traced.leaf_names) == ["gate"]
    assert sorted(t.qualname for t in conv.plan.taps) == ["conv_in", "conv_out"]
    assert [s.qualname for s in conv.plan.skipped] == ["gate.proj"]
    assert conv.base_match().ok


def test_past_its_time_limit_the_torch_export_attempt_gives_way_to_torch_fx(monkeypatch):
    """torch.export, tried only for more taps, ran for over ten minutes on timm's
    mobilevitv2_050; past the limit, torch.fx's graph (the block kept whole) stands."""
    from aimgen import capture

    monkeypatch.setattr(capture, "SEE_MORE_SECONDS", 0.001)
    loaded = load_model(str(ZOO / "ndim_branch.py:Net"))
    model = loaded.model.eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict(),
                          constructor_args=loaded.constructor_args)
    assert conv._traced.capture == "torch.fx" and "attn" in conv._traced.leaf_names
    assert sorted(t.qualname for t in conv.plan.taps) == ["conv_in", "conv_out"]
    assert conv.base_match().ok


# --- case 8: a model put together by a builder (ultralytics' YOLO) -------------------------

def test_a_builder_model_is_traced_by_torch_fx_through_its_blocks():
    """The root forward's *args/**kwargs are traced empty (they are not inputs), C2f's
    ``list(x.chunk(2, 1))`` is iterated, the activation every Conv shares as a class attribute
    is each block's own, and the head whose output differs in train() and eval() is traced
    too: what follows the part both modes share is written in the root's forward."""
    conv = check("builder_model.py:BuiltModel", (1, 3, 32, 32))
    assert conv._traced.capture == "torch.fx" and not conv._traced.leaf_names
    assert conv._traced.mode_tail == "model.5" and not conv.plan.skipped
    assert len(conv.plan.taps) == 14   # every conv and the head's Linear
    src = conv.source
    assert "class Conv(nn.Module):" in src and "default_act" not in src
    block = src.split("class Conv(nn.Module):")[1].split("\nclass ")[0]
    assert "self.act = nn.SiLU()" in block and "return self.act(self.bn(conv)), memory" in block
    assert ".chunk(2, 1)" in src
    forward = src.split("def forward_with_memory")[1]
    assert "        if self.training:\n            return x, memory.final()\n" \
        "        return (x.softmax(1), x), memory.final()\n" in forward
    assert "model.5 returns other things in train() and eval()" in conv.report
    # the update blocks are placed after their stages, not after the shared activation's first holder
    assert "after model.0.act" not in conv.report
    aim = conv.build()
    x = conv.example_inputs(batch=2)
    assert isinstance(aim.train()(*x), torch.Tensor)
    probabilities, logits = aim.eval()(*x)
    assert torch.allclose(probabilities, logits.softmax(1))


def test_a_root_forward_with_star_args_is_traced_with_them_empty_before_torch_export_is_tried(monkeypatch):
    """torch.export fails on such a model's mode-dependent head, twice (train() and eval()),
    before the trace that works: a third of a YOLO conversion. A root forward with **kwargs only
    (every Hugging Face model's) still takes torch.export first."""
    from aimgen import api, capture

    calls = []
    real = capture.export_trace
    monkeypatch.setattr(capture, "export_trace", lambda *a, **k: calls.append(1) or real(*a, **k))
    loaded = load_model(str(ZOO / "builder_model.py:BuiltModel"))
    conv = aimgen.convert(loaded.model, [(1, 3, 32, 32)], constructor_args=loaded.constructor_args)
    assert conv._traced.capture == "torch.fx" and conv._traced.mode_tail == "model.5" and calls == []
    assert api._takes_args(loaded.model)

    class KwargsOnly(torch.nn.Module):
        def forward(self, x, **kwargs):
            return x

    assert api.variadic(KwargsOnly()) and not api._takes_args(KwargsOnly())


def test_a_copied_class_keeps_its_name_and_the_block_class_made_from_it_is_aim_prefixed():
    """With the head kept whole (leaf=), its Conv class is copied into the file as it is, and
    the block class made from the other Convs may not shadow it."""
    conv = check("builder_model.py:BuiltModel", (1, 3, 32, 32), leaf=["model.5"])
    src = conv.source
    assert "class Conv(nn.Module):\n    default_act = nn.SiLU()" in src       # copied for the head
    assert "class AimConv(nn.Module):" in src and src.count("class Conv(") == 1
    assert sorted(s.qualname for s in conv.plan.skipped) == ["model.5.conv.conv", "model.5.linear"]


def test_builder_tags_on_a_kept_layer_do_not_stop_its_rebuild():
    """Attributes a builder sets on a layer that its class never reads (m.i, m.f, m.type, m.np)
    are not constructor arguments: the kept head is rebuilt without them."""
    from aimgen.modules import constructor
    from aimgen.sourcecopy import SourceCopier

    model = zoo("builder_model.py:BuiltModel")
    head = model.model[5]
    assert (head.i, head.type) == (5, "Classify")
    ctor = constructor(head, "model.5", copier=SourceCopier(), why="kept", recorded={"c1": 64, "c2": 10})
    assert ctor.callee == "Classify" and [a.value for a in ctor.args] == [64, 10]
    scaled = _Scaled()
    scaled.i, scaled.scale = 3, 2.0   # its forward reads `scale`: that one must match
    with pytest.raises(aimgen.errors.RenderError, match="attributes of the module: {} != {'scale': 2.0}"):
        constructor(scaled, "scaled", copier=SourceCopier(), why="kept", recorded={})


def test_settings_a_builder_gave_the_layers_of_a_kept_module_after_building_are_set_again():
    """A module kept whole is rebuilt by its own constructor, which gives its BatchNorms the
    default eps and momentum; the builder had set others (RT-DETR's decoder was refused for
    it). They are set again after the constructor call: one loop where every BatchNorm of the
    kept module has them, one line per setting where one layer has them."""
    conv = check("builder_model.py:built_with_settings", (1, 3, 32, 32), leaf=["model.3", "model.5"])
    src = conv.source
    assert ("        for m in self.model[3].modules():  # as the base model's builder set them\n"
            "            if isinstance(m, nn.BatchNorm2d):\n"
            "                m.eps, m.momentum = 0.001, 0.03\n") in src
    assert "        self.model[5].conv.bn.eps = 0.001  # as the base model's builder set it\n" in src
    assert "        self.model[5].conv.bn.momentum = 0.03  # as the base model's builder set it\n" in src
    aim = conv.build()
    assert aim.model[3].m[1].cv2.bn.eps == 1e-3 and aim.model[5].conv.bn.momentum == 0.03
    assert aim.model[1].cv1.bn.eps == 1e-3   # traced through: its constructor call says so itself
    assert conv.base_match().ok


def test_a_setting_that_changes_a_weight_shape_is_not_a_setting():
    """Only plain settings are set again after a rebuild; a layer replaced after building by
    one of another width still differs in its weights, and is refused as before."""
    from aimgen.modules import constructor, set_after_building
    from aimgen.sourcecopy import SourceCopier

    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.BatchNorm2d(4, eps=1e-3))
    rebuilt = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.BatchNorm2d(4))
    assert set_after_building(model, rebuilt) == {"1": {"eps": 1e-3}}
    other = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.LayerNorm(4))
    assert set_after_building(model, other) == {}
    replaced = _Normed(4)
    replaced.bn = torch.nn.BatchNorm2d(8)
    with pytest.raises(aimgen.errors.RenderError, match=r"parameters \{'bn.weight': \(\(4,\).* != \{'bn.weight': \(\(8,\)"):
        constructor(replaced, "normed", copier=SourceCopier(), why="kept", recorded={"c": 4})


class _Normed(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(c)


def test_what_a_kept_module_caches_when_it_runs_does_not_stop_its_rebuild():
    """A forward that keeps what it computed on its module (RT-DETR's decoder keeps the feature
    sizes it made anchors for) left an attribute on the model, after aimgen ran it, that a module
    fresh from its constructor lacks: the conversion puts back what its runs set, so the kept
    module is compared with its rebuild as it was loaded, and the model is left as given."""
    import aimgen

    model = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), _Caching())
    conv = aimgen.convert(model, [(1, 2, 4, 4)], leaf=["1"], source_name="cached", base_weights=model.state_dict())
    assert "sizes" not in vars(model[1]) and "_Caching()" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(aim.eval()(x), model.eval()(x))


class _Caching(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x):
        self.sizes = list(x.shape[2:])
        return self.lin(x.flatten(2).transpose(1, 2))


class _Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.lin(x) * getattr(self, "scale", 1.0)


def test_a_detection_head_decodes_in_eval_only_and_its_cached_anchors_follow_the_input_size():
    """ultralytics' Detect pattern: raw predictions in train(); in eval() also decoded with anchor
    points cached for the last shape (``if self.shape != shape:``, taken as differing: the
    generated model recomputes them) and a fixed conv only decoding uses (not tapped: in train()
    nothing reaches it). Tracing leaves no traced value on the base model's modules."""
    conv = check("detect_head.py:Net", (1, 3, 32, 32), onnx=True)   # eval()'s tail exports, with parity
    model = conv.base_model
    left = [k for m in model.modules() for k, v in vars(m).items() if isinstance(v, (torch.fx.Proxy, torch.fx.Node))]
    assert left == []   # tracing set self.anchors/self.shape to traced values: put back
    assert conv._traced.mode_tail == "head" and not conv._traced.leaf_names
    (skip,) = conv.plan.skipped
    assert skip.qualname == "head.integral.conv" and "runs only in eval()" in skip.reason
    assert sorted(t.qualname for t in conv.plan.taps) == ["body.0", "head.box", "head.cls", "stem.0"]
    assert re.search(r"\n        (\w+)\[:, 1::2\] = \w+\n", conv.source)   # the slice assignment, as written
    # eval()'s tail, written in the root, reads as the head's own lines: their names, each on
    # the value its line made (not on what a call inside it computed), the items it unpacked
    tail = conv.source.split("        if self.training:\n")[1].split("\n\n")[0]
    assert tail.startswith("            return (boxes, scores), memory.final()\n        shape = silu.shape\n")
    for line in ("h, w = shape[2:]", "ys, xs = torch.meshgrid(arange, arange_1, indexing='ij')",
                 "anchors = torch.stack((xs, ys)).view(2, -1) + 0.5", "b, _, a = boxes.shape",
                 "view = conv.view(b, 2, a)", "decoded = unsqueeze + view", "decoded[:, 1::2] = mul"):
        assert f"\n        {line}\n" in tail, line
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    for size in (32, 48):   # the anchors follow the input size, as the base model's cache does
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            got, want = aim.eval()(x), model.eval()(x)
        assert got[0].shape == want[0].shape == (2, 5, (size // 4) ** 2)
        assert torch.allclose(got[0], want[0], atol=1e-5) and torch.allclose(got[1][0], want[1][0], atol=1e-5)
    boxes, scores = aim.train()(torch.randn(2, 3, 32, 32))
    assert boxes.shape == (2, 8, 64) and scores.shape == (2, 3, 64)
    fixed = conv.build(load_weights=False).head.integral.conv.weight   # from scratch: as its __init__ sets it
    assert not fixed.requires_grad and torch.equal(fixed.flatten(), torch.arange(4.0))


class _Frozen(torch.nn.Module):
    """Two layers whose __init__ fixes and freezes their weights: whole numbers (written as they
    are) and a random draw (frozen, but never written into the file)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pick = torch.nn.Conv2d(4, 1, 1, bias=False).requires_grad_(False)
        self.pick.weight.data[:] = torch.tensor([2.0, 0.0, 1.0, 3.0]).view(1, 4, 1, 1)
        self.mix = torch.nn.Conv2d(1, 1, 1, bias=False).requires_grad_(False)

    def forward(self, x):
        return self.mix(self.pick(self.conv(x)))


def test_layers_frozen_by_their_init_stay_frozen_and_whole_number_values_are_written():
    conv = aimgen.convert(_Frozen(), [(1, 3, 8, 8)])
    flat = re.sub(r"\s*\n\s*", " ", conv.source)   # wrapped lines joined
    assert "self.pick.weight = nn.Parameter(torch.tensor([2.0, 0.0, 1.0, 3.0]).view(1, 4, 1, 1), " \
        "requires_grad=False)" in flat
    assert "self.mix.weight.requires_grad_(False)" in conv.source
    aim = conv.build(load_weights=False)
    assert torch.equal(aim.pick.weight.flatten(), torch.tensor([2.0, 0.0, 1.0, 3.0]))
    assert not aim.pick.weight.requires_grad and not aim.mix.weight.requires_grad
    assert aim.pick.memory_weight.requires_grad   # the memory it reads still trains


# --- window attention: a Linear whose rows are windows of the samples ----------------------------

def test_window_attention_reads_each_sample_s_memory_in_every_window():
    """qkv and proj run on (B * 16 windows, 16, C): each window reads its own sample's memory
    (they were left as they were: 'input is not batched'). The rows of a sequence-first layer
    are tokens, not windows of samples: that one reads each sample's memory along its batch axis."""
    conv = check("window_attention.py:Net", (1, 3, 32, 32), onnx=True)
    assert [t.qualname for t in conv.plan.taps] == ["embed", "attn.qkv", "attn.proj", "head"]
    assert [t.sample_rows for t in conv.plan.taps] == [False, True, True, False]
    assert "def per_window(m: torch.Tensor, x: torch.Tensor)" in conv.source
    assert lines_with(conv.source, "= qkv(cat([") == ["# = qkv(cat([windows, m], -1)), each window with its sample's m"]
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(3, 3, 48, 48)   # another size: 36 windows a sample
    with torch.no_grad():
        assert aim(x).shape == (3, 5)
    aim.train()(x).sum().backward()
    assert aim.attn.qkv.memory_weight.grad.abs().sum() > 0

    one = check("window_attention.py:Net", (1, 3, 8, 8))   # one window a sample at the example
    assert [(t.qualname, t.sample_rows) for t in one.plan.taps] == [
        ("embed", False), ("attn.qkv", True), ("attn.proj", True), ("head", False)]
    with torch.no_grad():   # the symbolic sizes took the windows for the batch: this failed
        assert one.build().eval()(torch.randn(3, 3, 48, 48)).shape == (3, 5)

    blocks = check("window_attention.py:BlockConv", (1, 3, 16, 16), onnx=True)   # a conv on blocks (NesT)
    assert [(t.qualname, t.sample_rows) for t in blocks.plan.taps] == [
        ("embed", False), ("block", True), ("head", False)]
    assert lines_with(blocks.source, "= block(cat([") == ["# = block(cat([blocks, m], 1)), each window with its sample's m"]

    # sequence first, (tokens, B, C): rows are tokens, not windows; the batch is the second axis
    tokens = check("window_attention.py:TokenFirst", (1, 3, 8, 8))
    assert [(t.qualname, t.sample_rows, t.batch_second) for t in tokens.plan.taps] == [
        ("embed", False, False), ("mix", False, True), ("head", False, False)]
    assert "per_window" not in tokens.source
    assert "self.mix(tokens, memory.features(1, tokens).transpose(0, 1))" in tokens.source

    table = check("window_attention.py:PositionBias", (1, 16, 4))   # its input is no sample's: said so
    assert [t.qualname for t in table.plan.taps] == ["embed", "head"]
    assert [s.reason for s in table.plan.skipped] == [
        "its input is the same whatever the model's input (a table, such as relative positions for a bias): "
        "there is no sample's memory to read"]


# --- torch.nn's transformer -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["Encoder", "BatchFirst"])
def test_nn_transformer_encoder_is_traced_through_and_every_layer_reads_the_memory(name):
    """nn.TransformerEncoder(layer, 2), seq-first (torch's default) or batch-first: traced through
    (torch.fx keeps torch.nn modules whole, and their own forwards branch on the input), each
    layer a block class whose attention and Linear layers read the memory; the layer its
    constructor copies is written as its own call where the encoder is kept whole."""
    conv = check(f"transformer_encoder.py:{name}", (2, 10, 16), onnx=name == "Encoder")   # onnxruntime parity
    layers = {"embed", "head"}
    for i in range(2):
        layers |= {f"encoder.layers.{i}.{q}" for q in ("self_attn", "linear1", "linear2")}
    assert {t.qualname for t in conv.plan.taps} == layers and not conv.plan.skipped
    assert conv.code.block_classes == {"TransformerEncoderLayer": 2, "TransformerEncoder": 1}
    second = ".transpose(0, 1)" if name == "Encoder" else ""   # the batch on the second axis
    assert f"self.linear1(x, memory.features(1, x){second})" in conv.source
    whole = check(f"transformer_encoder.py:{name}", (2, 10, 16), leaf=["encoder"])
    first = ", batch_first=True" if name == "BatchFirst" else ""
    assert "nn.TransformerEncoder(\n            nn.TransformerEncoderLayer(32, 4, dim_feedforward=64" \
           f"{first}),\n            2,\n            norm=nn.LayerNorm(32),\n        )" in whole.source


def test_nn_transformer_encoder_decoder_with_two_inputs_reads_the_memory_everywhere():
    conv = check("transformer_encoder.py:Seq2Seq", (2, 10, 16), (2, 6, 8))
    # src, tgt and head; the encoder layer's attention and two Linears; each decoder layer's two
    # attentions and two Linears
    assert len(conv.plan.taps) == 3 + 3 + 2 * 4 and not conv.plan.skipped
    assert conv.code.block_classes == {"TransformerEncoderLayer": 1, "TransformerEncoder": 1,
                                       "TransformerDecoderLayer": 2, "TransformerDecoder": 1, "Transformer": 1}
    assert "F.gelu(" in conv.source and "self.multihead_attn(" in conv.source


def test_views_stacked_on_the_batch_axis_read_their_samples_memory():
    """An encoder run on torch.cat([a, b]) (RAFT's feature encoder): its rows are views of the
    samples, not samples; each view reads its sample's memory (per_view), where it was left as
    it was ('input is not a batched tensor')."""
    conv = check("siamese.py:Siamese", (1, 3, 8, 8), (1, 3, 8, 8), onnx=True)
    assert [(t.qualname, t.views) for t in conv.plan.taps] == [("encoder.0", True), ("encoder.2", True),
                                                                ("head", False)]
    assert "per_view(memory.channels(1, features), features)" in conv.source
    assert lines_with(conv.source, "= encoder.0(cat([") == ["# = encoder.0(cat([features, m], 1)), each view with "
                                                           "its sample's m"]
