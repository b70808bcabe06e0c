"""Shared helpers for the tests: the repo's paths, running the CLI in-process or as a user."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ZOO = ROOT / "tests" / "zoo"
MODELS = Path(__file__).resolve().parent / "models"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """The test machine is shared: one torch thread for the test (training tests ask for it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# --- generated files, shared by the export, ONNX-check, readback and validation tests ---------

sys.path.insert(0, str(MODELS))


def convert_to_file(model, shapes, path: Path, **kwargs) -> Path:
    """Convert ``model`` at inputs of ``shapes`` and write the file without validating it."""
    import aimgen

    torch.manual_seed(0)
    inputs = tuple(torch.randn(s) for s in shapes)
    aimgen.convert(model, inputs, **kwargs).write(path, validate=False)
    return path


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != "__pycache__"}


def onnx_signature(path: Path) -> tuple[list[tuple], list[tuple]]:
    """(name, dims, element type) of each graph input and output of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)

    def rows(values):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                 v.type.tensor_type.elem_type) for v in values]

    return rows(proto.graph.input), rows(proto.graph.output)


@pytest.fixture(scope="session")
def mlp_file(tmp_path_factory) -> Path:
    """A small generated AiM file (tests/models/export_models.MLP), no weights beside it."""
    import export_models as em

    return convert_to_file(em.MLP(), ((1, 20),), tmp_path_factory.mktemp("mlp") / "mlp_aim.py")
