"""Validation as it happens: the ``Check`` record, and where checks and phases are reported.

Validation runs for seconds to minutes (the ONNX export is the long part), so every phase says
when it starts and every check is shown as soon as it is known:

- ``Progress`` (this base class) reports nothing: the library's default.
- ``Lines`` writes plain lines in order, each flushed: for logs, pipes and CI.
- ``Live`` shows the running phases with a spinner and their elapsed time (rich), and prints
  each finished check above them: for a terminal.

``for_stream(stream)`` picks ``Live`` for a terminal and ``Lines`` otherwise.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO, Iterator


@dataclass
class Check:
    """One validation check: its name, whether it held, what was measured (text and numbers)."""

    name: str
    ok: bool
    detail: str
    numbers: dict = field(default_factory=dict)
    possible: bool = True   # False: the check cannot be made for this model (said why), not a failure

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        mark = "ok" if self.ok else "not possible" if not self.possible else "FAILED"
        return f"[{mark}] {self.name}: {self.detail}"


class Progress:
    """Receives validation's phases and checks as they happen; this one ignores them."""

    def start(self, key: str, text: str) -> None:
        """A phase began (``key`` names it for ``stop``; ``text`` says what it does)."""

    def stop(self, key: str) -> None:
        """The phase ``key`` ended."""

    def check(self, check: Check) -> None:
        """A check finished."""

    def note(self, text: str) -> None:
        """A line worth showing now."""

    def close(self) -> None:
        """No more reports."""

    @contextmanager
    def step(self, key: str, text: str) -> Iterator[None]:
        self.start(key, text)
        try:
            yield
        finally:
            self.stop(key)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Lines(Progress):
    """Plain lines, in order, flushed at once: '... TEXT' when a phase starts, each check's
    line when it finishes (with the phase's seconds where the check does not say them)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream
        self.started: dict[str, float] = {}

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def start(self, key: str, text: str) -> None:
        self.started[key] = time.perf_counter()
        self._write(f"... {text}")

    def stop(self, key: str) -> None:
        self.started.pop(key, None)

    def check(self, check: Check) -> None:
        self._write(check.line())

    def note(self, text: str) -> None:
        self._write(text)


class Live(Progress):
    """A rich live display: one spinner line per running phase with its elapsed time, and the
    finished checks printed above it (kept in the terminal's scrollback)."""

    def __init__(self, stream: IO[str] | None = None):
        from rich.console import Console
        from rich.progress import Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream or sys.stdout, highlight=False, emoji=False)
        self.display = RichProgress(SpinnerColumn(), TextColumn("{task.description}", markup=False),
                                    TimeElapsedColumn(), console=self.console, transient=True)
        self.tasks: dict[str, int] = {}
        self.display.start()

    def start(self, key: str, text: str) -> None:
        self.tasks[key] = self.display.add_task(text, total=None)

    def stop(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            self.display.remove_task(task)

    def check(self, check: Check) -> None:
        style = "green" if check.ok else "bold red"
        self.console.print(check.line(), style=style, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    def close(self) -> None:
        self.display.stop()


def for_stream(stream: IO[str] | None = None) -> Progress:
    """``Live`` on a terminal, ``Lines`` otherwise."""
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return Live(stream) if isatty is not None and isatty() else Lines(stream)
