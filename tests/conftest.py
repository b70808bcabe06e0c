"""Shared helpers for the tests: the repo's paths, running the CLI in-process or as a user."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MODELS = Path(__file__).resolve().parent / "models"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m aimgen ARGS`` in a subprocess, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "aimgen", *map(str, args)], capture_output=True, text=True,
                          cwd=str(cwd) if cwd else None, timeout=900)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from aimgen.cli import main

    def call(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def write_model(tmp_path: Path, source: str, name: str = "model.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in folder besides the ones we put there (partial outputs, temp files)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep and p.name != "__pycache__")
