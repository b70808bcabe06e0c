"""``Conversion.write()`` (aimgen.api): validates like ``aimgen convert`` (ONNX included unless
``onnx=False``), returns what it checked, and speaks in API arguments."""
from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
import torch

import aimgen
from aimgen.errors import AimgenError
from aimgen.progress import Lines

from conftest import EXAMPLES, ROOT, files_in

sys.path.insert(0, str(EXAMPLES))
from tiny_cnn import TinyCNN  # noqa: E402


def test_write_validates_with_onnx_and_returns_the_checks(tmp_path):
    base = TinyCNN().eval()
    result = aimgen.convert(base, torch.randn(1, 3, 32, 32), base_weights=base.state_dict())
    log = io.StringIO()
    written = result.write(tmp_path / "t.py", progress=Lines(log))
    assert written.files == [tmp_path / "t.py", tmp_path / "t.pt"] and files_in(tmp_path) == {"t.py", "t.pt"}
    names = [c.name for c in written.checks]
    assert names[0] == "matches the base model" and "imports" in names and "parameter count" in names
    assert {"onnx export (stateful)", "onnxruntime parity (stateless, batch 3)", "stateful carry (3 calls)"} <= set(names)
    assert all(c.ok for c in written.checks) and result.validation == written.checks
    assert [ln for ln in log.getvalue().splitlines() if ln.startswith("[")] == \
        [written.checks[0].line(), *[c.line() for c in written.checks[1:2]],
         *[c.line() for c in written.checks if c.name.startswith(("onnx", "stateful"))],
         *[c.line() for c in written.checks[2:] if not c.name.startswith(("onnx", "stateful"))]]
    quick = result.write(tmp_path / "q.py", onnx=False)
    assert not any(c.name.startswith("onnx") for c in quick.checks)


def test_errors_name_api_arguments_not_flags(tmp_path):
    result = aimgen.convert(TinyCNN(), torch.randn(1, 3, 32, 32))
    result.write(tmp_path / "t.py", onnx=False)
    with pytest.raises(AimgenError) as err:
        result.write(tmp_path / "t.py", onnx=False)
    assert "exists already" in str(err.value) and "`force=True`" in str(err.value)
    assert "--" not in str(err.value)
    assert result.write(tmp_path / "t.py", force=True, validate=False).files == [tmp_path / "t.py"]
    with pytest.raises(AimgenError, match="`memory_size=0`|memory_size=0") as err:
        aimgen.convert(TinyCNN(), torch.randn(1, 3, 32, 32), memory_size=0)
    assert "--memory-size" not in str(err.value)


@pytest.mark.slow
def test_the_readme_snippet_runs_twice(tmp_path):
    """As a new user would: the README's Python API snippet, run twice in the same folder."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    for run in range(2):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=900)
        assert proc.returncode == 0, (run, proc.stderr)
        assert "Traceback" not in proc.stderr and "[ok] stateful carry (3 calls)" in proc.stdout
    assert {"resnet18_aim.py", "resnet18_aim.pt"} <= files_in(tmp_path)
