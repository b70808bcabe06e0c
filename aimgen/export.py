"""ONNX export of generated models.

Deployments run AiM models in onnxruntime. ONNX graphs are stateless and the exporter silently
drops in-place buffer updates, which is why there are two kinds of graph:

- **stateless** (default): the ``eval()`` model with its memory frozen (seed + carry folded in
  as constants); graph inputs and outputs are exactly those of the base model. For an AiM
  model it is made from the stateful graph (``freeze_memory``), so one trace serves both.
- **stateful**: the pure ``forward_with_memory(*inputs, memory) -> (outputs, new_memory)`` of
  the generated file, so ``memory`` is a graph input and ``new_memory`` a graph output, both
  with the seed's shape: a deployment feeds one call's ``new_memory`` to the next. The graph
  describes itself: ``memory`` has the initial memory (seed + carry) as its default value (an
  initializer of the same name), so a first call may omit it, and the model's
  ``metadata_props`` name the memory input and output, the carry rule and aimgen's version.

Both use the torch.export-based exporter with a dynamic batch axis; the graph is then
rewritten where the memory's sums stand in the way of onnxruntime's fusions
(aimgen.onnx_fusion: exact up to float rounding). Both write one
self-contained ``.onnx`` file (weights embedded) unless the model is too large for protobuf's
2 GB limit, in which case the weights go to ``MODEL.onnx.data`` beside it and the summary
says so. Files are written all-or-nothing (see aimgen.files). The checks that an export
computes what the model computes are in aimgen.onnx_checks.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from . import __version__
from .errors import ExportError
from .files import check_targets, staged
from .loader import flat_tensors
from .onnx_fusion import fuse_for_onnxruntime
from .readback import Generated, WeightsChoice, input_names, load_generated

#: The torch.export-based exporter emits opset 18 and newer; older targets are not produced.
MIN_OPSET = 18
#: protobuf refuses messages over 2 GiB; keep a margin for the graph itself.
SINGLE_FILE_LIMIT = 2 * 1024**3 - 64 * 1024**2
#: The export traces at this batch size (not 0 or 1, which torch.export would specialise).
EXPORT_BATCH = 2
MEMORY_INPUT, MEMORY_OUTPUT = "memory", "new_memory"
CARRY_RULE = (f"Feed each call's {MEMORY_OUTPUT} as the next call's {MEMORY_INPUT}. Omit {MEMORY_INPUT} on the "
              f"first call (or to start over) and the graph uses its default, the learned initial memory "
              f"(seed + carry at export time). {MEMORY_OUTPUT} is the batch mean of the memory after the call.")


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
    weights: WeightsChoice | None = None
    external_data: Path | None = None
    optional: list[str] = field(default_factory=list)  # inputs with a default value

    def summary(self) -> str:
        """One line: where, what goes in and out, how big, how long."""
        kind = "stateful" if self.stateful else "stateless"
        ins = ", ".join(f"{n}{shape_text(s)}" + (" (optional: defaults to the initial memory)"
                                                 if n in self.optional else "") for n, s in self.inputs)
        outs = ", ".join(f"{n}{shape_text(s)}" for n, s in self.outputs)
        where = str(self.path)
        if self.external_data is not None:
            where += f" (+ weights in {self.external_data.name}: over the 2 GB single-file limit)"
        return (f"wrote {where}: {kind} ONNX, opset {self.opset}, inputs {ins} -> outputs {outs}, "
                f"{size_text(self.size)}, exported in {self.seconds:.1f} s")


def shape_text(shape: Sequence[int | str]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def size_text(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# ----------------------------------------------------------------------------- wrappers


class Stateful(nn.Module):
    """``forward_with_memory`` as a module's forward, flattened to ``(*outputs, new_memory)``
    so the exporter sees the memory as a plain input and the new memory as a plain output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, memory = self.model.forward_with_memory(*args)
        return (*flat_tensors(outputs), memory)


