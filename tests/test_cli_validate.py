"""``aimgen validate`` from the command line: which weights it uses (and says), its checks in
order, and refusals."""
from __future__ import annotations

import shutil

import torch

from aimgen.readback import load_generated

from conftest import files_in, run_cli


def _copy(mlp_file, tmp_path):
    path = tmp_path / "m_aim.py"
    shutil.copy(mlp_file, path)
    return path


def test_validate_uses_the_weights_beside_the_file_and_says_so(mlp_file, tmp_path, cli):
    path = _copy(mlp_file, tmp_path)
    code, out, err = cli("validate", path, "--no-onnx")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("weights: random initialisation (seeded): no weights file found")
    assert lines[-1] == f"{path}: valid (6 checks)"
    assert [ln.split(":")[0] for ln in lines if ln.startswith("[")] == [
        "[ok] imports", "[ok] fresh import", "[ok] parameter count", "[ok] forward/backward", "[ok] eval determinism",
        "[ok] carry"]
    state = load_generated(path).model.state_dict()
    state.pop("head.bias")  # a weights file that does not fit proves it is read
    torch.save(state, tmp_path / "m_aim.pt")
    code, out, err = cli("validate", path, "--no-onnx")
    assert code == 2 and out.splitlines()[0].startswith(f"weights: {tmp_path / 'm_aim.pt'} (found beside")
    assert f"{tmp_path / 'm_aim.pt'} does not fit the model: missing (1): head.bias." in err
    code, out, err = cli("validate", path, "--no-onnx", "--random-weights")
    assert code == 0 and out.splitlines()[0] == "weights: random initialisation, seeded (--random-weights)"


def test_two_weights_files_beside_are_ambiguous(mlp_file, tmp_path, cli):
    path = _copy(mlp_file, tmp_path)
    state = load_generated(path).model.state_dict()
    torch.save(state, tmp_path / "m_aim.pt")
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "m_aim.safetensors"))
    code, _, err = cli("validate", path, "--no-onnx")
    assert code == 2 and "two weights files lie beside it" in err and "--weights PATH" in err
    code, out, err = cli("validate", path, "--no-onnx", "--weights", tmp_path / "m_aim.safetensors")
    assert code == 0, err
    assert out.splitlines()[0] == f"weights: {tmp_path / 'm_aim.safetensors'}"


def test_validate_with_onnx_checks_everything_and_says_the_long_part(mlp_file, tmp_path):
    path = _copy(mlp_file, tmp_path)
    proc = run_cli("validate", path)
    assert proc.returncode == 0, proc.stderr
    assert "the long part (--no-onnx skips it)" in proc.stdout
    assert "[ok] stateful carry (3 calls)" in proc.stdout and proc.stdout.rstrip().endswith("valid (16 checks)")
    assert files_in(tmp_path) == {"m_aim.py"}


def test_validate_refuses_a_file_that_is_not_aimgens(tmp_path, cli):
    (tmp_path / "x.py").write_text("x = 1\n")
    code, out, err = cli("validate", tmp_path / "x.py")
    assert code == 2 and out == "" and "is not an aimgen output" in err
