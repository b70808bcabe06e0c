"""The ONNX checks in a worker process started ahead (aimgen.onnx_worker): the same checks as in
this process, reported here as they happen, and this process's own run wherever the worker
fails."""
from __future__ import annotations

import io

import pytest

from aimgen.errors import AimgenError
from aimgen.onnx_checks import onnx_checks
from aimgen.onnx_worker import OnnxWorker
from aimgen.progress import Lines, Progress


class Recorded(Progress):
    def __init__(self):
        self.events = []

    def start(self, key, text):
        self.events.append(("start", key))

    def stop(self, key):
        self.events.append(("stop", key))

    def check(self, check):
        self.events.append(("check", check.name))


def _same(a, b):
    return [(c.name, c.ok, c.possible) for c in a] == [(c.name, c.ok, c.possible) for c in b]


def test_the_worker_runs_the_checks_and_reports_each_as_it_happens(mlp_file):
    asked = []
    progress = Recorded()
    with OnnxWorker.start() as worker:
        pid = worker.proc.pid
        checks = worker.run(mlp_file, weights=None, random_weights=True, opset=None, progress=progress,
                            references=lambda: asked.append(1))
        assert worker.proc is None  # used up
    here = onnx_checks(mlp_file, random_weights=True)
    assert _same(checks, here) and all(c.ok for c in checks), [c.line() for c in checks]
    assert [e[1] for e in progress.events if e[0] == "check"] == [c.name for c in checks]
    assert progress.events[0] == ("start", "onnx-export")
    assert asked == [1]   # asked once for the references; None: the worker computed its own
    for ours, theirs in zip(checks, here):
        if "max_abs_diff" in ours.numbers:
            assert abs(ours.numbers["max_abs_diff"] - theirs.numbers["max_abs_diff"]) < 1e-6
    import os
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)   # ended and reaped


def test_a_worker_that_ended_early_leaves_the_checks_to_this_process(mlp_file):
    with OnnxWorker.start() as worker:
        worker.proc.kill()
        worker.proc.wait()
        log = io.StringIO()
        checks = worker.run(mlp_file, weights=None, random_weights=True, opset=None, progress=Lines(log),
                            references=lambda: None)
    assert all(c.ok for c in checks) and len(checks) == 10
    assert [ln for ln in log.getvalue().splitlines() if ln.startswith("[")] == [c.line() for c in checks]


def test_an_error_in_the_worker_is_raised_here_as_the_checks_raise_it(tmp_path):
    source = tmp_path / "model.py"
    source.write_text("import torch\n\ndef build_model():\n    return torch.nn.Linear(2, 2)\n")
    with OnnxWorker.start() as worker:
        with pytest.raises(AimgenError, match="not an aimgen output"):
            worker.run(source, weights=None, random_weights=True, opset=None, progress=Progress(),
                       references=lambda: None)
        assert worker.proc is None


def test_a_worker_never_used_is_ended_by_close():
    worker = OnnxWorker.start()
    proc = worker.proc
    worker.close()
    assert proc.returncode is not None and worker.proc is None
    worker.close()  # twice is harmless


def test_without_an_interpreter_to_start_the_checks_run_here(mlp_file, monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    monkeypatch.setattr(sys, "path", [*sys.path, tmp_path])   # a Path in sys.path is no trouble either
    with OnnxWorker.start() as worker:
        assert worker.proc is None
        checks = worker.run(mlp_file, weights=None, random_weights=True, opset=None, progress=Progress(),
                            references=lambda: None)
    assert all(c.ok for c in checks) and len(checks) == 10
