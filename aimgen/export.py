"""ONNX export of generated models, and the ONNX part of validation.

Deployments run AiM models in onnxruntime, so the generated file must export and give the
same numbers there. ONNX graphs are stateless and the exporter silently drops in-place buffer
updates, which is why there are two exports:

- **stateless** (default): the ``eval()`` model with its memory frozen (seed + carry folded in
  as constants); graph inputs and outputs are exactly those of the base model. For an AiM
  model it is made from the stateful graph (``freeze_memory``), so one trace serves both.
- **stateful**: the pure ``forward_with_memory(*inputs, memory) -> (outputs, new_memory)`` of
  the generated file, so ``memory`` is an explicit graph input and ``new_memory`` an explicit
  output, both with the seed's shape: a deployment feeds one call's ``new_memory`` to the next.

Both use the torch.export-based exporter with a dynamic batch axis and write one
self-contained ``.onnx`` file (weights embedded) unless the model is too large for protobuf's
2 GB limit, in which case the weights go to ``MODEL.onnx.data`` beside it and the summary
says so. Files are written all-or-nothing (see aimgen.files).
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .errors import ExportError, WeightsError
from .files import check_targets, staged
from .validate import Check, read_metadata

#: The torch.export-based exporter emits opset 18 and newer; older targets are not produced.
MIN_OPSET = 18
#: Parity tolerance of the spec (np.allclose semantics: |a - b| <= atol + rtol * |b|).
ATOL, RTOL = 1e-4, 1e-3
#: protobuf refuses messages over 2 GiB; keep a margin for the graph itself.
SINGLE_FILE_LIMIT = 2 * 1024**3 - 64 * 1024**2
#: Batch sizes of the parity checks; the export itself traces at EXPORT_BATCH (not 0 or 1,
#: which torch.export would specialise into a constant).
PARITY_BATCHES = (1, 3)
EXPORT_BATCH = 2
CARRY_CALLS = 3
MEMORY_INPUT, MEMORY_OUTPUT = "memory", "new_memory"


# ----------------------------------------------------------------------------- results


@dataclass
class ExportResult:
    """What was written: the file, its graph signature, its size and how long it took."""

    path: Path
    stateful: bool
    inputs: list[tuple[str, list[int | str]]]
    outputs: list[tuple[str, list[int | str]]]
    opset: int
    size: int
    seconds: float
    external_data: Path | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI: where, what goes in and out, how big."""
        kind = "stateful" if self.stateful else "stateless"
        ins = ", ".join(f"{n}{_shape_text(s)}" for n, s in self.inputs)
        outs = ", ".join(f"{n}{_shape_text(s)}" for n, s in self.outputs)
        where = str(self.path)
        if self.external_data is not None:
            where += f" (+ weights in {self.external_data.name}: over the 2 GB single-file limit)"
        return (f"wrote {where}: {kind} ONNX, opset {self.opset}, inputs {ins} -> outputs {outs}, "
                f"{_size_text(self.size)}, exported in {self.seconds:.1f} s")


