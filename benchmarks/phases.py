"""Stopwatches around aimgen's own phases, wrapped in place (a few microseconds per call).

Used by convert_child.py (the CLI in its own process) and by run.py (in-process conversions
for the scaling table). ``PHASES`` accumulates seconds per phase until ``reset()``.
"""
from __future__ import annotations

import functools
import time

PHASES: dict[str, float] = {}
_DONE = False

# (module, function, phase): the module is where the caller looks the name up; a dotted
# function is a method, wrapped on its class (the ONNX checks run in aimgen convert's worker).
_TARGETS = [
    ("aimgen.loader", "load_model", "load model file"),
    ("aimgen.api", "trace", "trace"),
    ("aimgen.shapes", "analyse", "shape propagation"),
    ("aimgen.api", "make_plan", "plan"),
    ("aimgen.api", "generate", "codegen"),
    ("aimgen.api", "render_model", "render"),
    ("aimgen.validate", "read_metadata", "validation: static"),
    ("aimgen.validate", "imported_modules", "validation: static"),
    ("aimgen.onnx_worker", "OnnxWorker.run", "validation: onnx (the fresh process runs meanwhile)"),
    ("aimgen.validate", "finish_fresh", "validation: fresh process (waiting for it)"),
]
#: aimgen's own work between the traced graph and the source text (planning and rendering).
OWN = ("plan", "codegen", "render")
#: the in-process part of a conversion, in order.
CONVERT = ("trace", "shape propagation", "plan", "codegen", "render")


def _timed(fn, label: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            PHASES[label] = PHASES.get(label, 0.0) + time.perf_counter() - start

    return wrapper


def instrument() -> None:
    """Wrap every phase once (idempotent); modules that do not exist are skipped, a function
    that does not exist is an error (the table would lose its row without a word)."""
    global _DONE
    if _DONE:
        return
    import importlib

    for mod_name, attr, label in _TARGETS:
        try:
            module = importlib.import_module(mod_name)
        except ImportError:
            continue
        *owners, name = attr.split(".")
        owner = functools.reduce(getattr, owners, module)
        setattr(owner, name, _timed(getattr(owner, name), label))
    _DONE = True


def reset() -> dict[str, float]:
    """The phases since the last reset, and start again."""
    out = dict(PHASES)
    PHASES.clear()
    return out
