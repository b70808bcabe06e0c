"""Python source for constant values found in a traced graph or a module's arguments.

Only values whose source we can write exactly are accepted; anything else is an error that
names where it came from. Strings are always written with ``repr``.
"""
from __future__ import annotations

import math

import torch

from .errors import RenderError

_DTYPE_NAMES = {
    getattr(torch, n): f"torch.{n}"
    for n in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
              "uint8", "bool", "complex64", "complex128")
}
_MEMORY_FORMATS = {
    torch.contiguous_format: "torch.contiguous_format",
    torch.channels_last: "torch.channels_last",
    torch.channels_last_3d: "torch.channels_last_3d",
    torch.preserve_format: "torch.preserve_format",
}


class Unrenderable(Exception):
    pass


def literal(value, where: str = "") -> str:
    """Source for a constant. Raises RenderError for anything we cannot write exactly."""
    try:
        return python_literal(value)
    except Unrenderable as err:
        raise RenderError(
            f"{where}: cannot write the constant {str(err)[:80]} into standalone source.",
            hint="Make it a plain Python number, string, tuple or a registered buffer.",
        ) from None


def python_literal(v) -> str:
    """Python source for a constant; raises Unrenderable for anything it cannot write exactly."""
    if v is None or isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return repr(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "float('nan')"
        if math.isinf(v):
            return "float('inf')" if v > 0 else "-float('inf')"
        return repr(v)
    if isinstance(v, complex):
        return f"complex({python_literal(v.real)}, {python_literal(v.imag)})"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, torch.Size):
        v = tuple(v)
    if isinstance(v, tuple):
        if len(v) == 1:
            return f"({python_literal(v[0])},)"
        return "(" + ", ".join(python_literal(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(python_literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, slice):
        return f"slice({python_literal(v.start)}, {python_literal(v.stop)}, {python_literal(v.step)})"
    if v is Ellipsis:
        return "..."
    if isinstance(v, torch.dtype):
        if v in _DTYPE_NAMES:
            return _DTYPE_NAMES[v]
        raise Unrenderable(repr(v))
    if isinstance(v, torch.device):
        return f"torch.device({str(v)!r})"
    if isinstance(v, torch.memory_format):
        return _MEMORY_FORMATS[v]
    if isinstance(v, torch.layout) and v == torch.strided:
        return "torch.strided"
    raise Unrenderable(f"{v!r} ({type(v).__name__})")


def index_literal(v, render) -> str:
    """Source for a subscript ``x[...]``: slices as ``a:b``; ``render`` writes non-constants."""
    if isinstance(v, tuple):
        if not v:
            return "()"
        parts = [index_literal(x, render) for x in v]
        return ", ".join(parts) + ("," if len(parts) == 1 else "")
    if isinstance(v, slice):
        a = "" if v.start is None else render(v.start)
        b = "" if v.stop is None else render(v.stop)
        return f"{a}:{b}" + ("" if v.step is None else f":{render(v.step)}")
    if v is Ellipsis:
        return "..."
    return render(v)
