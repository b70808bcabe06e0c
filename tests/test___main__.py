"""aimgen/__main__.py: ``python -m aimgen`` is the ``aimgen`` command, exit codes included."""
from __future__ import annotations

import aimgen
from conftest import run_cli


def test_python_m_aimgen_prints_the_version_and_exits_zero():
    done = run_cli("--version")
    assert done.returncode == 0 and aimgen.__version__ in done.stdout


def test_python_m_aimgen_refuses_a_missing_file_with_exit_code_2_and_no_traceback(tmp_path):
    done = run_cli("convert", tmp_path / "nope.py", "--input-shape", "1,3,8,8", "-o", tmp_path / "out.py")
    assert done.returncode == 2 and "nope.py" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.py").exists()
