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
