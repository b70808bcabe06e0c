"""The ONNX part of validation (aimgen.onnx_checks): every export passes onnx.checker and
computes in onnxruntime what the model computes in PyTorch.

Each model is converted once and checked once (``keep_dir`` keeps the two exports, which the
signature tests read). resnet50, vgg16 and mobilenet_v2 at 224x224 with 120 classes are marked
slow; resnet18 at 64x64 keeps a real torchvision model in the default run.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import export_models as em
from aimgen.errors import AimgenError, ExportError
from aimgen.loader import flat_tensors
from aimgen.onnx_checks import ATOL, onnx_checks
from aimgen.progress import Lines
from aimgen.readback import load_generated

from conftest import convert_to_file, files_in, onnx_signature


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


@dataclass
class Checked:
    name: str
    base: nn.Module
    path: Path
    folder: Path
    checks: list
    lines: list[str]


@pytest.fixture(scope="module", params=PARAMS)
def checked(request, tmp_path_factory) -> Checked:
    """Each model converted once, checked once (one trace), exports kept, progress recorded."""
    import io

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
    log = io.StringIO()
    checks = onnx_checks(path, keep_dir=onnx_dir, progress=Lines(log))
    return Checked(name, base, path, onnx_dir, checks, log.getvalue().splitlines())


EXPECTED_CHECKS = [f"{what} ({kind})" for kind in ("stateless", "stateful") for what in
                   ("onnx export", "onnx checker")] + \
    [f"onnxruntime parity ({kind}, batch {b})" for kind in ("stateless", "stateful") for b in (1, 3)] + \
    ["stateful carry (3 calls)", "onnx self-description (stateful)"]


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
    assert "the first call without a memory input" in carry.detail


def test_progress_reports_each_phase_and_check_in_the_order_they_ran(checked: Checked):
    """The stateful graph is exported and checked first, then frozen; each check's line is
    written when it finishes, after the line that announced its phase."""
    lines = checked.lines
    assert lines[0].startswith("... ONNX export (stateful graph, traced once")
    assert [ln for ln in lines if not ln.startswith("...")] == [c.line() for c in checked.checks]
    assert [c.name for c in checked.checks][:3] == ["onnx export (stateful)", "onnx checker (stateful)",
                                                    "onnx self-description (stateful)"]
    assert lines.index("... onnxruntime vs PyTorch (stateful graph)") < \
        next(i for i, ln in enumerate(lines) if "parity (stateful, batch 1)" in ln)


def test_the_one_export_time_is_reported_once(checked: Checked):
    """One trace makes both graphs: its seconds are reported by the stateful export's check;
    the stateless one reports only the freezing."""
    stateful, stateless = (next(c for c in checked.checks if c.name == f"onnx export ({k})")
                           for k in ("stateful", "stateless"))
    assert stateful.detail.startswith("traced and exported in ") and not stateful.numbers["derived"]
    assert stateless.detail.startswith("made from the stateful export by freezing the memory in ")
    assert stateless.numbers["derived"] and stateless.numbers["seconds"] < stateful.numbers["seconds"]


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
    inputs, outputs = onnx_signature(checked.folder / "stateless.onnx")
    base_inputs, base_outputs = _base_signature(checked)
    assert inputs == base_inputs
    assert [(dims, dtype) for _, dims, dtype in outputs] == base_outputs
    assert [n for n, _, _ in outputs] == ["output"] + [f"output_{i}" for i in range(1, len(outputs))]


def test_stateful_graph_adds_exactly_memory_in_and_out(checked: Checked):
    inputs, outputs = onnx_signature(checked.folder / "stateless.onnx")
    s_inputs, s_outputs = onnx_signature(checked.folder / "stateful.onnx")
    seed = list(load_generated(checked.path).meta["memory_shape"])
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
    np.testing.assert_array_equal(memory, gen.initial_memory().numpy())
    assert len(stateless.graph.node) < len(stateful.graph.node)
    assert "new_memory" not in {o for n in stateless.graph.node for o in n.output}


def test_plain_files_get_the_stateless_checks_only(tmp_path):
    path = convert_to_file(em.MLP(), ((1, 20),), tmp_path / "plain.py", plain=True)
    checks = onnx_checks(path)
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert sorted(c.name for c in checks) == sorted(n for n in EXPECTED_CHECKS if "stateless" in n)


def test_a_model_that_does_not_export_fails_its_checks_with_the_line(mlp_file, tmp_path):
    """Data-dependent control flow cannot be exported: one failed trace fails both graphs,
    each check saying where it broke."""
    text = mlp_file.read_text()
    anchor = '        Memory in and out have the seed\'s shape; the new memory is the batch mean."""\n'
    assert anchor in text
    broken = tmp_path / "broken.py"
    broken.write_text(text.replace(anchor, anchor + "        if x.sum() > 0:\n            x = x * 2\n"))
    checks = onnx_checks(broken)
    assert [(c.name, c.ok) for c in checks] == [("onnx export (stateful)", False), ("onnx export (stateless)", False)]
    assert "ONNX export (stateless) failed" in checks[1].detail
    assert "broken.py:" in checks[0].detail and "`if x.sum() > 0:`" in checks[0].detail  # where it broke


def test_bad_input_raises_instead_of_failing_a_check(mlp_file, tmp_path):
    source = tmp_path / "model.py"
    source.write_text("import torch\n\ndef build_model():\n    return torch.nn.Linear(2, 2)\n")
    with pytest.raises(AimgenError, match="not an aimgen output"):
        onnx_checks(source)
    with pytest.raises(ExportError, match="produces opsets 18"):
        onnx_checks(mlp_file, opset=7)
    assert files_in(tmp_path) == {"model.py"}


def test_rows_that_only_come_in_another_order_match_and_are_named():
    """RT-DETR ranks 300 detections with top-k; on random weights two had the same score, and
    onnxruntime put them in the other order: the carry check failed by 0.375 and convert called
    it a bug in aimgen. Rows that are the same rows reordered match; any other difference does not."""
    from aimgen.onnx_checks import compare

    ref = torch.tensor([[[0.5, 0.2, 0.04], [0.8, 0.6, 0.04], [0.1, 0.1, 0.03]]])
    swapped = ref[:, [1, 0, 2]].numpy()
    ok, worst, why, note = compare([swapped], [ref])
    assert ok and worst == 0 and not why
    assert note == "output 0: rows 0, 1 of item 0 in another order (equal values ranked either way)"
    changed = swapped.copy()
    changed[0, 0, 0] += 0.01   # reordered, and one value off: a real difference
    ok, worst, _, note = compare([changed], [ref])
    assert not ok and worst > 0.3 and note == ""
    ok, _, _, _ = compare([np.zeros(3, np.float32)], [torch.ones(3)])   # one axis: nothing to reorder
    assert not ok