def _shape_text(shape: Sequence[int | str]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _size_text(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# ----------------------------------------------------------------------------- loading


@dataclass
class Generated:
    """A generated file, imported: its module, AIMGEN metadata and a built eval() model."""

    path: Path
    module: ModuleType
    meta: dict
    model: nn.Module

    @property
    def is_aim(self) -> bool:
        return self.meta.get("kind") == "aim"


def load_generated(path: str | Path, weights: str | Path | None = None) -> Generated:
    """Import a generated file by path and build its eval() model, with weights if given.

    The metadata is read first without running anything, so a file that is not an aimgen
    output is refused before its code runs."""
    path = Path(path)
    meta = read_metadata(path)
    state = load_state_dict(weights) if weights is not None else None  # refuse a bad file early
    module = _import_file(path)
    # Generated models initialise randomly: seed for reproducible exports, without touching
    # the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = module.build_model()
        except Exception as err:  # the file is editable: report where it broke
            raise ExportError(f"{path}: build_model() failed: {type(err).__name__}: {err}.",
                              hint="Fix the generated file or convert the model again.") from err
    if state is not None:
        fit_weights(model, state, Path(weights))
    model.eval()
    if meta.get("kind") == "aim" and not callable(getattr(model, "forward_with_memory", None)):
        raise ExportError(f"{path}: the AIMGEN header says kind 'aim' but the model has no "
                          "forward_with_memory(*inputs, memory).",
                          hint="Convert the model again with this version of aimgen.")
    return Generated(path, module, meta, model)


def _import_file(path: Path) -> ModuleType:
    name = f"aimgen_export_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExportError(f"{path}: cannot be imported as a Python file.", hint="Give a .py file.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ExportError(f"{path}: importing it failed: {type(err).__name__}: {err}.",
                          hint="Run `aimgen validate` on it to see which check fails.") from err
    return module


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict from ``.pt``/``.pth`` (``torch.load(weights_only=True)``: no code
    runs) or ``.safetensors``. A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper, as
    training loops often save, is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file.", hint="Give the path of a saved state_dict.")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"--weights {path}: reading .safetensors needs the 'safetensors' package, "
                               "which is not installed.",
                               hint="pip install safetensors, or save the weights with torch.save.") from None
        try:
            data: Any = load_file(str(path))
        except Exception as err:
            raise WeightsError(f"--weights {path}: not a readable safetensors file ({err}).") from None
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise WeightsError(
                f"--weights {path}: cannot be read as a state_dict with torch.load(weights_only=True): "
                f"{first}", hint="aimgen loads only plain tensors (no pickled code): save "
                "model.state_dict() with torch.save, or use .safetensors.") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict) and not isinstance(data[key], torch.Tensor):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"--weights {path}: holds a {type(data).__name__}, not a state_dict of tensors.",
                           hint="Save model.state_dict() with torch.save.")
    return data


def fit_weights(model: nn.Module, state: dict[str, torch.Tensor], source: Path, limit: int = 12) -> None:
    """Load ``state`` strictly, or say by name which keys are missing, unexpected or shaped
    differently (load_state_dict's own message is one long line and stops at the first kind)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (model {tuple(own[k].shape)})"
              for k in own if k in state and state[k].shape != own[k].shape]
    problems = [(what, names) for what, names in (("missing", missing), ("unexpected", unexpected),
                                                   ("shape mismatch", shapes)) if names]
    if problems:
        parts = []
        for what, names in problems:
            shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
            parts.append(f"{what} ({len(names)}): {shown}")
        raise WeightsError(f"--weights {source} does not fit the model: " + "; ".join(parts) + ".",
                           hint="Give the state_dict written with this file (OUT.pt from `aimgen convert "
                           "--weights`), or a checkpoint of this AiM model. Nothing was written.")
    model.load_state_dict(state)


# ----------------------------------------------------------------------------- inputs


def input_names(model: nn.Module, count: int) -> list[str]:
    """The generated forward's parameter names (the base model's inputs), ``input_i`` where
    the signature does not name them."""
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    names += [f"input_{i}" for i in range(len(names), count)]
    return names


def example_inputs(module: ModuleType, model: nn.Module, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Deterministic inputs of the file's example shapes at ``batch``; integer inputs stay
    below the smallest embedding table (as in validation)."""
    shapes = [tuple(s) for s in module.EXAMPLE_INPUT_SHAPES]
    dtypes = list(getattr(module, "EXAMPLE_INPUT_DTYPES", ["float32"] * len(shapes)))
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
    high = min(sizes) if sizes else 2
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape, name in zip(shapes, dtypes):
        shape = (batch,) + shape[1:]
        dtype = getattr(torch, name)
        if dtype.is_floating_point:
            out.append(torch.randn(shape, generator=gen).to(dtype))
        elif dtype == torch.bool:
            out.append(torch.randint(0, 2, shape, generator=gen).bool())
        else:
            out.append(torch.randint(0, high, shape, generator=gen).to(dtype))
    return tuple(out)


def initial_memory(gen: Generated) -> torch.Tensor:
    """The memory the eval() model reads now (seed + carry), the natural first stateful input."""
    return getattr(gen.model, gen.meta["memory"]).read().detach().clone()


# ----------------------------------------------------------------------------- export


class _Stateful(nn.Module):
    """``forward_with_memory`` as a module's forward, flattened to ``(*outputs, new_memory)``
    so the exporter sees the memory as a plain input and the new memory as a plain output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, memory = self.model.forward_with_memory(*args)
        return (*flat_tensors(outputs), memory)


class _Stateless(nn.Module):
    """The model's forward with its outputs flattened to a tuple of tensors, so they can be
    named ``output``, ``output_1``, ... whatever structure the base model returns."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flat_tensors(self.model(*args)))


