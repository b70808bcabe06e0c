"""ONNX export (aimgen.export and ``aimgen export``): the files it writes, their signatures, the
weights it exports (the file beside the generated one by default), the stateful graph's
self-description, and every refusal.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import aimgen
import export_models as em
from aimgen.errors import AimgenError, ExportError, WeightsError
from aimgen.export import CARRY_RULE, export_file
from aimgen.onnx_checks import ATOL, RTOL
from aimgen.readback import load_generated

from conftest import convert_to_file, files_in, onnx_signature as signature


def test_stateless_inputs_match_a_plain_export_of_the_base_model(tmp_path):
    """The reference for "the base model's inputs": torch.onnx.export of the base itself."""
    torch.manual_seed(0)
    base = em.TwoInputs().eval()
    x = (torch.randn(2, 3, 12, 12), torch.randn(2, 5))
    batch = torch.export.Dim("batch")
    torch.onnx.export(base, x, tmp_path / "base.onnx", dynamo=True, external_data=False, verbose=False,
                      dynamic_shapes=({0: batch}, {0: batch}))
    path = convert_to_file(base, [(1, *t.shape[1:]) for t in x], tmp_path / "m.py")
    export_file(path, tmp_path / "aim.onnx")
    base_in, base_out = signature(tmp_path / "base.onnx")
    aim_in, aim_out = signature(tmp_path / "aim.onnx")
    assert aim_in == base_in
    assert [row[1:] for row in aim_out] == [row[1:] for row in base_out]


# ----------------------------------------------------------------------------- export_file


def _ort(path: Path, feeds: dict) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_export_file_writes_one_self_contained_file(mlp_file, tmp_path):
    result = export_file(mlp_file, tmp_path / "m.onnx")
    assert files_in(tmp_path) == {"m.onnx"}  # no m.onnx.data, no temp files
    assert result.external_data is None and not result.stateful
    text = result.summary()
    assert str(tmp_path / "m.onnx") in text and "stateless" in text
    assert "x[batch,20]" in text and "output[batch,5]" in text and "kB" in text
    assert "\n" not in text
    mode = (tmp_path / "m.onnx").stat().st_mode & 0o777
    assert mode & 0o044, f"the output is private ({oct(mode)}); it should follow the umask"
    model = load_generated(mlp_file).model
    x = torch.randn(4, 20)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_ort(tmp_path / "m.onnx", {"x": x.numpy()})[0], expected, atol=ATOL, rtol=RTOL)


def test_export_file_refuses_an_existing_output_unless_forced(mlp_file, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_text("keep me")
    with pytest.raises(AimgenError, match="exists already"):
        export_file(mlp_file, target)
    assert target.read_text() == "keep me" and files_in(tmp_path) == {"m.onnx"}
    export_file(mlp_file, target, force=True)
    onnx.checker.check_model(str(target))


def test_large_models_keep_their_weights_beside_the_file(mlp_file, tmp_path, monkeypatch):
    """Over protobuf's 2 GB limit the weights go to MODEL.onnx.data, and the summary says so
    (simulated by lowering the limit)."""
    import aimgen.export as export

    monkeypatch.setattr(export, "SINGLE_FILE_LIMIT", 0)
    result = export_file(mlp_file, tmp_path / "m.onnx", stateful=True)
    assert files_in(tmp_path) == {"m.onnx", "m.onnx.data"}
    assert result.external_data == tmp_path / "m.onnx.data"
    assert "m.onnx.data" in result.summary() and "2 GB" in result.summary()
    gen = load_generated(mlp_file)
    memory = getattr(gen.model, gen.meta["memory"]).read().detach()
    x = torch.randn(3, 20)
    with torch.no_grad():
        out, new = gen.model.forward_with_memory(x, memory)
    got = _ort(tmp_path / "m.onnx", {"x": x.numpy(), "memory": memory.numpy()})
    np.testing.assert_allclose(got[0], out.numpy(), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(got[1], new.numpy(), atol=ATOL, rtol=RTOL)


def test_weights_are_loaded_into_the_export(mlp_file, tmp_path):
    gen = load_generated(mlp_file)
    torch.manual_seed(1)
    state = {k: v + 0.1 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in gen.model.state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "w.pt")
    x = torch.randn(2, 20)
    with torch.no_grad():
        default = gen.model(x)
        gen.model.load_state_dict(state)
        expected = gen.model(x)
    got = _ort(tmp_path / "m.onnx", {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=ATOL, rtol=RTOL)
    assert not np.allclose(got, default.numpy(), atol=1e-3), "the export ignored --weights"


def test_a_file_that_is_not_an_aimgen_output_is_refused(tmp_path):
    source = tmp_path / "model.py"
    source.write_text("import torch\n\ndef build_model():\n    return torch.nn.Linear(2, 2)\n")
    with pytest.raises(AimgenError, match="not an aimgen output"):
        export_file(source, tmp_path / "m.onnx")
    assert files_in(tmp_path) == {"model.py"}


def test_weights_that_do_not_fit_are_listed_by_name(mlp_file, tmp_path):
    state = load_generated(mlp_file).model.state_dict()
    state.pop("fc1.bias")
    state["head.weight"] = torch.zeros(7, 3)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(WeightsError) as err:
        export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "w.pt")
    message = str(err.value)
    assert "does not fit" in message and str(tmp_path / "w.pt") in message
    assert "missing (1): fc1.bias" in message
    assert "unexpected (1): extra.weight" in message
    assert "shape mismatch (1): head.weight (7, 3)" in message
    assert files_in(tmp_path) == {"w.pt"}


def test_weights_that_are_not_a_state_dict_are_refused_without_running_code(mlp_file, tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module: weights_only refuses it
    with pytest.raises(WeightsError, match="refused: it holds a pickled torch.nn.modules.linear.Linear"):
        export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "module.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="not a plain state_dict .a list"):
        export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="no such file"):
        export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "missing.pt")
    assert files_in(tmp_path) == {"module.pt", "list.pt"}


def test_safetensors_weights(mlp_file, tmp_path):
    from safetensors.torch import save_file

    model = load_generated(mlp_file).model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "w.safetensors")
    x = torch.randn(2, 20)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model.eval()(x)
    np.testing.assert_allclose(got, want.numpy(), atol=ATOL, rtol=RTOL)


def test_safetensors_without_the_package_says_what_to_install(mlp_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if not installed
    (tmp_path / "w.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(WeightsError, match="pip install safetensors"):
        export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "w.safetensors")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("where", ["missing folder", "parent is a file", "folder nobody can write"])
def test_an_unwritable_output_is_refused_naming_the_path(mlp_file, tmp_path, where):
    if where == "missing folder":
        target = tmp_path / "no" / "such" / "m.onnx"
    elif where == "parent is a file":
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "m.onnx"
    else:
        target = Path("/sys/aimgen-test.onnx")  # sysfs: not even root may create files there
    before = files_in(tmp_path)
    with pytest.raises(AimgenError) as err:
        export_file(mlp_file, target)
    assert str(target) in str(err.value)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("opset", [7, 17, 99])
def test_an_opset_the_exporter_cannot_produce_is_refused(mlp_file, tmp_path, opset):
    with pytest.raises(ExportError, match=rf"`opset={opset}`: .* produces opsets 18 to \d+"):
        export_file(mlp_file, tmp_path / "m.onnx", opset=opset)
    assert files_in(tmp_path) == set()


# ----------------------------------------------------------------------------- issue 12


def test_the_stateful_graph_describes_itself_and_runs_without_a_memory_input(mlp_file, tmp_path):
    """The memory input defaults to the initial memory (an initializer of its name), and the
    metadata names the memory input and output, the carry rule and aimgen's version."""
    import aimgen

    result = export_file(mlp_file, tmp_path / "s.onnx", stateful=True)
    assert result.optional == ["memory"]
    proto = onnx.load(str(tmp_path / "s.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["aimgen.memory_input"] == "memory" and props["aimgen.memory_output"] == "new_memory"
    assert props["aimgen.carry"] == CARRY_RULE and props["aimgen.version"] == aimgen.__version__
    assert props["aimgen.graph"] == "stateful" and props["aimgen.memory_shape"] == "1"
    session = onnxruntime.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]  # memory is optional
    gen = load_generated(mlp_file)
    memory = gen.initial_memory()
    x = torch.randn(3, 20)
    with torch.no_grad():
        out, new = gen.model.forward_with_memory(x, memory)
        out2, new2 = gen.model.forward_with_memory(x, new)
    got, got_new = session.run(None, {"x": x.numpy()})  # first call: no memory given
    np.testing.assert_allclose(got, out.numpy(), atol=ATOL, rtol=RTOL)
    got2, _ = session.run(None, {"x": x.numpy(), "memory": got_new})  # carried
    np.testing.assert_allclose(got2, out2.numpy(), atol=ATOL, rtol=RTOL)
    assert np.abs(got2 - got).max() > 0  # the carried memory changed the answer
    stateless = onnx.load(str(export_file(mlp_file, tmp_path / "f.onnx").path))
    assert {p.key: p.value for p in stateless.metadata_props}["aimgen.graph"] == "stateless"


def test_the_readme_onnxruntime_loop_runs(mlp_file, tmp_path):
    """The README's 'Deploying with ONNX' loop, run as written on a stateful export."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Deploying with ONNX"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    export_file(mlp_file, tmp_path / "model_stateful.onnx", stateful=True)
    batches = [np.random.default_rng(i).standard_normal((2, 20)).astype(np.float32) for i in range(3)]
    scope = {"batches": batches}
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    assert len(scope["outputs"]) == 3 and scope["memory"].shape == (1,)


def test_the_stateless_graph_keeps_no_work_on_the_frozen_memory_alone(tmp_path):
    """In eval() the memory is a constant: its fits and the memory products before the first
    update block depend on nothing else, and onnxruntime's graph optimizations fold them all
    (no node left whose inputs are all constants)."""
    source = Path(__file__).resolve().parent.parent / "generated" / "tiny_cnn_aim.py"
    target = tmp_path / "t.onnx"
    export_file(source, target, random_weights=True)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "t_optimized.onnx")
    onnxruntime.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])

    def constant_only(path: Path) -> list[str]:
        graph = onnx.load(str(path)).graph
        constant = {i.name for i in graph.initializer}
        constant |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        return [f"{n.op_type} {n.name}" for n in graph.node
                if n.op_type != "Constant" and n.input and all(i in constant or not i for i in n.input)]

    assert constant_only(tmp_path / "t_optimized.onnx") == []
    # conv1's memory product (before the first update) is folded; conv2 reads updated memory
    convs = [n for n in onnx.load(str(tmp_path / "t_optimized.onnx")).graph.node if n.op_type == "Conv"]
    assert len(convs) == 3


def test_a_video_model_pools_its_3d_maps_in_onnx(tmp_path):
    """Update blocks on (N, C, T, H, W) maps export, and onnxruntime computes what torch does
    at another batch size (the exporter refuses F.adaptive_avg_pool3d to a grid of more than 1)."""
    path = convert_to_file(em.VideoNet(), [(1, 3, 6, 10, 10)], tmp_path / "video_aim.py")
    assert "pool_to_grid(" in path.read_text()
    export_file(path, tmp_path / "video.onnx", random_weights=True)
    model = load_generated(path, random_weights=True).model
    x = torch.randn(3, 3, 6, 10, 10)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = _ort(tmp_path / "video.onnx", {"clip": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_a_densenet_block_loop_imports_fresh_and_exports_with_parity(tmp_path):
    """torchvision's DenseBlock written as its own loop (``features = [init_features]; for layer
    in self.children(): ...; features.append(new_features)``): the file imports in a fresh
    process and trains, and its ONNX export matches PyTorch (the loop unrolls as it traces)."""
    from torchvision.models.densenet import DenseNet

    torch.manual_seed(0)
    model = DenseNet(growth_rate=4, block_config=(3, 2), num_init_features=8, bn_size=2, num_classes=3).eval()
    conv = aimgen.convert(model, torch.randn(1, 3, 32, 32), base_weights=model.state_dict())
    assert "        for layer in self.children():\n" in conv.source
    written = conv.write(tmp_path / "dense_aim.py")
    checks = {c.name: c for c in written.checks}
    for name in ("fresh import", "forward/backward", "onnxruntime parity (stateless, batch 3)",
                 "onnxruntime parity (stateful, batch 3)", "stateful carry (3 calls)"):
        assert checks[name].ok, checks[name]
