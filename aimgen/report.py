"""The conversion report: a per-layer table (tapped / skipped and why / update block) and a
one-line parameter summary, on the terminal and as JSON."""
from __future__ import annotations

import io
import json
import math

from rich.console import Console
from rich.table import Table

from .naming import count
from .plan import Plan


def rows(plan: Plan, update_names: dict[str, str] | None = None) -> list[tuple[str, str, str, str, str]]:
    """(layer, type, status, detail, params) in graph order; ``update_names``: each update
    block's attribute in the generated model, by its node."""
    out = []
    repeats = plan.repeats()
    for t in plan.taps:
        width = plan.width(t)
        where = f" at {'x'.join(map(str, t.spatial))}" if t.spatial else ""
        groups = f", every one of {t.groups} groups" if t.groups > 1 else ""
        kernel = " (center tap)" if width.kernel == "pointwise" else ""
        again = t.node in repeats
        detail = f"+{width.k} memory {t.unit}{'s' if width.k != 1 else ''}{where}{groups}{kernel}"
        out.append((t.qualname, t.layer_type, "tapped", detail + (" (called again: same layer)" if again else ""),
                    "+0" if again else f"+{plan.tap_params_of(t):,}"))
    for s in plan.skipped:
        out.append((s.qualname, s.layer_type, "skipped", s.reason, "0"))
    for u in plan.updates:
        name = (update_names or {}).get(u.node, f"update after {u.label}")
        out.append((name, "MemoryUpdate", "update block", f"after {u.label} ({u.features} features, rank {plan.rank})",
                    f"+{plan.update_params_of(u):,}"))
    return out


def table_text(plan: Plan, title: str, width: int = 120, color: bool = False,
               update_names: dict[str, str] | None = None, notes: list[str] = ()) -> str:
    table = Table(title=title, show_lines=False, header_style="bold")
    for col, justify in (("layer", "left"), ("type", "left"), ("status", "left"), ("detail", "left"),
                         ("params", "right")):
        table.add_column(col, justify=justify, overflow="fold")
    for r in rows(plan, update_names):
        style = {"tapped": "green", "skipped": "yellow", "update block": "cyan"}.get(r[2]) if color else None
        table.add_row(*r, style=style)
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="auto" if color else None,
                      highlight=False, emoji=False)   # a name like `model.py:llama:` stays text
    console.print(table)
    tapped, seen = plan.layer_counts()
    lines = [f"memory {tuple(plan.memory_shape)} = {count(math.prod(plan.memory_shape), 'float')}; taps: {tapped} of {seen} "
             f"weight layers; update blocks: {len(plan.updates)}; carry rate {plan.carry_rate}"]
    lines += [f"note: {note}" for note in [*plan.notes, *notes]]
    if plan.unused_params:
        where = f" ({', '.join(plan.never_called)})" if plan.never_called else ""
        lines.append(f"note: {plan.unused_params:,} parameters of the base model are never used by its forward"
                     f"{where}: kept, so base checkpoints load, but untapped and without gradients")
    lines.append(plan.summary())
    for line in lines:
        console.print(line, soft_wrap=True)  # one line each, whatever the width: easy to grep
    return buf.getvalue()


def to_json(plan: Plan, extra: dict | None = None) -> str:
    data = plan.to_dict()
    if extra:
        data.update(extra)
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
