"""Reporting validation as it happens (aimgen.progress)."""
from __future__ import annotations

import io

from aimgen.progress import Check, Lines, Live, Progress, for_stream


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_are_written_in_order():
    out = io.StringIO()
    with Lines(out) as progress:
        with progress.step("a", "exporting"):
            progress.check(Check("export", True, "1.0 s"))
        progress.note("done")
        progress.check(Check("parity", False, "diff 1"))
    assert out.getvalue() == "... exporting\n[ok] export: 1.0 s\ndone\n[FAILED] parity: diff 1\n"


def test_a_terminal_gets_the_live_display_with_every_check_kept():
    term = Terminal()
    progress = for_stream(term)
    assert isinstance(progress, Live) and isinstance(for_stream(io.StringIO()), Lines)
    with progress:
        progress.start("x", "ONNX export [the long part]")
        progress.check(Check("onnx export (stateful)", True, "[1, 2] 3.0 s"))
        progress.stop("x")
    text = term.getvalue()
    assert "[ok] onnx export (stateful): [1, 2] 3.0 s" in text.replace("\x1b[32m", "").replace("\x1b[0m", "")


def test_a_name_between_colons_is_printed_as_text_not_as_an_emoji():
    # rich turns `:llama:` into an emoji; `models.py:llama: ValueError` must reach the user as is
    term = Terminal()
    with for_stream(term) as progress:
        progress.note("note: torch.fx cannot trace models.py:llama: ValueError")
        progress.check(Check("load", False, "models.py:cat: failed"))
    text = term.getvalue()
    assert "models.py:llama: ValueError" in text and "models.py:cat: failed" in text
    assert "\U0001f999" not in text and "\U0001f431" not in text


def test_the_default_reports_nothing():
    progress = Progress()
    with progress.step("a", "b"):
        progress.check(Check("c", True, "d"))
    assert Check("c", True, "d", {"n": 1}).to_dict() == {"name": "c", "ok": True, "detail": "d", "numbers": {"n": 1},
                                                           "possible": True}
    assert Check("c", False, "d", possible=False).to_dict()["possible"] is False