def flat_tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors of a (nested) output in order, as the exporter flattens them."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    elif hasattr(obj, "__dataclass_fields__"):
        obj = [getattr(obj, f) for f in obj.__dataclass_fields__]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in flat_tensors(o)]
    return []


def output_names(count: int) -> list[str]:
    return ["output"] + [f"output_{i}" for i in range(1, count)]


@dataclass
class Exported:
    """An export held in memory: the ONNX program plus its graph signature."""

    program: Any  # torch.onnx.ONNXProgram
    input_names: list[str]
    output_names: list[str]
    opset: int
    seconds: float
    nbytes: int


def check_opset(opset: int | None) -> None:
    """Refuse an opset the exporter cannot produce before spending time on the export: it
    would otherwise fall back to opset 18 with only a warning."""
    if opset is None:
        return
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"--opset {opset}: the torch.export-based ONNX exporter produces opsets "
                          f"{MIN_OPSET} to {newest} (the newest this onnx {onnx.__version__} knows).",
                          hint=f"Give --opset between {MIN_OPSET} and {newest}, or leave it out for the "
                          "exporter's default.")


def export_model(gen: Generated, *, stateful: bool, opset: int | None = None) -> Exported:
    """Export forward_with_memory (stateful) or the eval() model (stateless) with a dynamic
    batch axis on the data inputs; the memory input keeps the seed's shape.

    An AiM model's stateless graph is its stateful graph with the memory frozen: the memory
    input becomes a constant (seed + carry, what eval() reads) and the new-memory output and
    the nodes only it needed are dropped. One trace serves both kinds, and the two graphs
    cannot drift apart."""
    check_opset(opset)
    if stateful and not gen.is_aim:
        raise ExportError(f"{gen.path}: --stateful needs an AiM model, but this file is a plain rendering "
                          "(kind 'plain', no memory).", hint="Export it without --stateful.")
    if gen.is_aim and not stateful:
        return freeze_memory(_trace_export(gen, stateful=True, opset=opset, kind="stateless"), initial_memory(gen))
    return _trace_export(gen, stateful=stateful, opset=opset, kind="stateful" if stateful else "stateless")


def freeze_memory(exported: Exported, memory: torch.Tensor) -> Exported:
    """The stateless graph from a stateful export (changed in place): the memory input becomes
    an initializer holding ``memory``, the new-memory output goes, and so does every node
    that only it used."""
    import onnx_ir as ir
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    start = time.perf_counter()
    graph = exported.program.model.graph
    (value,) = [v for v in graph.inputs if v.name == MEMORY_INPUT]
    graph.inputs.remove(value)
    value.const_value = ir.Tensor(memory.detach().cpu().numpy(), name=MEMORY_INPUT)
    graph.register_initializer(value)
    (out,) = [v for v in graph.outputs if v.name == MEMORY_OUTPUT]
    graph.outputs.remove(out)
    RemoveUnusedNodesPass()(exported.program.model)
    return Exported(exported.program, exported.input_names[:-1], exported.output_names[:-1], exported.opset,
                    exported.seconds + time.perf_counter() - start, exported.nbytes)


def _trace_export(gen: Generated, *, stateful: bool, opset: int | None, kind: str) -> Exported:
    x = example_inputs(gen.module, gen.model, EXPORT_BATCH)
    names = input_names(gen.model, len(x))
    batch = torch.export.Dim("batch", min=1)
    dynamic: list[dict[int, Any] | None] = [{0: batch} if t.dim() else None for t in x]
    if stateful:
        wrapper: nn.Module = _Stateful(gen.model)
        args = (*x, initial_memory(gen))
        names = names + [MEMORY_INPUT]
        dynamic.append(None)
    else:
        wrapper, args = _Stateless(gen.model), x
    wrapper.eval()
    with torch.no_grad():
        count = len(wrapper(*args))
    outs = output_names(count - 1) + [MEMORY_OUTPUT] if stateful else output_names(count)
    log = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), torch.no_grad(), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # the exporter's warnings are noise unless it fails
            program = torch.onnx.export(wrapper, args, dynamo=True, input_names=names, output_names=outs,
                                        dynamic_shapes={"args": tuple(dynamic)}, opset_version=opset,
                                        external_data=False, verbose=False)
    except Exception as err:
        log.writelines(f"{w.category.__name__}: {w.message}\n" for w in caught)
        raise export_failed(gen, kind, f"{_first_line(err)}{_log_tail(log)}") from err
    seconds = time.perf_counter() - start
    produced = _opset_of(program.model_proto)
    if opset is not None and produced != opset:
        raise ExportError(f"--opset {opset}: the exporter could not convert the model to opset {opset} and "
                          f"produced opset {produced} instead{_log_tail(log)}",
                          hint=f"Leave --opset out (opset {produced} works), or try another opset between "
                          f"{MIN_OPSET} and the newest onnx knows.")
    nbytes = sum(t.numel() * t.element_size() for t in [*gen.model.parameters(), *gen.model.buffers()])
    return Exported(program, names, outs, produced, seconds, nbytes)


