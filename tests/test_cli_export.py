"""``aimgen export`` from the command line: the weights it uses and says, its one summary line,
and refusals with one paragraph and nothing written."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from aimgen.onnx_checks import ATOL, RTOL
from aimgen.readback import load_generated

from conftest import files_in, onnx_signature as signature, run_cli as run_aimgen


def _ort(path: Path, feeds: dict) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_cli_export_stateful(mlp_file, tmp_path):
    proc = run_aimgen("export", mlp_file, "-o", tmp_path / "m.onnx", "--stateful", "--opset", "18")
    assert proc.returncode == 0, proc.stderr
    # which weights, the phase, one summary line; the exporter's own log is hidden
    assert proc.stdout.splitlines() == [
        f"weights: random initialisation (seeded): no weights file found ({mlp_file.with_suffix('.pt')} or "
        f"{mlp_file.with_suffix('.safetensors')})",
        "... ONNX export (stateful): tracing with torch.export, seconds to minutes",
        proc.stdout.splitlines()[-1]], proc.stdout
    summary = proc.stdout.splitlines()[-1]
    assert "stateful ONNX, opset 18" in summary and "new_memory[" in summary
    assert "memory[1] (optional: defaults to the initial memory)" in summary
    assert len(re.findall(r"\d s\b", summary)) == 1 and "exported in " in summary  # one time, the export's
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
    assert "Traceback" not in proc.stderr and "wrote" not in proc.stdout
    assert proc.stdout == "" or case == "bad weights"  # refused before anything is said, or after the weights line
    assert files_in(tmp_path) == before


def _perturbed_weights(path: Path, seed: int = 1) -> dict:
    state = load_generated(path, random_weights=True).model.state_dict()
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in state.items()}


def test_export_uses_the_weights_beside_the_file_and_says_so(mlp_file, tmp_path):
    """`aimgen convert --weights` writes OUT.pt beside OUT.py; export and validate must use it
    (they silently exported random weights before), and say which weights they used."""
    path = tmp_path / "m_aim.py"
    path.write_text(mlp_file.read_text())
    trained = _perturbed_weights(path)
    torch.save(trained, tmp_path / "m_aim.pt")
    proc = run_aimgen("export", path, "-o", tmp_path / "beside.onnx")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (f"weights: {tmp_path / 'm_aim.pt'} (found beside the generated file; "
                                           "--random-weights to ignore it)")
    proc = run_aimgen("export", path, "-o", tmp_path / "random.onnx", "--random-weights")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "weights: random initialisation, seeded (--random-weights)"
    model = load_generated(path, random_weights=True).model
    x = torch.randn(4, 20)
    with torch.no_grad():
        random_out = model(x).numpy()
        model.load_state_dict(trained)
        trained_out = model(x).numpy()
    beside = _ort(tmp_path / "beside.onnx", {"x": x.numpy()})[0]
    np.testing.assert_allclose(beside, trained_out, atol=ATOL, rtol=RTOL)
    assert np.abs(beside - random_out).max() > 0.1
    np.testing.assert_allclose(_ort(tmp_path / "random.onnx", {"x": x.numpy()})[0], random_out, atol=ATOL, rtol=RTOL)
    proc = run_aimgen("export", path, "-o", tmp_path / "x.onnx", "--random-weights", "--weights", tmp_path / "m_aim.pt")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
