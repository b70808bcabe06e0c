"""``aimgen diff``: the unified diff between the plain and the AiM rendering of a model, so a
reviewer reads only what the memory adds."""
from __future__ import annotations

import difflib

from . import api

_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
_RESET = "\x1b[0m"


def unified(a: list[str], b: list[str], from_name: str, to_name: str, context: int = 3):
    """difflib's unified diff without its 'popular line' heuristic (autojunk), which misaligns
    files where one line (``bn1=nn.BatchNorm2d(64),``) recurs hundreds of times."""
    yield f"--- {from_name}\n"
    yield f"+++ {to_name}\n"
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        yield f"@@ -{i1 + 1},{i2 - i1} +{j1 + 1},{j2 - j1} @@\n"
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                yield from (" " + line for line in a[a1:a2])
                continue
            yield from ("-" + line for line in a[a1:a2])
            yield from ("+" + line for line in b[b1:b2])


def diff_text(model, specs, *, options=None, source_name: str, color: bool = False,
              constructor_args: dict | None = None) -> str:
    plain = api.convert(model, specs, plain=True, source_name=source_name, constructor_args=constructor_args)
    aim = api.convert(model, specs, options=options, source_name=source_name, constructor_args=constructor_args)
    lines = unified(plain.source.splitlines(keepends=True), aim.source.splitlines(keepends=True),
                    f"{source_name} (plain)", f"{source_name} (AiM)", context=2)
    out = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n"
        if color and line[:1] in _COLORS and not line.startswith(("+++", "---")):
            line = _COLORS[line[0]] + line.rstrip("\n") + _RESET + "\n"
        out.append(line)
    return "".join(out)
