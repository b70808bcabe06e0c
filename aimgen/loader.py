"""Loading the user's model: ``FILE.py[:NAME]`` and ``--input-shape`` strings.

Loading a model file runs it as Python does: convert only code you trust.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import LoadError
from .files import check_source, split_target

DTYPES = {
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "long": torch.int64,
    "int32": torch.int32, "int": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in reversed(list(DTYPES.items()))}
BUILDER_NAMES = ("build_model", "build")


@dataclass(frozen=True)
class InputSpec:
    """One model input: a shape and a dtype (``1,3,224,224`` or ``1,16:int64``)."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    @classmethod
    def parse(cls, text: str) -> "InputSpec":
        raw = text.strip()
        shape_part, _, dtype_part = raw.partition(":")
        dtype_name = dtype_part.strip().lower() or "float32"
        if dtype_name not in DTYPES:
            raise LoadError(
                f"--input-shape {text!r}: unknown dtype {dtype_name!r}.",
                hint=f"Use one of: {', '.join(sorted(set(DTYPE_NAMES.values())))}.",
            )
        parts = re.split(r"[,x]", shape_part.strip().strip("()[]"))
        try:
            shape = tuple(int(p) for p in parts)
        except ValueError:
            shape = ()
        if not shape or any(d <= 0 for d in shape):
            raise LoadError(
                f"--input-shape {text!r} is not a shape: give positive integers separated by "
                "commas, batch first, e.g. --input-shape 1,3,224,224 (or 1,16:int64 for token ids)."
            )
        return cls(shape, DTYPES[dtype_name])

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def __str__(self) -> str:
        dims = ",".join(map(str, self.shape))
        return dims if self.dtype == torch.float32 else f"{dims}:{self.dtype_name}"


def embedding_limit(model: nn.Module | None) -> int:
    """Integer example inputs stay below this: the smallest embedding table (2 without one)."""
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)] if model is not None else []
    return min(sizes) if sizes else 2


def example_inputs(specs: list[InputSpec], model: nn.Module | None = None, seed: int = 0,
                   batch: int | None = None) -> tuple[torch.Tensor, ...]:
    """Deterministic example tensors. Integer inputs stay below the smallest embedding table."""
    gen = torch.Generator().manual_seed(seed)
    high = embedding_limit(model)
    out = []
    for spec in specs:
        shape = ((batch,) + spec.shape[1:]) if batch else spec.shape
        if spec.dtype.is_floating_point:
            out.append(torch.randn(shape, generator=gen).to(spec.dtype))
        elif spec.dtype == torch.bool:
            out.append(torch.randint(0, 2, shape, generator=gen).bool())
        else:
            out.append(torch.randint(0, high, shape, generator=gen).to(spec.dtype))
    return tuple(out)


def flat_tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors of a (nested) model output in order, as the ONNX exporter flattens them:
    tuples, lists, dicts (by value), dataclasses and NamedTuples. (The fresh-process check of
    aimgen.validate runs this function's own source.)"""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    elif hasattr(obj, "__dataclass_fields__"):
        obj = [getattr(obj, f) for f in obj.__dataclass_fields__]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in flat_tensors(o)]
    return []


def _import_file(path: Path):
    path, _ = check_source(str(path))
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        compile(source, str(path), "exec")
    except SyntaxError as err:
        raise LoadError(
            f"{path}:{err.lineno}: syntax error in the model file: {err.msg}.",
            hint="Fix the file so that `python` can import it, then run aimgen again.",
        ) from None
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    mod_name = f"aimgen_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code failed: say where
        sys.modules.pop(mod_name, None)
        raise LoadError(
            f"{path}:{_user_line(err, path)}: importing the model file failed: "
            f"{type(err).__name__}: {err}.",
            hint="The file runs as Python imports it; fix the error (or its missing imports).",
        ) from err
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _user_line(err: BaseException, path: Path) -> str:
    line = "?"
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = str(frame.lineno)
    return line


def _candidates(module) -> dict[str, object]:
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(obj, nn.Module):
            found[name] = obj
        elif inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__:
            found[name] = obj
        elif inspect.isfunction(obj) and name in BUILDER_NAMES and obj.__module__ == module.__name__:
            found[name] = obj
    return found


