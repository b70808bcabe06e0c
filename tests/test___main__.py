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


def test_the_command_leaves_what_it_made_out_of_the_last_garbage_collection(tmp_path):
    """The console script and python -m aimgen run aimgen.cli.command: main's exit code, with the
    objects frozen (gc.freeze) so that the interpreter's exit does not walk them all."""
    import subprocess
    import sys

    argv = ["aimgen", "convert", str(tmp_path / "nope.py"), "--input-shape", "1,3,8,8", "-o", str(tmp_path / "o.py")]
    code = (f"import gc, sys; import aimgen.cli; sys.argv = {argv!r}; "
            "before = gc.get_freeze_count(); code = aimgen.cli.command(); "
            "print(code, before, gc.get_freeze_count() > before)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "2 0 True" and "nope.py" in done.stderr
    from importlib.metadata import entry_points
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "aimgen"]
    assert script.value == "aimgen.cli:command"