def export_failed(gen: Generated, kind: str, cause: str) -> ExportError:
    """The one message for an export that failed; ``cause`` is kept on the error so one failed
    trace can be reported for each kind of graph it was meant to give."""
    err = ExportError(f"{gen.path}: the ONNX export ({kind}) failed: {cause}",
                      hint="Run with --debug for the traceback, and please report it with the file "
                      "(aimgen should only write exportable models).")
    err.cause = cause
    return err


def _opset_of(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _first_line(err: BaseException) -> str:
    """The line of an error that says what went wrong. The exporter wraps the real cause in
    a page of advice, with the cause under '## Exception summary'; show that line."""
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("## Exception summary") and i + 1 < len(lines):
            return _strip_ansi(re.sub(r"^<class '(?:\w+\.)*(\w+)'>", r"\1", lines[i + 1]))
    return _strip_ansi(f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": "))


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _log_tail(log: io.StringIO, lines: int = 3) -> str:
    """Where the export broke, from the exporter's log: the source line of the model it was
    tracing ('# File: X.py:N in f, code: ...') if it names one, else its last lines (it
    prints the real reason there, e.g. for opsets)."""
    text = log.getvalue()
    spots = re.findall(r"# File: (.+?):(\d+) in (\w+), code: (.+)", text)
    if spots:
        file, line, func, code = spots[-1]
        return f" at {file}:{line} in {func}: `{code.strip()}`."
    useful = [ln.strip() for ln in text.splitlines()
              if ln.strip() and not ln.startswith("[torch.onnx]") and not ln.strip().startswith("^")]
    return (" (exporter: " + " | ".join(useful[-lines:]) + ")") if useful else "."


def save(exported: Exported, target: Path) -> Path | None:
    """Write the program to ``target``: one self-contained file, or with its weights in
    ``target.data`` when they exceed protobuf's 2 GB limit (returned then)."""
    if exported.nbytes < SINGLE_FILE_LIMIT:
        exported.program.save(target, external_data=False)
        return None
    exported.program.save(target, external_data=True)
    return target.with_name(target.name + ".data")


