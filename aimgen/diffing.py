"""``aimgen diff``: the unified diff between the plain and the AiM rendering of a model, so a
reviewer reads only what the memory adds."""
from __future__ import annotations

import difflib

from . import api

_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
_RESET = "\x1b[0m"


def diff_text(model, specs, *, options=None, source_name: str, color: bool = False) -> str:
    plain = api.convert(model, specs, plain=True, source_name=source_name)
    aim = api.convert(model, specs, options=options, source_name=source_name)
    lines = difflib.unified_diff(plain.source.splitlines(keepends=True), aim.source.splitlines(keepends=True),
                                 fromfile=f"{source_name} (plain)", tofile=f"{source_name} (AiM)", n=2)
    out = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n"
        if color and line[:1] in _COLORS and not line.startswith(("+++", "---")):
            line = _COLORS[line[0]] + line.rstrip("\n") + _RESET + "\n"
        out.append(line)
    return "".join(out)
