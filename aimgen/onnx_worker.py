"""The ONNX checks in a process of their own, started ahead of the conversion.

``aimgen convert`` spends most of its time in the ONNX part of validation, and the first export
in a process pays for importing the exporter and filling its caches (about 3 s on 2 cores,
measured on resnet50: 1.5 s of imports, and a first export 1.2 s slower than the next). A
worker started when the command starts pays that on the other core while this process loads,
traces and writes the model; when the file is ready it runs ``onnx_checks`` on it, reporting
each phase and check back as it happens. Nothing the user sees changes: the same checks, in the
same order, through the same ``Progress``.

Any trouble with the worker itself (it could not start, ended early, or raised) falls back to
running the checks in this process, as they ran before, so a failure reads as it always did
(where the worker ended midway, the checks it had reported are then reported again).

Messages are pickled frames: the request and the references' answer go to the worker on its
stdin, its reports come back on a pipe of their own (what it prints goes to a temporary file,
so nothing a library prints can break a frame).
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from .progress import Check, Progress

#: The worker's own code: the parent's sys.path (so it imports what the parent imports, and no
#: module of the current folder), then ``main``.
_BOOT = "import json, sys; sys.path[:] = json.loads(sys.argv[1]); from aimgen.onnx_worker import main; main()"


class OnnxWorker:
    """A started worker; ``run`` hands it one file, ``close`` ends it (also when never used)."""

    def __init__(self, proc: subprocess.Popen | None, reports: Any, log: Any):
        self.proc, self.reports, self.log = proc, reports, log

    @classmethod
    def start(cls) -> "OnnxWorker":
        """Start the worker (it imports and warms up at once); an unstarted one if that fails."""
        log = tempfile.TemporaryFile()
        read, write = os.pipe()
        try:
            proc = subprocess.Popen([sys.executable, "-c", _BOOT, json.dumps([str(p) for p in sys.path]), str(write)],
                                    stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write,))
        except (OSError, ValueError):  # no interpreter to start (an embedded Python): run here
            os.close(read)
            os.close(write)
            log.close()
            return cls.here()
        os.close(write)
        return cls(proc, os.fdopen(read, "rb"), log)

    @classmethod
    def here(cls) -> "OnnxWorker":
        """No process: ``run`` runs the checks in this one."""
        return cls(None, None, None)

    def run(self, path: Path, *, weights: Path | None, random_weights: bool, opset: int | None,
            progress: Progress, references: Callable[[], Path | None]) -> list[Check]:
        """``onnx_checks`` of ``path`` in the worker; ``references`` is asked, when the worker
        needs PyTorch's outputs, for the file holding them (None: the worker computes them)."""
        from .onnx_checks import onnx_checks, references_from

        def here() -> list[Check]:
            return onnx_checks(path, weights=weights, random_weights=random_weights, opset=opset,
                               progress=progress, references=references_from(references))

        if self.proc is None:
            return here()
        request = {"path": str(path), "weights": str(weights) if weights else None,
                   "random_weights": random_weights, "opset": opset}
        try:
            self._send(request)
            while True:
                kind, *rest = pickle.load(self.reports)
                if kind == "references":
                    found = references()
                    self._send(str(found) if found is not None else None)
                elif kind == "done":
                    return rest[0]
                elif kind == "failed":
                    break   # the worker raised: the same checks here raise as they would have
                else:
                    getattr(progress, kind)(*rest)
        except (OSError, EOFError, pickle.UnpicklingError):
            pass  # the worker ended early (killed, out of memory): run the checks here
        finally:
            self.close()
        return here()

    def _send(self, message: Any) -> None:
        pickle.dump(message, self.proc.stdin)
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, self.reports, self.log):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self) -> "OnnxWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Relay(Progress):
    """The worker's Progress: every report goes to the parent as it happens."""

    def __init__(self, out: Any):
        self.out = out

    def send(self, *message: Any) -> None:
        pickle.dump(message, self.out)
        self.out.flush()

    def start(self, key: str, text: str) -> None:
        self.send("start", key, text)

    def stop(self, key: str) -> None:
        self.send("stop", key)

    def check(self, check: Check) -> None:
        self.send("check", check)

    def note(self, text: str) -> None:
        self.send("note", text)


def _warm_up() -> None:
    """One export of a tiny model: the first export in a process fills the exporter's caches."""
    import contextlib
    import io
    import warnings

    import torch

    class Tiny(torch.nn.Module):   # a convolution, a norm, an activation and a product
        def __init__(self):
            super().__init__()
            self.kernel = torch.nn.Parameter(torch.randn(4, 3, 3, 3))
            self.norm = torch.nn.BatchNorm2d(4)
            self.head = torch.nn.Parameter(torch.randn(144, 2))

        def forward(self, x):
            return torch.relu(self.norm(torch.nn.functional.conv2d(x, self.kernel))).flatten(1) @ self.head

    x = torch.randn(2, 3, 8, 8)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tiny().eval(), (x,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))


def main() -> None:
    """The worker: import and warm up, then run the one request on stdin."""
    out = os.fdopen(int(sys.argv[2]), "wb")
    relay = _Relay(out)
    from .onnx_checks import onnx_checks, references_from

    try:
        _warm_up()
    except Exception:  # noqa: BLE001 - only a head start; the real export reports its own failure
        pass
    request = pickle.load(sys.stdin.buffer)

    def ask() -> Path | None:
        """Where the parent's fresh process saved PyTorch's outputs."""
        relay.send("references")
        found = pickle.load(sys.stdin.buffer)
        return Path(found) if found is not None else None

    try:
        checks = onnx_checks(request["path"], weights=request["weights"], random_weights=request["random_weights"],
                             opset=request["opset"], progress=relay, references=references_from(ask))
    except BaseException:  # noqa: BLE001 - the parent runs the checks itself, and raises there
        relay.send("failed")
        return
    relay.send("done", checks)
