"""Reading a generated file back (aimgen.readback): metadata without running the file, the
weights that belong to it, its model and its own example inputs."""
from __future__ import annotations

import shutil

import pytest
import torch

from aimgen.errors import GeneratedFileError, WeightsError
from aimgen.readback import choose_weights, import_generated, load_generated, read_metadata

from conftest import ROOT


def _copy(src, tmp_path, name="m_aim.py"):
    path = tmp_path / name
    shutil.copy(src, path)
    return path


def test_metadata_is_read_without_running_the_file(tmp_path):
    text = (ROOT / "generated" / "tiny_cnn_aim.py").read_text()
    path = tmp_path / "t.py"
    path.write_text("raise SystemExit('ran')\n" + text)
    meta = read_metadata(path)
    assert meta["kind"] == "aim" and meta["memory"] == "memory" and meta["format"] == 1


def test_metadata_is_read_leniently_but_only_from_aimgen_files(tmp_path):
    text = (ROOT / "generated" / "tiny_cnn_aim.py").read_text()
    newer = tmp_path / "newer.py"
    assert "    'format': 1, 'kind': 'aim'," in text
    newer.write_text(text.replace("    'format': 1, 'kind': 'aim',", "    'format': 2, 'blocks': ['b1'], 'kind': 'aim',"))
    assert read_metadata(newer)["format"] == 2 and read_metadata(newer)["blocks"] == ["b1"]
    for bad in ("AIMGEN = {'format': 'x', 'kind': 'aim'}\n", "AIMGEN = {'format': 1, 'kind': 'other'}\n", "x = 1\n"):
        (tmp_path / "bad.py").write_text(bad)
        with pytest.raises(GeneratedFileError, match="not an aimgen output"):
            read_metadata(tmp_path / "bad.py")
    (tmp_path / "broken.py").write_text("def (:\n")
    with pytest.raises(GeneratedFileError, match=r"broken.py:1: does not parse"):
        read_metadata(tmp_path / "broken.py")
    with pytest.raises(GeneratedFileError, match="generated file .*missing.py: no such file"):
        read_metadata(tmp_path / "missing.py")


def test_which_weights(tmp_path, mlp_file):
    path = _copy(mlp_file, tmp_path)
    none = choose_weights(path)
    assert none.path is None and none.origin == "none found"
    assert none.line() == (f"weights: random initialisation (seeded): no weights file found ({tmp_path / 'm_aim.pt'} "
                           f"or {tmp_path / 'm_aim.safetensors'})")
    torch.save({}, tmp_path / "m_aim.pt")
    beside = choose_weights(path)
    assert beside.path == tmp_path / "m_aim.pt" and "found beside" in beside.line()
    assert choose_weights(path, random_weights=True).path is None
    torch.save({}, tmp_path / "other.pt")
    assert choose_weights(path, tmp_path / "other.pt").line() == f"weights: {tmp_path / 'other.pt'}"
    with pytest.raises(WeightsError, match="ask for different weights"):
        choose_weights(path, tmp_path / "other.pt", random_weights=True)
    with pytest.raises(WeightsError, match="no such file"):
        choose_weights(path, tmp_path / "nope.pt")
    (tmp_path / "m_aim.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match="two weights files lie beside it"):
        choose_weights(path)


def test_the_model_gets_the_weights_beside_it(tmp_path, mlp_file):
    path = _copy(mlp_file, tmp_path)
    random = load_generated(path)
    assert random.weights.origin == "none found" and not random.model.training
    again = load_generated(path)  # seeded: the same random weights every time
    assert all(torch.equal(a, b) for a, b in zip(random.model.state_dict().values(), again.model.state_dict().values()))
    state = {k: v + 1 if v.is_floating_point() else v for k, v in random.model.state_dict().items()}
    torch.save({"model": state}, tmp_path / "m_aim.pt")  # as a training loop saves it
    trained = load_generated(path)
    assert trained.weights.origin == "beside"
    assert torch.equal(trained.model.state_dict()["head.weight"], state["head.weight"])
    assert torch.equal(load_generated(path, random_weights=True).model.state_dict()["head.weight"],
                       random.model.state_dict()["head.weight"])


def test_example_inputs_are_the_files_own(tmp_path, mlp_file):
    gen = load_generated(mlp_file)
    for batch in (1, 4):
        (x,) = gen.example_inputs(batch)
        assert torch.equal(x, gen.module.example_inputs(batch)[0]) and x.shape == (batch, 20)
    assert gen.initial_memory().shape == tuple(gen.meta["memory_shape"])


def test_a_file_without_example_inputs_is_from_another_version(tmp_path, mlp_file):
    text = mlp_file.read_text()
    path = tmp_path / "old.py"
    path.write_text(text.replace("def example_inputs(", "def _old_example_inputs("))
    with pytest.raises(GeneratedFileError, match=r"has no example_inputs\(\) function.*Convert the model again"):
        import_generated(path)
