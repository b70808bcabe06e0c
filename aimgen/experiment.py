"""aimgen experiment: does memory help? (placeholder until the experiment issue lands)."""
from __future__ import annotations

from .errors import AimgenError


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="train base, AiM and a widened base on the same data and compare")
    p.add_argument("target", metavar="FILE.py[:NAME]")
    p.add_argument("--debug", action="store_true")


def run(args) -> int:
    raise AimgenError("aimgen experiment is not built yet.")