def _signature(path: Path) -> tuple[list[tuple[str, list[int | str]]], list[tuple[str, list[int | str]]]]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)

    def dims(value: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return ([(v.name, dims(v)) for v in proto.graph.input], [(v.name, dims(v)) for v in proto.graph.output])


def export_file(source_path: str | Path, onnx_path: str | Path, *, weights: str | Path | None = None,
                stateful: bool = False, opset: int | None = None, force: bool = False) -> ExportResult:
    """``aimgen export``: build the model from a generated file (with weights if given) and
    write it as ONNX, all-or-nothing; an existing output is refused unless ``force``."""
    source_path, onnx_path = Path(source_path), Path(onnx_path)
    check_opset(opset)
    check_targets([onnx_path], force)  # refuse before any work
    gen = load_generated(source_path, weights)
    exported = export_model(gen, stateful=stateful, opset=opset)
    large = exported.nbytes >= SINGLE_FILE_LIMIT
    data_path = onnx_path.with_name(onnx_path.name + ".data") if large else None
    if data_path is not None:
        check_targets([data_path], force)
        _save_pair(exported, onnx_path, data_path)
    else:
        try:
            with staged() as stage:
                tmp = stage.path_for(onnx_path)
                save(exported, tmp)
                _usual_mode(tmp)
        except OSError as err:
            raise ExportError(f"-o {onnx_path}: could not write the ONNX file: {err.strerror or err}.",
                              hint="Choose a writable location with enough free space. Nothing was written.") from None
    ins, outs = _signature(onnx_path)
    notes = [f"weights in {data_path.name}: the model is over the 2 GB single-file limit"] if data_path else []
    return ExportResult(onnx_path, stateful, ins, outs, exported.opset, _disk_size(onnx_path, data_path),
                        exported.seconds, data_path, notes)


def _save_pair(exported: Exported, onnx_path: Path, data_path: Path) -> None:
    """Large models: write MODEL.onnx and MODEL.onnx.data in a private folder beside the
    target (the .onnx names its data file, so both keep their final names) and move both."""
    folder = Path(tempfile.mkdtemp(prefix=f".{onnx_path.stem}.", dir=str(onnx_path.parent or Path("."))))
    try:
        tmp = folder / onnx_path.name
        exported.program.save(tmp, external_data=True)
        for written in (tmp, folder / data_path.name):
            _usual_mode(written)
        os.replace(folder / data_path.name, data_path)
        os.replace(tmp, onnx_path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            data_path.unlink()
        raise ExportError(f"-o {onnx_path}: could not write the ONNX files: {err.strerror or err}.",
                          hint="Choose a writable location with enough free space. Nothing was written.") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _usual_mode(path: Path) -> None:
    """Staged files are created private (mkstemp: 0600); give the output the permissions any
    new file would get under the user's umask, so it can be shared like the model file."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _disk_size(*paths: Path | None) -> int:
    return sum(p.stat().st_size for p in paths if p is not None and p.exists())


# ----------------------------------------------------------------------------- validation


def onnx_checks(path: str | Path, weights: str | Path | None = None, opset: int | None = None, *,
                keep_dir: str | Path | None = None) -> list[Check]:
    """The ONNX part of validation, one Check per check with its measured numbers: export
    and onnx.checker, onnxruntime vs PyTorch at batch 1 and 3 (stateless; and stateful for
    AiM files), and the stateful memory carried over three calls vs forward_with_memory.

    The exports go to a temporary folder, or to ``keep_dir`` (as ``stateless.onnx`` and
    ``stateful.onnx``) to inspect them afterwards. Bad input (not an aimgen file, weights
    that do not fit, an impossible opset) raises; a model that fails to export or to match
    is reported as a failed Check."""
    check_opset(opset)
    gen = load_generated(path, weights)
    with contextlib.ExitStack() as stack:
        folder = Path(keep_dir) if keep_dir is not None else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aimgen-onnx-")))
        if not gen.is_aim:
            return _variant_checks(gen, folder, False, lambda: export_model(gen, stateful=False, opset=opset))
        # one trace: the stateful graph is checked and saved first, then frozen into the stateless one
        try:
            stateful = export_model(gen, stateful=True, opset=opset)
        except ExportError as err:
            if not hasattr(err, "cause"):  # not a failed trace (e.g. an opset refused): report as is
                return [Check(f"onnx export ({kind})", False, str(err)) for kind in ("stateless", "stateful")]
            return [Check(f"onnx export ({kind})", False, str(export_failed(gen, kind, err.cause)))
                    for kind in ("stateless", "stateful")]
        later = _variant_checks(gen, folder, True, lambda: stateful)
        return _variant_checks(gen, folder, False, lambda: freeze_memory(stateful, initial_memory(gen))) + later


def _variant_checks(gen: Generated, folder: Path, stateful: bool, export: Callable[[], Exported]) -> list[Check]:
    kind = "stateful" if stateful else "stateless"
    try:
        exported = export()
        target = folder / f"{kind}.onnx"
        save(exported, target)
    except ExportError as err:
        return [Check(f"onnx export ({kind})", False, str(err))]
    how = "from the stateful trace, memory frozen; " if gen.is_aim and not stateful else ""
    checks = [Check(f"onnx export ({kind})", True,
                    f"opset {exported.opset}, {_size_text(_disk_size(target))}, {how}{exported.seconds:.1f} s; inputs "
                    f"{', '.join(exported.input_names)}; outputs {', '.join(exported.output_names)}",
                    {"seconds": round(exported.seconds, 3), "bytes": _disk_size(target), "opset": exported.opset})]
    checks.append(_checker(target, kind))
    if not checks[-1].ok:
        return checks
    try:
        session = _session(target)
    except Exception as err:
        return checks + [Check(f"onnxruntime load ({kind})", False, _first_line(err))]
    for batch in PARITY_BATCHES:
        checks.append(_parity(gen, session, exported, stateful, batch))
    if stateful:
        checks.append(_carry(gen, session, exported))
    return checks


def _checker(target: Path, kind: str) -> Check:
    import onnx

    try:
        onnx.checker.check_model(str(target), full_check=True)
    except Exception as err:
        return Check(f"onnx checker ({kind})", False, _first_line(err))
    return Check(f"onnx checker ({kind})", True, "onnx.checker.check_model passed (full check)")


def _session(target: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # deterministic and kind to shared machines
    return onnxruntime.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])


def _feeds(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> dict[str, Any]:
    return {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}


def _compare(ort_outs: Sequence[Any], torch_outs: Sequence[torch.Tensor]) -> tuple[bool, float, str]:
    """(within tolerance, max abs difference, what differed) over all outputs."""
    import numpy as np

    if len(ort_outs) != len(torch_outs):
        return False, math.inf, f"onnxruntime gave {len(ort_outs)} outputs, PyTorch {len(torch_outs)}"
    worst, ok = 0.0, True
    for got, ref in zip(ort_outs, torch_outs):
        ref_np = ref.detach().cpu().numpy()
        if got.shape != ref_np.shape:
            return False, math.inf, f"shape {list(got.shape)} in onnxruntime, {list(ref_np.shape)} in PyTorch"
        if ref_np.size:
            got64, ref64 = got.astype(np.float64), ref_np.astype(np.float64)
            worst = max(worst, float(np.max(np.abs(got64 - ref64))))
            ok = ok and bool(np.allclose(got64, ref64, atol=ATOL, rtol=RTOL, equal_nan=True))
    return ok, worst, ""


def _parity(gen: Generated, session: Any, exported: Exported, stateful: bool, batch: int) -> Check:
    kind = "stateful" if stateful else "stateless"
    name = f"onnxruntime parity ({kind}, batch {batch})"
    x = example_inputs(gen.module, gen.model, batch, seed=batch)
    args = (*x, initial_memory(gen)) if stateful else x
    reference = (_Stateful if stateful else _Stateless)(gen.model).eval()
    with torch.no_grad():
        expected = reference(*args)
    try:
        got = session.run(exported.output_names, _feeds(exported.input_names, args))
    except Exception as err:
        return Check(name, False, f"onnxruntime failed: {_first_line(err)}")
    ok, worst, why = _compare(got, expected)
    detail = why or f"max abs difference {worst:.2e} (atol {ATOL:g}, rtol {RTOL:g})"
    return Check(name, ok, detail, {"batch": batch, "max_abs_diff": worst, "atol": ATOL, "rtol": RTOL})


def _carry(gen: Generated, session: Any, exported: Exported) -> Check:
    """Feed each call's new_memory back as the next call's memory, in onnxruntime and in
    PyTorch's forward_with_memory, on three different batches; compare every output."""
    name = f"stateful carry ({CARRY_CALLS} calls)"
    torch_memory = initial_memory(gen)
    ort_memory = torch_memory.numpy()
    worst, ok = 0.0, True
    for call in range(CARRY_CALLS):
        x = example_inputs(gen.module, gen.model, PARITY_BATCHES[-1], seed=100 + call)
        with torch.no_grad():
            expected = _Stateful(gen.model)(*x, torch_memory)
        feeds = _feeds(exported.input_names[:-1], x)
        feeds[MEMORY_INPUT] = ort_memory
        try:
            got = session.run(exported.output_names, feeds)
        except Exception as err:
            return Check(name, False, f"onnxruntime failed on call {call + 1}: {_first_line(err)}")
        good, diff, why = _compare(got, expected)
        if why:
            return Check(name, False, f"call {call + 1}: {why}")
        ok, worst = ok and good, max(worst, diff)
        torch_memory, ort_memory = expected[-1], got[-1]
    moved = float((torch_memory - initial_memory(gen)).abs().max())
    detail = (f"max abs difference {worst:.2e} over {CARRY_CALLS} calls (outputs and memory); "
              f"the memory moved by up to {moved:.2e}")
    return Check(name, ok, detail, {"calls": CARRY_CALLS, "max_abs_diff": worst, "memory_moved": moved,
                                    "atol": ATOL, "rtol": RTOL})


__all__ = ["ExportResult", "export_file", "onnx_checks", "load_generated", "load_state_dict", "fit_weights",
           "export_model", "freeze_memory", "check_opset"]
