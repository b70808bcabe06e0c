"""Reading a generated file back: its ``AIMGEN`` metadata (read without running the file), the
file imported, its model built with the weights that belong to it, and its example inputs.

Which weights: the ones asked for; else a weights file beside the source (``OUT.pt`` or
``OUT.safetensors``, which ``aimgen convert --weights`` writes); else random initialisation
from a fixed seed. ``WeightsChoice.line()`` says which, for every command to print.

Everything here reads the generated file through its public names only: ``AIMGEN``,
``build_model()``, ``example_inputs(batch)`` and, for AiM files, ``forward_with_memory`` and the
memory module named in ``AIMGEN['memory']``.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from .errors import GeneratedFileError, WeightsError
from .files import check_input
from .weights import load_into, load_state_dict

KINDS = ("aim", "plain")
WEIGHT_SUFFIXES = (".pt", ".safetensors")
CONVERT_AGAIN = "Convert the model again with this version of aimgen."


def read_metadata(path: str | Path) -> dict:
    """The ``AIMGEN`` dict of a generated file, read without running it. Lenient: any format
    number from 1 on, and keys it does not know, are accepted; a file without one is refused."""
    path = check_input(path, "generated file", "Give a file written by `aimgen convert`.", error=GeneratedFileError)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as err:
        raise GeneratedFileError(f"{path}:{err.lineno}: does not parse: {err.msg}.",
                                 hint="Fix the file, or convert the model again.") from None
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "AIMGEN" for t in stmt.targets):
            try:
                meta = ast.literal_eval(stmt.value)
            except ValueError:
                break
            if (isinstance(meta, dict) and isinstance(meta.get("format"), int) and meta["format"] >= 1
                    and meta.get("kind") in KINDS):
                return meta
            break
    raise GeneratedFileError(f"{path} is not an aimgen output (it has no AIMGEN header of a known format).",
                             hint="Give a file written by `aimgen convert`.")


def import_generated(path: str | Path) -> ModuleType:
    """Import a generated file by path (under a private module name, so two files never clash)."""
    path = Path(path)
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"aimgen_generated_{digest}", path)
    if spec is None or spec.loader is None:
        raise GeneratedFileError(f"{path}: cannot be imported as a Python file.", hint="Give a .py file.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise GeneratedFileError(f"{path}: importing it failed: {type(err).__name__}: {err}.",
                                 hint="Run `aimgen validate` on it to see which check fails.") from err
    for name in ("build_model", "example_inputs"):
        if not callable(getattr(module, name, None)):
            raise GeneratedFileError(f"{path}: has no {name}() function; it was written by another version of "
                                     "aimgen, or edited.", hint=CONVERT_AGAIN)
    return module


# ----------------------------------------------------------------------------- which weights


@dataclass(frozen=True)
class WeightsChoice:
    """The weights a command uses for a generated file, and why."""

    path: Path | None
    origin: str  # "given", "beside", "random" (asked for) or "none found"
    looked: tuple[Path, ...] = ()

    def line(self) -> str:
        if self.origin == "given":
            return f"weights: {self.path}"
        if self.origin == "beside":
            return f"weights: {self.path} (found beside the generated file; `random_weights=True` to ignore it)"
        if self.origin == "random":
            return "weights: random initialisation, seeded (`random_weights=True`)"
        return (f"weights: random initialisation (seeded): no weights file found ("
                f"{' or '.join(str(p) for p in self.looked)})")


def weights_beside(source: str | Path) -> list[Path]:
    """The weights files that belong to a generated file by name: ``OUT.pt``, ``OUT.safetensors``."""
    source = Path(source)
    return [source.with_suffix(s) for s in WEIGHT_SUFFIXES]


def choose_weights(source: str | Path, weights: str | Path | None = None,
                   random_weights: bool = False) -> WeightsChoice:
    """Given weights; else the one file beside ``source``; else random initialisation."""
    if weights is not None and random_weights:
        raise WeightsError("`weights=PATH` and `random_weights=True` ask for different weights.",
                           hint="Give one of them.", field="random_weights")
    if weights is not None:
        return WeightsChoice(check_input(weights, "weights file", "Give the path of a saved state_dict.",
                                         field="weights", error=WeightsError), "given")
    if random_weights:
        return WeightsChoice(None, "random")
    candidates = weights_beside(source)
    found = [p for p in candidates if p.is_file()]
    if len(found) > 1:
        raise WeightsError(f"{source}: two weights files lie beside it ({', '.join(map(str, found))}) and either "
                           "could be its weights.", hint="Choose one with `weights=PATH`, or remove the other.",
                           field="weights")
    if found:
        return WeightsChoice(found[0], "beside")
    return WeightsChoice(None, "none found", tuple(candidates))


# ----------------------------------------------------------------------------- the model


@dataclass
class Generated:
    """A generated file, imported: its module, AIMGEN metadata, an eval() model and its weights."""

    path: Path
    module: ModuleType
    meta: dict
    model: nn.Module
    weights: WeightsChoice = field(default_factory=lambda: WeightsChoice(None, "random"))

    @property
    def is_aim(self) -> bool:
        return self.meta.get("kind") == "aim"

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """The file's own ``example_inputs(batch)``: seeded, ids below the smallest embedding."""
        out = self.module.example_inputs(batch)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    def memory_module(self) -> nn.Module:
        return getattr(self.model, self.meta["memory"])

    def initial_memory(self) -> torch.Tensor:
        """The memory the eval() model reads now (seed + carry): the first stateful input."""
        return self.memory_module().read().detach().clone()


def load_generated(path: str | Path, weights: str | Path | None = None, *,
                   random_weights: bool = False) -> Generated:
    """Import a generated file and build its eval() model with its weights (``choose_weights``).

    The metadata is read first without running anything, so a file that is not an aimgen
    output is refused before its code runs; so are weights that cannot be read."""
    path = Path(path)
    meta = read_metadata(path)
    choice = choose_weights(path, weights, random_weights)
    state = load_state_dict(choice.path) if choice.path is not None else None
    module = import_generated(path)
    with torch.random.fork_rng(devices=[]):  # reproducible random weights, the caller's RNG untouched
        torch.manual_seed(0)
        try:
            model = module.build_model()
        except Exception as err:  # the file is editable: report where it broke
            raise GeneratedFileError(f"{path}: build_model() failed: {type(err).__name__}: {err}.",
                                     hint="Fix the generated file or convert the model again.") from err
    if state is not None:
        load_into(model, state, str(choice.path))
    model.eval()
    if meta.get("kind") == "aim" and not callable(getattr(model, "forward_with_memory", None)):
        raise GeneratedFileError(f"{path}: the AIMGEN header says kind 'aim' but the model has no "
                                 "forward_with_memory(*inputs, memory).", hint=CONVERT_AGAIN)
    return Generated(path, module, meta, model, choice)


def input_names(model: nn.Module, count: int) -> list[str]:
    """The generated forward's parameter names (the base model's inputs), ``input_i`` where
    the signature does not name them."""
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names + [f"input_{i}" for i in range(len(names), count)]
