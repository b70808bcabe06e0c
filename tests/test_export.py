"""ONNX export and the ONNX part of validation (issue 3, spec "Validation").

Each model is converted once and exported once per kind (stateless and stateful, by
``onnx_checks`` with ``keep_dir``); the signature tests read those kept files. resnet50,
vgg16 and mobilenet_v2 at 224x224 with 120 classes are marked slow; resnet18 at 64x64 keeps a
real torchvision model in the default run.
"""
from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import aimgen
from aimgen.errors import AimgenError, ExportError, ValidationError, WeightsError
from aimgen.export import ATOL, RTOL, export_file, flat_tensors, load_generated, onnx_checks

sys.path.insert(0, str(Path(__file__).resolve().parent / "models"))
import export_models as em  # noqa: E402


def _torchvision(name: str, classes: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=classes)

    return build


@dataclass(frozen=True)
class Case:
    build: Callable[[], nn.Module]
    shapes: tuple[tuple[int, ...], ...]


CASES = {
    "mlp": Case(em.MLP, ((1, 20),)),
    "conv1d": Case(em.Conv1dNet, ((1, 2, 50),)),
    "odd_cnn": Case(em.OddCNN, ((1, 3, 30, 30),)),  # memory grid does not divide the maps
    "two_inputs": Case(em.TwoInputs, ((1, 3, 12, 12), (1, 5))),
    "resnet18_64": Case(_torchvision("resnet18", 10), ((1, 3, 64, 64),)),
    "resnet50": Case(_torchvision("resnet50", 120), ((1, 3, 224, 224),)),
    "vgg16": Case(_torchvision("vgg16", 120), ((1, 3, 224, 224),)),
    "mobilenet_v2": Case(_torchvision("mobilenet_v2", 120), ((1, 3, 224, 224),)),
}
SLOW = {"resnet50", "vgg16", "mobilenet_v2"}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES]


# ----------------------------------------------------------------------------- helpers


def convert_to_file(model: nn.Module, shapes, path: Path, **kwargs) -> Path:
    torch.manual_seed(0)
    inputs = tuple(torch.randn(s) for s in shapes)
    aimgen.convert(model, inputs, **kwargs).write(path, onnx=False)
    return path


def signature(path: Path) -> tuple[list[tuple], list[tuple]]:
    """(name, dims, element type) of each graph input and output."""
    proto = onnx.load(str(path), load_external_data=False)

    def rows(values):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                 v.type.tensor_type.elem_type) for v in values]

    return rows(proto.graph.input), rows(proto.graph.output)


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != "__pycache__"}


def run_aimgen(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aimgen", *map(str, args)], capture_output=True, text=True,
                          cwd=str(cwd) if cwd else None, timeout=600)


@dataclass
class Checked:
    name: str
    base: nn.Module
    path: Path
    folder: Path
    checks: list


@pytest.fixture(scope="module", params=PARAMS)
def checked(request, tmp_path_factory) -> Checked:
    """Each model converted once, validated with onnx_checks once (two exports), files kept."""
    name = request.param
    if name in SLOW and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow (minutes on 2 cores): run with -m slow")  # pyproject: excluded by default
    case = CASES[name]
    folder = tmp_path_factory.mktemp(name)
    torch.manual_seed(0)
    base = case.build().eval()
    path = convert_to_file(base, case.shapes, folder / "model.py")
    onnx_dir = folder / "onnx"
    onnx_dir.mkdir()
    return Checked(name, base, path, onnx_dir, onnx_checks(path, keep_dir=onnx_dir))


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory) -> Path:
    """A small generated AiM file for the export_file and refusal tests."""
    return convert_to_file(em.MLP(), ((1, 20),), tmp_path_factory.mktemp("mlp") / "mlp_aim.py")


# ----------------------------------------------------------------------------- the models


EXPECTED_CHECKS = [f"{what} ({kind})" for kind in ("stateless", "stateful") for what in
                   ("onnx export", "onnx checker")] + \
    [f"onnxruntime parity ({kind}, batch {b})" for kind in ("stateless", "stateful") for b in (1, 3)] + \
    ["stateful carry (3 calls)"]


