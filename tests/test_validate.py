"""Validation of a generated file (aimgen.validate): the static and fresh-process checks, the
weights it is given, and progress as it happens."""
from __future__ import annotations

import io
import shutil

import pytest
import torch

from aimgen.errors import ValidationError, WeightsError
from aimgen.progress import Lines
from aimgen.readback import load_generated
from aimgen.validate import validate_file

from conftest import files_in


def test_checks_are_reported_as_they_finish(mlp_file, tmp_path):
    log = io.StringIO()
    checks = validate_file(mlp_file, progress=Lines(log))
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("[ok] imports") and lines[1].startswith("... fresh process")
    assert [ln for ln in lines if ln.startswith("[")] == [c.line() for c in checks]
    count = next(c for c in checks if c.name == "parameter count")
    assert count.numbers["counted"] == count.numbers["planned"] == load_generated(mlp_file).meta["aim_params"]


def test_the_fresh_process_loads_the_weights_it_is_given(mlp_file, tmp_path):
    path = tmp_path / "m.py"
    shutil.copy(mlp_file, path)
    state = load_generated(path).model.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")  # unwrapped for it
    assert validate_file(path, weights=tmp_path / "w.pt")
    bad = dict(state)
    bad["head.weight"] = torch.zeros(2, 2)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match=r"bad.pt does not fit the model: shape mismatch \(1\): head.weight \(2, 2\)"):
        validate_file(path, weights=tmp_path / "bad.pt")
    assert files_in(tmp_path) == {"m.py", "w.pt", "bad.pt"}


def test_a_broken_file_fails_in_the_fresh_process_with_its_error(mlp_file, tmp_path):
    path = tmp_path / "m.py"
    path.write_text(mlp_file.read_text().replace("def build_model()", "def build_model():\n    raise RuntimeError('no')\n"
                                                 "\n\ndef _unused()"))
    with pytest.raises(ValidationError, match="failed in a fresh Python process: RuntimeError: no") as info:
        validate_file(path)
    # the process's own traceback rides along as the cause, which --debug prints
    cause = str(info.value.__cause__)
    assert "Traceback (most recent call last)" in cause and "raise RuntimeError('no')" in cause


def test_the_fresh_process_computes_what_the_onnx_checks_compare_with(mlp_file, tmp_path):
    """Before it trains, the fresh process saves PyTorch's outputs for the ONNX checks (stateful,
    at batch 1 and 3, and the carry's three calls); they are what this process computes."""
    from aimgen.export import Stateful
    from aimgen.onnx_checks import read_references
    from aimgen.validate import finish_fresh, start_fresh

    saved = tmp_path / "references.pt"
    res = finish_fresh(start_fresh(mlp_file, None, saved))
    assert res["loss_finite"] and res["eval_deterministic"]
    refs = read_references(saved)
    gen = load_generated(mlp_file)
    assert sorted(k for k in refs if k != "carry") == [1, 3] and len(refs["carry"]) == 3
    memory = gen.initial_memory()
    with torch.no_grad():
        for batch in (1, 3):
            ours = Stateful(gen.model)(*gen.example_inputs(batch), memory)
            assert len(ours) == len(refs[batch])
            assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, refs[batch]))
        more = gen.example_inputs(9)
        second = Stateful(gen.model)(more[0][3:6], refs["carry"][0][-1])
    assert torch.equal(refs["carry"][0][0], refs[3][0])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(second, refs["carry"][1]))
    assert not torch.allclose(refs["carry"][1][-1], refs["carry"][0][-1])  # the memory moved


def test_the_onnx_checks_compare_with_the_references_they_are_given(mlp_file, tmp_path):
    from aimgen.onnx_checks import onnx_checks, read_references
    from aimgen.validate import finish_fresh, start_fresh

    saved = tmp_path / "references.pt"
    finish_fresh(start_fresh(mlp_file, None, saved))
    refs = read_references(saved)
    checks = onnx_checks(mlp_file, random_weights=True, references=lambda: refs)
    assert all(c.ok for c in checks), [c.line() for c in checks]
    wrong = {k: v for k, v in refs.items()}
    wrong[3] = (wrong[3][0] + 1, *wrong[3][1:])
    checks = {c.name: c for c in onnx_checks(mlp_file, random_weights=True, references=lambda: wrong)}
    assert not checks["onnxruntime parity (stateful, batch 3)"].ok
    assert not checks["onnxruntime parity (stateless, batch 3)"].ok
    assert checks["onnxruntime parity (stateful, batch 1)"].ok
    assert "max abs difference 1.00e+00" in checks["onnxruntime parity (stateful, batch 3)"].detail