def _instantiate(obj, label: str, path: Path) -> nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    if inspect.isclass(obj) or inspect.isfunction(obj):
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            sig = inspect.signature(target)
            required = [
                p.name for i, p in enumerate(sig.parameters.values())
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and not (inspect.isclass(obj) and i == 0)
            ]
        except (TypeError, ValueError):
            required = []
        if required:
            raise LoadError(
                f"{path}:{label} needs arguments ({', '.join(required)}) and aimgen builds it with none.",
                hint=f"Add a zero-argument function to {path.name}, e.g. `def build_model(): return "
                f"{label}(...)`, and convert {path.name}:build_model.",
            )
        try:
            built = obj()
        except Exception as err:
            raise LoadError(
                f"{path}:{_user_line(err, path)}: building {label}() failed: {type(err).__name__}: {err}.",
                hint="aimgen calls it with no arguments; make that work or point at a builder function.",
            ) from err
        if not isinstance(built, nn.Module):
            raise LoadError(
                f"{path}:{label}() returned {type(built).__name__}, not a torch.nn.Module.",
                hint="Point aimgen at a Module subclass, a module instance or a function returning one.",
            )
        return built
    raise LoadError(
        f"{path}:{label} is a {type(obj).__name__}, not a model.",
        hint="NAME must be an nn.Module subclass, a zero-argument function returning one, or an instance.",
    )


CANDIDATES = ("a candidate is a zero-argument build_model() or build() function, a module-level nn.Module "
              "instance, or an nn.Module subclass defined in the file and built with no arguments")
EXAMPLE = "for example `def build_model(): return MyNet(num_classes=10)`, then convert FILE.py:build_model"


@dataclass
class LoadedModel:
    model: nn.Module
    path: Path
    name: str  # the NAME used (given or picked)
    class_name: str
    picked: str | None = None  # why NAME was picked, when it was not given
    # {module name: arguments of its constructor call}, recorded while the model was built
    constructor_args: dict = field(default_factory=dict)

    def line(self) -> str:
        """One line for the CLI: which model, and why when aimgen chose it."""
        text = f"model: {self.path.name}:{self.name} ({self.class_name})"
        return text + (f"; {self.picked}" if self.picked else "")


def _pick(cands: dict[str, object], path: Path) -> tuple[str, str]:
    """(name, why) of the candidate to convert when none is named: a builder function before
    module instances before classes, and only when that kind has exactly one."""
    builders = sorted(k for k, v in cands.items() if k in BUILDER_NAMES)
    instances = sorted(k for k, v in cands.items() if isinstance(v, nn.Module))
    classes = sorted(k for k, v in cands.items() if inspect.isclass(v))
    kinds = (("builder function", builders), ("module instance", instances), ("nn.Module subclass", classes))
    for i, (kind, group) in enumerate(kinds):
        if len(group) > 1:
            plural = kind + ("es" if kind.endswith("s") else "s")
            raise LoadError(f"{path}: found several candidate models of one kind ({plural}: "
                            f"{', '.join(group)}) and nothing to prefer one by.",
                            hint=f"Name the one to convert as FILE.py:NAME, e.g. {path.name}:{group[0]}.")
        if len(group) == 1:
            others = [k for _, g in kinds[i + 1:] for k in g]
            if not others:
                return group[0], f"picked as the only candidate in {path.name}"
            return group[0], (f"picked because a {kind} comes before {', '.join(others)} "
                              f"(builder functions, then module instances, then classes); name another "
                              "as FILE.py:NAME")
    raise LoadError(f"{path}: found no model to convert; {CANDIDATES}.",
                    hint=f"Add one, {EXAMPLE}.")


def load_model(target: str) -> LoadedModel:
    """Import FILE.py and build NAME (or the candidate picked by ``_pick``, with the reason),
    recording every module's constructor call while the model is built (see aimgen/records.py;
    the file's imports are not watched: that made loading torchvision's models 1.6x slower)."""

    path, name = split_target(target)
    return _load(path, name)


def _load(path: Path, name: str | None) -> LoadedModel:
    from .records import recording

    module = _import_file(path)  # not recorded: watching every call of its imports costs 0.5 s
    picked = None
    if name is not None:
        if not hasattr(module, name):
            cands = sorted(_candidates(module))
            found = (f"Candidates found: {', '.join(cands)}." if cands else
                     f"The file has no candidate either ({CANDIDATES}); {EXAMPLE}.")
            raise LoadError(f"{path}: there is no {name!r} in the file.", hint=found)
        obj = getattr(module, name)
    else:
        cands = _candidates(module)
        name, picked = _pick(cands, path)
        obj = cands[name]
    with recording() as records:
        if isinstance(obj, nn.Module):  # built while the file ran: run it again, recorded
            obj = getattr(_import_file(path), name)
        model = _instantiate(obj, name, path)
    return LoadedModel(model=model, path=path, name=name, class_name=type(model).__name__, picked=picked,
                       constructor_args=records.by_name(model))