def test_onnx_checks_pass(checked: Checked):
    """Both exports pass onnx.checker, match PyTorch at batch 1 and 3, and carry over 3 calls."""
    print("\n".join(c.line() for c in checked.checks))  # the measured numbers, with -rP
    failed = [c.line() for c in checked.checks if not c.ok]
    assert not failed, failed
    assert sorted(c.name for c in checked.checks) == sorted(EXPECTED_CHECKS)
    for check in checked.checks:
        if "max_abs_diff" in check.numbers:
            assert check.numbers["max_abs_diff"] <= ATOL, check.line()
            assert "max abs difference" in check.detail
    carry = next(c for c in checked.checks if c.name.startswith("stateful carry"))
    assert carry.numbers["calls"] == 3 and carry.numbers["memory_moved"] > 0, carry.line()


def _base_signature(checked: Checked):
    """Inputs and outputs of the base model: forward's names, shapes with a batch axis."""
    case = CASES[checked.name]
    names = list(inspect.signature(checked.base.forward).parameters)[:len(case.shapes)]
    inputs = [(n, ["batch", *s[1:]], onnx.TensorProto.FLOAT) for n, s in zip(names, case.shapes)]
    with torch.no_grad():
        outs = flat_tensors(checked.base(*(torch.randn((2, *s[1:])) for s in case.shapes)))
    outputs = [(["batch", *t.shape[1:]], onnx.TensorProto.FLOAT) for t in outs]
    return inputs, outputs


def test_stateless_graph_has_the_base_models_inputs_and_outputs(checked: Checked):
    inputs, outputs = signature(checked.folder / "stateless.onnx")
    base_inputs, base_outputs = _base_signature(checked)
    assert inputs == base_inputs
    assert [(dims, dtype) for _, dims, dtype in outputs] == base_outputs
    assert [n for n, _, _ in outputs] == ["output"] + [f"output_{i}" for i in range(1, len(outputs))]


def test_stateful_graph_adds_exactly_memory_in_and_out(checked: Checked):
    inputs, outputs = signature(checked.folder / "stateless.onnx")
    s_inputs, s_outputs = signature(checked.folder / "stateful.onnx")
    seed = list(load_generated(checked.path).module.AIMGEN["memory_shape"])
    assert s_inputs == inputs + [("memory", seed, onnx.TensorProto.FLOAT)]
    assert s_outputs == outputs + [("new_memory", seed, onnx.TensorProto.FLOAT)]


def test_stateless_graph_is_the_stateful_one_with_the_memory_frozen(checked: Checked):
    """One trace serves both: the memory input becomes a constant holding what eval() reads
    (seed + carry), and the nodes that only computed new_memory are gone."""
    from onnx import numpy_helper

    stateless = onnx.load(str(checked.folder / "stateless.onnx"))
    stateful = onnx.load(str(checked.folder / "stateful.onnx"))
    (memory,) = [numpy_helper.to_array(t) for t in stateless.graph.initializer if t.name == "memory"]
    gen = load_generated(checked.path)
    np.testing.assert_array_equal(memory, getattr(gen.model, gen.meta["memory"]).read().detach().numpy())
    assert len(stateless.graph.node) < len(stateful.graph.node)
    assert "new_memory" not in {o for n in stateless.graph.node for o in n.output}


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


def test_plain_files_export_stateless_only(tmp_path):
    path = convert_to_file(em.MLP(), ((1, 20),), tmp_path / "plain.py", plain=True)
    checks = onnx_checks(path)
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert [c.name for c in checks] == [n for n in EXPECTED_CHECKS if "stateless" in n]
    with pytest.raises(ExportError, match="--stateful needs an AiM model"):
        export_file(path, tmp_path / "p.onnx", stateful=True)
    assert not (tmp_path / "p.onnx").exists()


def test_validate_runs_the_onnx_checks(mlp_file):
    from aimgen.validate import validate_file

    names = [c.name for c in validate_file(mlp_file, onnx=True)]
    assert set(EXPECTED_CHECKS) <= set(names)


