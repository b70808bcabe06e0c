"""What the breadth sweeps (timm_sweep.py, hf_sweep.py) share: write the model builders to a
file, as a user's model file, then convert and check each model in turn, one line per model."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import torch


def run(file_text: str, checks: list[tuple[str, Callable[[Path], str]]], file_name: str = "models.py") -> int:
    """Write ``file_text`` to a temporary ``file_name``; run each (name, check(path)) and print
    ``name ok ...`` or ``name refused: <first line of the reason>``. Returns how many passed."""
    torch.set_num_threads(1)
    ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / file_name
        source.write_text(file_text)
        for name, check in checks:
            try:
                line = check(source)
                ok += 1
            except Exception as err:  # noqa: BLE001 - a sweep reports every failure and goes on
                text = str(err).strip().splitlines()
                line = f"refused: {text[0][:400] if text else type(err).__name__}"
            print(f"{name} {line}", flush=True)
    print(f"{ok} of {len(checks)} converted")
    return ok