class Stateless(nn.Module):
    """The model's forward with its outputs flattened to a tuple of tensors, so they can be
    named ``output``, ``output_1``, ... whatever structure the base model returns."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flat_tensors(self.model(*args)))


def output_names(count: int) -> list[str]:
    return ["output"] + [f"output_{i}" for i in range(1, count)]


# ----------------------------------------------------------------------------- export


@dataclass
class Exported:
    """An export held in memory: the ONNX program plus its graph signature. ``seconds`` is the
    time this graph took; ``derived`` says it was made from another export (no trace of its own)."""

    program: Any  # torch.onnx.ONNXProgram
    input_names: list[str]
    output_names: list[str]
    opset: int
    seconds: float
    nbytes: int
    derived: bool = False
    trace_seconds: float = 0.0  # for a derived graph: the time of the export it came from

    @property
    def total_seconds(self) -> float:
        return self.seconds + self.trace_seconds


def check_opset(opset: int | None) -> None:
    """Refuse an opset the exporter cannot produce before spending time on the export: it
    would otherwise fall back to opset 18 with only a warning."""
    if opset is None:
        return
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"`opset={opset}`: the torch.export-based ONNX exporter produces opsets "
                          f"{MIN_OPSET} to {newest} (the newest this onnx {onnx.__version__} knows).",
                          hint=f"Give `opset=N` between {MIN_OPSET} and {newest}, or leave it out for the "
                          "exporter's default.", field="opset")


def export_model(gen: Generated, *, stateful: bool, opset: int | None = None) -> Exported:
    """Export forward_with_memory (stateful) or the eval() model (stateless) with a dynamic
    batch axis on the data inputs; the memory input keeps the seed's shape.

    An AiM model's stateless graph is its stateful graph with the memory frozen (see
    ``freeze_memory``): one trace serves both kinds, and the two graphs cannot drift apart."""
    check_opset(opset)
    if stateful and not gen.is_aim:
        raise ExportError(f"{gen.path}: `stateful=True` needs an AiM model, but this file is a plain rendering "
                          "(kind 'plain', no memory).", hint="Export it without `stateful=True`.", field="stateful")
    if gen.is_aim and not stateful:
        return freeze_memory(trace_export(gen, stateful=True, opset=opset, kind="stateless"), gen)
    return trace_export(gen, stateful=stateful, opset=opset, kind="stateful" if stateful else "stateless")


def freeze_memory(exported: Exported, gen: Generated) -> Exported:
    """The stateless graph from a stateful export (changed in place): the memory input becomes
    a constant holding the initial memory, the new-memory output goes, and so does every node
    that only it used."""
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    start = time.perf_counter()
    model = exported.program.model
    graph = model.graph
    (value,) = [v for v in graph.inputs if v.name == MEMORY_INPUT]
    _set_default(graph, value, gen.initial_memory())
    graph.inputs.remove(value)
    (out,) = [v for v in graph.outputs if v.name == MEMORY_OUTPUT]
    graph.outputs.remove(out)
    RemoveUnusedNodesPass()(model)
    _describe(model, gen, stateful=False)
    return Exported(exported.program, exported.input_names[:-1], exported.output_names[:-1], exported.opset,
                    time.perf_counter() - start, exported.nbytes, derived=True, trace_seconds=exported.total_seconds)


def _set_default(graph: Any, value: Any, memory: torch.Tensor) -> None:
    """Give a graph input a default value: an initializer of the same name."""
    import onnx_ir as ir

    value.const_value = ir.Tensor(memory.detach().cpu().numpy(), name=value.name)
    graph.register_initializer(value)


def _describe(model: Any, gen: Generated, *, stateful: bool) -> None:
    """``metadata_props``: what the graph is and, for the stateful one, how to carry the memory."""
    props = {"aimgen.version": __version__, "aimgen.source": str(gen.meta.get("source", "")),
             "aimgen.graph": "stateful" if stateful else "stateless"}
    if gen.is_aim:
        shape = ",".join(str(d) for d in gen.meta.get("memory_shape", []))
        if stateful:
            props.update({"aimgen.memory_input": MEMORY_INPUT, "aimgen.memory_output": MEMORY_OUTPUT,
                          "aimgen.memory_shape": shape, "aimgen.memory_default": "seed + carry",
                          "aimgen.carry": CARRY_RULE})
        else:
            props["aimgen.memory"] = f"frozen into the graph: seed + carry at export time, shape {shape}"
    model.metadata_props.update(props)


def trace_export(gen: Generated, *, stateful: bool, opset: int | None, kind: str) -> Exported:
    """One torch.onnx export (dynamo) of the model at EXPORT_BATCH, from the file's own example
    inputs; ``kind`` names the graph it is for in a failure message."""
    x = gen.example_inputs(EXPORT_BATCH)
    names = input_names(gen.model, len(x))
    batch = torch.export.Dim("batch", min=1)
    dynamic: list[dict[int, Any] | None] = [{0: batch} if t.dim() else None for t in x]
    if stateful:
        wrapper: nn.Module = Stateful(gen.model)
        args = (*x, gen.initial_memory())
        names = names + [MEMORY_INPUT]
        dynamic.append(None)
    else:
        wrapper, args = Stateless(gen.model), x
    wrapper.eval()
    log = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), torch.no_grad(), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # the exporter's warnings are noise unless it fails
            program = torch.onnx.export(wrapper, args, dynamo=True, input_names=names,
                                        dynamic_shapes={"args": tuple(dynamic)}, opset_version=opset,
                                        external_data=False, verbose=False)
    except Exception as err:
        log.writelines(f"{w.category.__name__}: {w.message}\n" for w in caught)
        raise export_failed(gen, kind, f"{first_line(err)}{_log_tail(log)}") from err
    seconds = time.perf_counter() - start
    produced = _opset_of(program.model_proto)
    if opset is not None and produced != opset:
        raise ExportError(f"`opset={opset}`: the exporter could not convert the model to opset {opset} and "
                          f"produced opset {produced} instead{_log_tail(log)}",
                          hint=f"Leave the opset out (opset {produced} works), or try another opset between "
                          f"{MIN_OPSET} and the newest onnx knows.", field="opset")
    outs = name_outputs(program.model.graph, stateful)
    if stateful:
        (memory,) = [v for v in program.model.graph.inputs if v.name == MEMORY_INPUT]
        _set_default(program.model.graph, memory, gen.initial_memory())
    _describe(program.model, gen, stateful=stateful)
    fuse_for_onnxruntime(program.model)
    nbytes = sum(t.numel() * t.element_size() for t in [*gen.model.parameters(), *gen.model.buffers()])
    return Exported(program, names, outs, produced, seconds, nbytes)


def name_outputs(graph: Any, stateful: bool) -> list[str]:
    """Name the graph's outputs ``output``, ``output_1``, ... (and ``new_memory`` last in a stateful
    graph) after the export, as the exporter's ``output_names`` would: their number is the
    export's own, so no forward runs beforehand to count them."""
    count = len(graph.outputs)
    names = output_names(count - 1) + [MEMORY_OUTPUT] if stateful else output_names(count)
    for value, name in zip(graph.outputs, names):
        value.name = name
    return names