def test_a_model_that_does_not_export_fails_its_check_and_writes_nothing(mlp_file, tmp_path):
    """Data-dependent control flow cannot be exported: the check fails with the reason and
    ``aimgen export`` refuses without leaving a file."""
    text = mlp_file.read_text()
    anchor = '        Memory in and out have the seed\'s shape; the new memory is the batch mean."""\n'
    assert anchor in text
    broken = tmp_path / "broken.py"
    broken.write_text(text.replace(anchor, anchor + "        if x.sum() > 0:\n            x = x * 2\n"))
    checks = onnx_checks(broken)
    assert [c.ok for c in checks] == [False, False]
    assert "ONNX export (stateless) failed" in checks[0].detail
    assert "broken.py:" in checks[0].detail and "`if x.sum() > 0:`" in checks[0].detail  # where it broke
    with pytest.raises(ValidationError, match="onnx export"):
        from aimgen.validate import validate_file

        validate_file(broken, onnx=True)
    with pytest.raises(ExportError, match="ONNX export .stateless. failed"):
        export_file(broken, tmp_path / "b.onnx")
    assert files_in(tmp_path) == {"broken.py"}


# ----------------------------------------------------------------------------- refusals


def test_a_file_that_is_not_an_aimgen_output_is_refused(tmp_path):
    source = tmp_path / "model.py"
    source.write_text("import torch\n\ndef build_model():\n    return torch.nn.Linear(2, 2)\n")
    with pytest.raises(AimgenError, match="not an aimgen output"):
        export_file(source, tmp_path / "m.onnx")
    with pytest.raises(AimgenError, match="not an aimgen output"):
        onnx_checks(source)
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
    with pytest.raises(WeightsError, match="weights_only=True"):
        export_file(mlp_file, tmp_path / "m.onnx", weights=tmp_path / "module.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="not a state_dict"):
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
    with pytest.raises(ExportError, match=rf"--opset {opset}: .* produces opsets 18 to \d+"):
        export_file(mlp_file, tmp_path / "m.onnx", opset=opset)
    with pytest.raises(ExportError, match="produces opsets 18"):
        onnx_checks(mlp_file, opset=opset)
    assert files_in(tmp_path) == set()


# ----------------------------------------------------------------------------- the CLI


def test_cli_export_stateful(mlp_file, tmp_path):
    proc = run_aimgen("export", mlp_file, "-o", tmp_path / "m.onnx", "--stateful", "--opset", "18")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1, proc.stdout  # one summary line; the exporter's log is hidden
    assert "stateful ONNX, opset 18" in proc.stdout and "memory[" in proc.stdout and "new_memory[" in proc.stdout
    inputs, outputs = signature(tmp_path / "m.onnx")
    assert [n for n, _, _ in inputs] == ["x", "memory"] and [n for n, _, _ in outputs] == ["output", "new_memory"]
    assert files_in(tmp_path) == {"m.onnx"}


@pytest.mark.parametrize("case", ["not aimgen", "bad weights", "unwritable", "opset", "exists"])
def test_cli_export_refuses_bad_input(mlp_file, tmp_path, case):
    args = ["export", mlp_file, "-o", tmp_path / "m.onnx"]
    expect = {"not aimgen": "is not an aimgen output", "bad weights": "does not fit the model: missing (",
              "unwritable": "does not exist", "opset": "produces opsets 18 to", "exists": "exists already"}[case]
    if case == "not aimgen":
        (tmp_path / "model.py").write_text("x = 1\n")
        args[1] = tmp_path / "model.py"
    elif case == "bad weights":
        torch.save({"fc1.weight": torch.zeros(1)}, tmp_path / "w.pt")
        args += ["--weights", tmp_path / "w.pt"]
    elif case == "unwritable":
        args[3] = tmp_path / "missing" / "m.onnx"
    elif case == "opset":
        args += ["--opset", "7"]
    else:
        (tmp_path / "m.onnx").write_text("old")
    before = files_in(tmp_path)
    proc = run_aimgen(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("aimgen export: error: ") and expect in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert files_in(tmp_path) == before
