"""aimgen: give memory to a whole neural network.

Trace a PyTorch model with torch.fx and write standalone, readable source for its AiM version:
a learned memory every conv and linear layer reads, update blocks that rewrite it, and a carry
that hands it to the next batch. See README.md.

Importing the package is light: torch is imported when ``convert``, ``Conversion`` or
``InputSpec`` is first used, so the command line can check paths and arguments at once.
"""
from __future__ import annotations

import importlib

from .errors import AimgenError
from .options import Options

__all__ = ["AimgenError", "Checkpoint", "Conversion", "InputSpec", "Options", "convert"]
__version__ = "0.1.0"

_LAZY = {"convert": "api", "Conversion": "api", "InputSpec": "loader", "Checkpoint": "weights"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