def export_failed(gen: Generated, kind: str, cause: str) -> ExportError:
    """The one message for an export that failed; ``cause`` is kept on the error so one failed
    trace can be reported for each kind of graph it was meant to give."""
    return ExportError(f"{gen.path}: the ONNX export ({kind}) failed: {cause}",
                       hint="Run with --debug for the traceback, and please report it with the file "
                       "(aimgen should only write exportable models).", cause=cause)


def _opset_of(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def first_line(err: BaseException) -> str:
    """The line of an error that says what went wrong, without colour codes. The exporter wraps
    the real cause in a page of advice, with the cause under '## Exception summary'."""
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


# ----------------------------------------------------------------------------- writing


def save(exported: Exported, target: Path) -> Path | None:
    """Write the program to ``target``: one self-contained file, or with its weights in
    ``target.data`` when they exceed protobuf's 2 GB limit (returned then)."""
    if exported.nbytes < SINGLE_FILE_LIMIT:
        exported.program.save(target, external_data=False)
        return None
    exported.program.save(target, external_data=True)
    return target.with_name(target.name + ".data")


def signature(path: Path) -> tuple[list[tuple[str, list[int | str]]], list[tuple[str, list[int | str]]], list[str]]:
    """(inputs, outputs, inputs that have a default value) of an ONNX file, read without its weights."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)

    def dims(value: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    defaults = {t.name for t in proto.graph.initializer}
    return ([(v.name, dims(v)) for v in proto.graph.input], [(v.name, dims(v)) for v in proto.graph.output],
            [v.name for v in proto.graph.input if v.name in defaults])


def export_file(source_path: str | Path, onnx_path: str | Path, *, weights: str | Path | None = None,
                random_weights: bool = False, stateful: bool = False, opset: int | None = None,
                force: bool = False) -> ExportResult:
    """``aimgen export``: build the model from a generated file with its weights (``weights``,
    else the file beside it, else random: see aimgen.readback) and write it as ONNX,
    all-or-nothing; an existing output is refused unless ``force``."""
    source_path, onnx_path = Path(source_path), Path(onnx_path)
    check_opset(opset)
    check_targets([onnx_path], force)  # refuse before any work
    gen = load_generated(source_path, weights, random_weights=random_weights)
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
            raise ExportError(f"{onnx_path}: could not write the ONNX file: {err.strerror or err}.",
                              hint="Choose a writable location with enough free space. Nothing was written.") from None
    ins, outs, optional = signature(onnx_path)
    return ExportResult(onnx_path, stateful, ins, outs, exported.opset, disk_size(onnx_path, data_path),
                        exported.total_seconds, gen.weights, data_path, optional)


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
        raise ExportError(f"{onnx_path}: could not write the ONNX files: {err.strerror or err}.",
                          hint="Choose a writable location with enough free space. Nothing was written.") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _usual_mode(path: Path) -> None:
    """Staged files are created private (mkstemp: 0600); give the output the permissions any
    new file would get under the user's umask, so it can be shared like the model file."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def disk_size(*paths: Path | None) -> int:
    return sum(p.stat().st_size for p in paths if p is not None and p.exists())

