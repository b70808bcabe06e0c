"""aimgen convert from the command line: the happy path end to end, and every kind of bad
input refused with one paragraph, a non-zero exit code and no file left behind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLES, leftovers, run_cli, write_model

TINY = EXAMPLES / "tiny_cnn.py"


def test_convert_writes_valid_source_and_report(tmp_path):
    out, rep = tmp_path / "tiny_aim.py", tmp_path / "report.json"
    proc = run_cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", out, "--report-json", rep, "--no-onnx")
    assert proc.returncode == 0, proc.stderr
    assert "tapped" in proc.stdout and "base params: 5,418 || aim params:" in proc.stdout
    assert "[ok] parameter count" in proc.stdout and "[ok] carry" in proc.stdout
    data = json.loads(rep.read_text())
    for key in ("base_params", "aim_params", "delta", "memory_shape", "taps", "untapped", "update_blocks"):
        assert key in data
    assert data["aim_params"] - data["base_params"] == sum(data["delta"][k] for k in ("memory", "taps", "updates"))
    assert [t["layer"] for t in data["taps"]] == ["conv1", "conv2", "fc"]
    text = out.read_text()
    assert "def build_model()" in text and "EXAMPLE_INPUT_SHAPES = [(1, 3, 32, 32)]" in text
    assert leftovers(tmp_path, {"tiny_aim.py", "report.json"}) == []


def test_python_dash_m_matches_the_command(tmp_path):
    proc = run_cli("--help")
    assert proc.returncode == 0 and "convert" in proc.stdout and "export" in proc.stdout


BAD_CASES = {
    "missing file": ("nope.py", ["--input-shape", "1,3,32,32"], "no such file"),
    "syntax error": ("SYNTAX", ["--input-shape", "1,3,32,32"], ":3: syntax error"),
    "no candidate": ("EMPTY", ["--input-shape", "1,3,32,32"], "found no model"),
    "several candidates": ("TWO", ["--input-shape", "1,3,32,32"], "several candidate models"),
    "constructor needs arguments": ("ARGS", ["--input-shape", "1,3,32,32"], "needs arguments (width)"),
    "wrong input shape": ("TINY", ["--input-shape", "1,3,32"], "failed at layer conv1 (Conv2d)"),
    "bad shape text": ("TINY", ["--input-shape", "1,x,3"], "is not a shape"),
    "no input shape": ("TINY", [], "no --input-shape given"),
    "pattern matches nothing": ("TINY", ["--input-shape", "1,3,32,32", "--layers", "block9.*"],
                                "--layers 'block9.*' matches no weight layer"),
    "skip matches nothing": ("TINY", ["--input-shape", "1,3,32,32", "--skip", "Conv3d"],
                             "--skip 'Conv3d' matches no weight layer"),
    "budget too small": ("TINY", ["--input-shape", "1,3,32,32", "--budget", "0.001"],
                         "over --budget 0.001"),
}
SOURCES = {
    "SYNTAX": "import torch\nclass Net(torch.nn.Module):\n    def forward(self, x) return x\n",
    "EMPTY": "import torch\nx = 3\n",
    "TWO": "from torch import nn\nclass A(nn.Module):\n    pass\nclass B(nn.Module):\n    pass\n",
    "ARGS": "from torch import nn\nclass Net(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
            "        self.fc = nn.Linear(width, 2)\n    def forward(self, x):\n        return self.fc(x)\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_refused_cleanly(case, tmp_path, cli):
    which, extra, expected = BAD_CASES[case]
    if which == "TINY":
        target = TINY
    elif which in SOURCES:
        target = write_model(tmp_path, SOURCES[which])
    else:
        target = tmp_path / which
    before = set(p.name for p in tmp_path.iterdir())
    code, out, err = cli("convert", target, *extra, "-o", tmp_path / "out.py", "--no-onnx")
    assert code != 0
    assert expected in err, err
    assert "Traceback" not in err and err.count("\n") == 1  # one paragraph
    assert leftovers(tmp_path, before) == []


def test_existing_output_is_refused_without_force(tmp_path, cli):
    out = tmp_path / "out.py"
    out.write_text("# mine\n")
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", out, "--no-onnx")
    assert code != 0 and "exists already" in err and "--force" in err
    assert out.read_text() == "# mine\n"
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", out, "--no-onnx", "--force", "-q")
    assert code == 0, err
    assert "class AimTinyCNN" in out.read_text()


def test_no_traceback_unless_debug(tmp_path):
    bad = write_model(tmp_path, SOURCES["SYNTAX"])
    proc = run_cli("convert", bad, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("--debug", "convert", bad, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_name_may_be_a_builder_function_or_an_instance(tmp_path, cli):
    src = ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
           "        self.fc = nn.Linear(n, 3)\n    def forward(self, x):\n        return self.fc(x)\n"
           "def build_model():\n    return Net(8)\ninstance = Net(8)\n")
    path = write_model(tmp_path, src)
    for name in ("build_model", "instance"):
        code, out, err = cli("convert", f"{path}:{name}", "--input-shape", "2,8", "-o", tmp_path / f"{name}.py",
                             "--no-onnx", "-q")
        assert code == 0, err
        assert "Linear(8 + " in (tmp_path / f"{name}.py").read_text()


def test_an_output_folder_nobody_can_write_is_a_clear_error(tmp_path, cli):
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", "/sys/aimgen_out.py", "--no-onnx")
    assert code == 2 and "internal error" not in err
    assert "/sys/aimgen_out.py: cannot write there" in err and "writable location" in err
    assert not list(Path("/sys").glob("*aimgen_out*"))
