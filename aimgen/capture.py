"""The second capture path: ``torch.export`` (non-strict), for models torch.fx cannot trace.

Hugging Face transformers decorate their forwards in ways torch.fx's symbolic tracer cannot
follow ("co_varnames is too small"), and transformers 5 no longer ships a tracer of its own.
``torch.export.export(..., strict=False)`` runs the forward as Python does, on fake tensors, and
records every aten operation. This module turns that graph into the ``Traced`` that
``tracing.trace`` returns, so the planner and the code generator see what they see for a
torch.fx graph:

- parameters and buffers are ``get_attr`` nodes with their qualified names (one per module
  call that reads them, placed before their first use in it);
- torch.nn leaf modules come back as ``call_module`` nodes: the nodes one call of a torch.nn
  layer (a weight layer, an embedding, dropout, a norm or an activation) made, when that call
  took one tensor and returned one, become ``self.dense(x)`` again, so the planner taps
  weight layers by their names and dropout follows ``train()``/``eval()`` as the module does.
  A layer written as ``addmm(bias, x.view(-1, d), weight)`` (transformers' ``Conv1D``, GPT-2's
  projections) becomes ``F.linear(x, weight.t(), bias)``, the same
  function, which the functional kind taps; aten ``linear``/``conv`` on a parameter become
  ``F.linear``/``F.conv*d``, tapped the same way;
- ``nn_module_stack`` is written as torch.fx writes it (``{key: (qualified name, type)}``, one
  key per call) and ``stack_trace`` is kept, so the code generator writes one class per block
  and names locals from the source;
- sizes stay symbolic: the batch (and a sequence length, image sizes where the model allows)
  are dynamic dimensions, and each size a block reads is read inside it
  (``batch_size = hidden_states.shape[0]``) instead of being passed down from the inputs;
- ``self.training``: exported in train and in eval mode; where the two graphs differ only by
  constants those become ``training_values`` (as ``tracing.trace`` does), and a
  ``.contiguous()`` only one mode needs is kept in both (it changes no value);
- the output keeps its structure: a ``ModelOutput`` (or any dataclass, tuple, dict) is built
  as the base model builds it, so ``model(x).logits`` works on the generated model.

Arguments that are not given keep their defaults (``tracing.fixed_arguments``), except
``use_cache``, which is fixed to False: a key/value cache is not a tensor output a standalone
model can return. The header of the generated file says what was fixed.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import dataclasses
import io
import inspect
import logging
import operator
import re
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .errors import KeepWhole, TraceError
from .sourcecopy import is_namedtuple, is_user_object
from .taps import REGISTRY
from .taps.linear import computes_f_linear, is_linear_subclass
from .tracing import (NOT_MODEL_CODE, Traced, as_found, fixed_arguments, flat_values, forward_inputs, op_name,
                      stack_location)

CAPTURE = "torch.export"
aten = torch.ops.aten

_INT64_MAX = 9223372036854775807

# aten calls on a parameter that the functional tap kinds know as torch functions (same arguments)
_AS_TORCH = {
    aten.linear.default: F.linear,
    aten.conv1d.default: F.conv1d, aten.conv2d.default: F.conv2d, aten.conv3d.default: F.conv3d,
    # padding given as "same"/"valid" (Hugging Face EfficientNet's depthwise convs)
    aten.conv1d.padding: F.conv1d, aten.conv2d.padding: F.conv2d, aten.conv3d.padding: F.conv3d,
    aten.conv_transpose1d.default: F.conv_transpose1d, aten.conv_transpose2d.input: F.conv_transpose2d,
    aten.conv_transpose3d.input: F.conv_transpose3d,
}
# F.interpolate's kernels (with size, align_corners where the mode has it, scale factors): mode
_UPSAMPLE = {
    aten.upsample_nearest1d.vec: "nearest", aten.upsample_nearest2d.vec: "nearest",
    aten.upsample_nearest3d.vec: "nearest", aten._upsample_nearest_exact1d.vec: "nearest-exact",
    aten._upsample_nearest_exact2d.vec: "nearest-exact", aten._upsample_nearest_exact3d.vec: "nearest-exact",
    aten.upsample_linear1d.vec: "linear", aten.upsample_bilinear2d.vec: "bilinear",
    aten.upsample_trilinear3d.vec: "trilinear", aten.upsample_bicubic2d.vec: "bicubic",
}
# checks the exporter inserts; they compute nothing
_CHECKS = ("_assert_tensor_metadata", "_assert_scalar", "_assert_async", "sym_constrain_range",
           "sym_constrain_range_for_size")
# ops that return their input's values unchanged (only the memory layout may change)
_SAME_VALUES = (aten.contiguous.default, aten.clone.default)
# torch.nn leaves that return more than one tensor, or take more than one
_NOT_RAISED = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoder,
               nn.TransformerDecoder, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
               nn.AdaptiveLogSoftmaxWithLoss, nn.Sequential, nn.ModuleList, nn.ModuleDict)


# ----------------------------------------------------------------------------- the entry point


#: seconds torch.export may take where it is only tried for more taps (torch.fx's graph stands
#: otherwise): with symbolic spatial sizes its shape reasoning can run for many minutes (timm's
#: mobilevitv2_050: over ten)
SEE_MORE_SECONDS = 120.0

#: seconds torch.export may reason about symbolic sizes besides the batch before the capture
#: takes them at the example's (RegionViT's einops window patterns: no end in sight; at its
#: example size, 4 s); the batch stays symbolic. As SEE_MORE_SECONDS, a limit in time: on a
#: loaded machine a model near it may come out either way, and the header says which
SYMBOLIC_SECONDS = 120.0


_DEADLINES: list[float] = []   # the time_limit blocks open, innermost last (time.monotonic())


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TraceError in the block after ``seconds`` (SIGALRM: the main thread on Unix only;
    elsewhere, no limit). Should code in the block swallow that error, the block runs to its
    end and the error is raised then: a result past the limit is never used. Limits nest: an
    outer one that ends first governs, and an inner one hands the rest of the outer's time back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    deadline = time.monotonic() + seconds
    if _DEADLINES and _DEADLINES[-1] <= deadline:   # the outer limit comes first
        yield
        return
    late = TraceError(f"torch.export took more than {seconds:g} s", hint="")
    fired = []

    def expired(signum, frame):
        fired.append(True)
        raise late

    previous = signal.signal(signal.SIGALRM, expired)
    _DEADLINES.append(deadline)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _DEADLINES.pop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if _DEADLINES:   # the outer limit's time left (at least a moment: it may be due)
            signal.setitimer(signal.ITIMER_REAL, max(_DEADLINES[-1] - time.monotonic(), 1e-3))
    if fired:
        raise late


def export_trace(model: nn.Module, make_inputs: Callable[..., tuple], *, source: str = "the model",
                 n_inputs: int | None = None, leaf_names: frozenset[str] = frozenset(),
                 fx_error: BaseException | None = None, symbolic_seconds: float | None = None) -> Traced:
    """Capture ``model`` with torch.export in train and eval mode and reconcile the two graphs
    into a ``Traced`` (``capture == "torch.export"``). ``make_inputs(batch=None)`` gives the
    example inputs. ``fx_error``: why torch.fx could not trace it (quoted if this fails too).
    Sizes besides the batch are symbolic where the exporter can reason about them within
    ``symbolic_seconds`` (None: no limit), else fixed at the example's, which the header says."""
    fixed = fixed_arguments(model, n_inputs, source)
    overrides = {}
    if "use_cache" in fixed and fixed["use_cache"] is not False:
        overrides["use_cache"] = False   # a cache object is not an output a standalone model returns
    fixed = {**fixed, **overrides}
    inputs = _export_inputs(make_inputs)
    names = [p.name for p in forward_inputs(model)][:len(inputs)]
    leaves = frozenset(leaf_names)
    sized = symbolic_seconds   # symbolic sizes: within that many seconds (None: any); 0: the example's
    with _dataclass_outputs(model, inputs, overrides):
        programs = {}
        for training in (True, False):
            programs[training], sized = _export_sized(model, inputs, overrides, names, training, source, fx_error,
                                                      sized)
            _inline_regions(programs[training])
    why = _why(fx_error) + (
        "" if sized != 0 else "; sizes besides the batch fixed at the example's (sizes=example)"
        if symbolic_seconds == 0 else f"; sizes besides the batch fixed at the example's (torch.export "
        f"reasoned about them for over {symbolic_seconds:g} s; sizes='any' waits)")
    for raising in (True, False):   # modules raised back to calls; else, should that fail a check, aten only
        graphs, flags, kept = _reconciled(model, programs, names, leaves, raising, source)
        reasons = {q: "listed in leaf=" for q in leaves} if raising else {}
        reasons.update(kept)
        traced = ExportTraced(root=model, graph=graphs[False], training_values=flags, capture=CAPTURE,
                              fixed_inputs=fixed, leaf_names=(leaves if raising else frozenset()) | set(kept),
                              leaf_reasons=reasons, why=why)
        try:
            _check_function(traced, make_inputs, overrides, source)
            break
        except TraceError:
            if not raising:
                raise
    for node in traced.graph.nodes:
        node.meta.pop("val", None)
        node.meta.pop("tensor_meta", None)
    return traced


def _reconciled(model: nn.Module, programs: dict, names: list[str], leaves: frozenset[str], raising: bool,
                source: str) -> tuple[dict[bool, fx.Graph], dict, dict[str, str]]:
    """The train() and eval() graphs made one (``_reconcile``), and the modules kept whole for it
    (called in both graphs, their own code choosing the path), with why: one that computes only
    in train() (stochastic depth), and one whose forward takes another path in train() than in
    eval() (transformers' Mamba mixer runs a fused function in training)."""
    kept: dict[str, str] = {}
    while True:
        calls = frozenset(kept)
        graphs = {training: _Lowering(model, ep, names, leaves, raising, calls).graph()
                  for training, ep in programs.items()}
        stochastic = _train_only(graphs[True], graphs[False], model) - calls
        if stochastic:   # stochastic depth: a call in train(), nothing in eval(); kept whole in both
            graphs[True] = _Lowering(model, programs[True], names, leaves, raising, calls | stochastic).graph()
        try:
            flags = _reconcile(graphs[True], graphs[False], model, source, stochastic)
        except ModeSplit as err:
            if not raising or not err.owner or err.owner in kept or err.owner in leaves:
                raise
            kept[err.owner] = f"its forward takes another path in train() than in eval(), near {err.where}"
            continue
        kept.update({q: _TRAIN_ONLY for q in stochastic})
        return graphs, flags, kept


@dataclasses.dataclass
class ExportTraced(Traced):
    """A ``Traced`` made by torch.export, with why torch.fx's trace was not used."""

    why: str = ""


def _why(fx_error: BaseException | None) -> str:
    """Why the torch.export path was taken, as the header and report say it."""
    if isinstance(fx_error, HiddenLayers):
        return fx_error.message
    return "torch.fx could not trace the root module" + (f" ({_first_line(fx_error)})" if fx_error is not None else "")


def hidden_layers(traced: Traced, leaves: frozenset[str]) -> list[str]:
    """Weight layers (of a tap kind) inside the modules the capture kept whole by itself (not
    those listed in ``leaves``): layers that cannot read the memory."""
    hidden = []
    for q in sorted(set(traced.leaf_names) - set(leaves)):
        hidden += [f"{q}.{n}" for n, m in traced.root.get_submodule(q).named_modules()
                   if n and type(m) in REGISTRY.module_types]
    return hidden


class HiddenLayers(TraceError):
    """Why the torch.export path was taken though torch.fx traced the root."""

    def __init__(self, traced: Traced, hidden: list[str]):
        kept = sorted({q for q in traced.leaf_names if any(h.startswith(q + ".") for h in hidden)})
        super().__init__(f"torch.fx kept {len(kept)} module{'s' if len(kept) != 1 else ''} whole ({kept[0]}: "
                         f"{traced.leaf_reasons.get(kept[0], 'untraceable')}), which would hide {len(hidden)} weight "
                         "layers from the memory")


def check_fx(traced: Traced, source: str) -> None:
    """Raise TraceError where torch.fx traced the root but its graph cannot stand for it: a
    forward taking ``*args``/``**kwargs`` (torch.fx makes them inputs the caller never gives)."""
    star = [n.target for n in traced.graph.nodes if n.op == "placeholder" and str(n.target).startswith("*")]
    if star:
        raise TraceError(f"torch.fx cannot trace {source}: its forward takes {', '.join(star)}, which torch.fx "
                         "makes an input of the graph.")


def header_lines(traced: Traced) -> list[str]:
    """What the generated file's header says about a torch.export capture."""
    if traced.capture != CAPTURE:
        return []
    lines = [report_note(traced)]
    for cls in output_classes(traced):
        lines.append(f"returns {cls.__name__} as the base model does, imported from {cls.__module__}")
    return lines


def output_classes(traced: Traced) -> list[type]:
    """Classes from installed libraries the forward builds its output with (a ModelOutput)."""
    return [n.target for n in traced.graph.nodes
            if n.op == "call_function" and inspect.isclass(n.target) and _library_class(n.target)]


def depends_for(traced: Traced, depends: list[str]) -> str:
    """What the generated file imports its non-torch packages for, as the header says it."""
    outputs = {c.__module__.split(".")[0] for c in output_classes(traced)}
    if depends and set(depends) <= outputs:
        return "the base model's output class"
    return "the base model's layers"


def report_note(traced: Traced) -> str | None:
    """The report's line about the capture path, or None for torch.fx."""
    if traced.capture != CAPTURE:
        return None
    return f"captured with torch.export (non-strict): {short_paths(traced.why)}"


def short_paths(text: str) -> str:
    """File paths as a reader finds them, not as this machine holds them (a generated file
    says nothing that changes from machine to machine): ``diffusers/models/resnet.py:373``
    for a library's file, the file name for any other."""
    def short(m: re.Match) -> str:
        path = m.group(0)
        return path.split("site-packages/")[-1] if "site-packages/" in path else Path(path).name
    return re.sub(r"/[^\s:()`'\"]+\.py", short, text)


def _library_class(cls: type) -> bool:
    """A class of an installed library (imported by the generated file; the user's own are copied)."""
    mod = getattr(cls, "__module__", "") or ""
    return not mod.startswith(("torch", "builtins", "collections")) and not is_user_object(cls)


# ----------------------------------------------------------------------------- exporting


def _export_inputs(make_inputs) -> tuple[torch.Tensor, ...]:
    """The example inputs, at batch 2 at least: torch.export specialises a size of 1."""
    inputs = make_inputs()
    if inputs and inputs[0].dim() and inputs[0].shape[0] < 2:
        inputs = make_inputs(batch=2)
    return tuple(inputs)


@contextlib.contextmanager
def _dataclass_outputs(model: nn.Module, inputs, overrides: dict):
    """Dataclasses the model returns, known to torch.export while it runs (a user's own output
    class is not registered as a pytree node; transformers' ModelOutput classes are)."""
    import torch.utils._pytree as pytree

    was = model.training
    try:
        model.eval()
        with torch.no_grad(), as_found(model):   # (a table its first call makes is the export's to see)
            out = model(*inputs, **overrides)
    except Exception:
        out = None   # the export reports what fails
    finally:
        model.train(was)
    found, stack = [], [out]
    while stack:
        v = stack.pop()
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            if type(v) not in pytree.SUPPORTED_NODES and type(v) not in found:
                found.append(type(v))
            stack += [getattr(v, f.name) for f in dataclasses.fields(v)]
        elif isinstance(v, (list, tuple)):
            stack += list(v)
        elif isinstance(v, dict):
            stack += list(v.values())
    registered = []
    try:
        for cls in found:
            torch.export.register_dataclass(cls)
            registered.append(cls)
        yield
    finally:
        for cls in registered:
            pytree._deregister_pytree_node(cls)


def _dynamic(x: torch.Tensor, sized: bool = True):
    """Every axis dynamic where the model allows it (the exporter keeps what it must fixed), or
    only the batch."""
    return {d: torch.export.Dim.AUTO for d in range(x.dim() if sized else min(x.dim(), 1)) if x.shape[d] > 1}


def _export_sized(model: nn.Module, inputs, overrides: dict, names: list[str], training: bool, source: str,
                  fx_error: BaseException | None, seconds: float | None):
    """One export, with symbolic sizes if the exporter is done with them within ``seconds``
    (None: no limit), else (or given 0) at the example's sizes besides the batch. Returns the
    program and the ``seconds`` the next export gets (0 once sizes were fixed)."""
    if seconds != 0:
        start = time.perf_counter()
        try:
            with contextlib.ExitStack() as stack, as_found(model):
                if seconds is not None:
                    stack.enter_context(time_limit(seconds))
                return _export(model, inputs, overrides, names, training, source, fx_error), seconds
        except TraceError:
            if seconds is None or time.perf_counter() - start < seconds:
                raise
    with as_found(model):
        return _export(model, inputs, overrides, names, training, source, fx_error, sized=False), 0


def _export(model: nn.Module, inputs, overrides: dict, names: list[str], training: bool, source: str,
            fx_error: BaseException | None, sized: bool = True):
    was = model.training
    model.train(training)
    shapes = {name: _dynamic(x, sized) for name, x in zip(names, inputs)}
    shapes.update({k: None for k in overrides})
    quiet = [logging.getLogger(n) for n in ("torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes",
                                            "torch._subclasses.fake_tensor", "torch._dynamo")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.CRITICAL + 1)   # a failure is reported once, by aimgen
        # the exporter prints the partial graph of a failed export to stderr: not for the user
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            if len(names) != len(inputs):   # a forward(*args): positional, without overrides
                return torch.export.export(model, tuple(inputs), strict=False,
                                           dynamic_shapes=tuple(_dynamic(x, sized) for x in inputs))
            return torch.export.export(model, tuple(inputs), dict(overrides), strict=False, dynamic_shapes=shapes)
    except Exception as err:
        failed = _fails_in_train(model, inputs, overrides, source) if training else None
        raise (failed or _refusal(model, source, err, fx_error)) from err
    finally:
        model.train(was)
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def _fails_in_train(model: nn.Module, inputs, overrides: dict, source: str) -> TraceError | None:
    """The refusal for a model whose own train() forward fails on the example input, run
    eagerly (no tracing); None where it runs. Buffers (BatchNorm statistics) are restored."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    try:
        with torch.no_grad():
            model(*inputs, **overrides)
        return None
    except Exception as err:   # noqa: BLE001 - the model's own failure is the message
        if _fails_in_eval(model, inputs, overrides):
            return TraceError(
                f"{_named(source, model)} itself fails on aimgen's example input, in train() and eval(): "
                f"{type(err).__name__}: {_first_line(err)}.",
                hint="Check --input-shape (one per model input, batch first): the model may need larger inputs, "
                "or particular values (aimgen makes random ones; integers below the smallest embedding table).")
        return TraceError(
            f"{_named(source, model)} fails in train() mode on the example input alone, before any tracing: "
            f"{type(err).__name__}: {_first_line(err)}.",
            hint="aimgen captures the model in train() as well as eval() (the memory is learned in training), "
            "from its inputs alone. A model whose training forward needs more (targets or labels, as "
            "torchvision's detection models do) cannot be converted whole: convert the part that computes "
            "features, e.g. a builder function that returns its `backbone`.")
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])


def _fails_in_eval(model: nn.Module, inputs, overrides: dict) -> bool:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs, **overrides)
        return False
    except Exception:   # noqa: BLE001 - only whether it fails is asked
        return True
    finally:
        model.train(was)


def _refusal(model: nn.Module, source: str, err: BaseException, fx_error: BaseException | None) -> TraceError:
    loc = user_location(err) or source
    first = _first_line(err)
    fx = f" (torch.fx failed first: {_first_line(fx_error)})" if fx_error is not None else ""
    fx_hint = getattr(fx_error, "hint", None)
    return TraceError(
        f"{_named(source, model)} cannot be captured: torch.export (non-strict) failed at {loc}: "
        f"{type(err).__name__}: {first}{fx}.",
        hint="For torch.export, make that line traceable: no Python control flow on tensor values (torch.where, "
        "or torch.cond for a branch), no .item()/.tolist() in forward, outputs of tensors, tuples, dicts or "
        "dataclasses." + (f" For torch.fx: {fx_hint}" if fx_hint else ""))


def _named(source: str, model: nn.Module) -> str:
    """``source (ModelClass)``: the model class is named even when the source is a file."""
    cls = type(model).__name__
    return source if source == cls else f"{source} ({cls})"


def _first_line(err: BaseException | None) -> str:
    """The first sentence of an error's message (aimgen's own: without its hint)."""
    if err is None:
        return ""
    text = (getattr(err, "message", None) or str(err)).strip()
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            cut = [i for i in (line.find(". "), line.find(" (unhinted")) if i > 0]
            return (line[:min(cut)] if cut else line.rstrip("."))[:400]
    return type(err).__name__


def user_location(err: BaseException) -> str | None:
    """file:line (`code`) of the innermost frame of model code (outside torch and aimgen) in the
    traceback, or in the exporter's own message when it quotes one."""
    loc = None
    for frame in traceback.extract_tb(err.__traceback__):
        fname = str(Path(frame.filename).resolve()) if frame.filename else ""
        if fname.startswith(NOT_MODEL_CODE) or not fname.endswith(".py"):
            continue
        loc = f"{frame.filename}:{frame.lineno} (`{(frame.line or '').strip()}`)"
    if loc is None:
        for m in re.finditer(r'File "([^"]+\.py)", line (\d+)', str(err)):
            if not str(Path(m.group(1)).resolve()).startswith(NOT_MODEL_CODE):
                loc = f"{m.group(1)}:{m.group(2)}"
    return loc


# ----------------------------------------------------------------------------- lowering


def _innermost(node: fx.Node) -> tuple[str, str]:
    """(key, qualified name) of the innermost module call that made the node ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    key, (qual, _) = list(stack.items())[-1]
    return key, qual


def _stand_in(new: fx.Node, old: fx.Node) -> None:
    """``new`` replaces ``old`` (and the run that made it): it takes its module stack, value and
    stack trace."""
    new.meta.update(nn_module_stack=dict(old.meta["nn_module_stack"]), val=old.meta.get("val"))
    if old.meta.get("stack_trace"):
        new.meta["stack_trace"] = old.meta["stack_trace"]


def _is_tensor(node) -> bool:
    return isinstance(node, fx.Node) and isinstance(node.meta.get("val"), torch.Tensor)


class _Lowering:
    """One exported program as a torch.fx-style graph over the user's module. ``stochastic``:
    modules raised to calls even when nothing else is (they compute only in train())."""

    def __init__(self, model: nn.Module, ep, names: list[str], leaves: frozenset[str], raising: bool = True,
                 stochastic: frozenset[str] = frozenset()):
        self.model = model
        self.ep = ep
        self.names = names
        self.leaves = leaves
        self.stochastic = stochastic
        self.raising = raising
        self.g = fx.Graph()
        self._names: dict[int, str] | None = None

    def graph(self) -> fx.Graph:
        self._copy()
        self._drop_checks()
        self._functional_inplace()
        self._sizes_where_used()
        self._dead_code()
        if self.raising:
            self._linear_layers()
            self._linear_subclasses()
        if self.raising or self.stochastic:
            self._raise_leaves()
        self._as_torch()
        self._dead_code()
        self._devices()
        self._local_sizes()
        self._dead_code()
        self._name_sizes()
        self._name_masks()
        self.g.lint()
        return self.g

    # --- copying -------------------------------------------------------------------------
    def _real_name(self, qual: str) -> str | None:
        """The module's name in the model, for a path the exporter recorded through a slice of
        a Sequential (``model.slice(None, -1, None).3.conv``: ultralytics' RT-DETR runs
        ``for m in self.model[:-1]``); None where it names no module of the model."""
        if "slice(" not in qual:
            return qual
        if self._names is None:
            self._names = {id(m): name for name, m in self.model.named_modules()}
        module = self.model
        try:
            for part in qual.split("."):
                bounds = re.fullmatch(r"slice\((-?\d+|None), (-?\d+|None), (-?\d+|None)\)", part)
                module = module[slice(*(None if b == "None" else int(b) for b in bounds.groups()))] \
                    if bounds else module.get_submodule(part)
        except (AttributeError, TypeError, IndexError):
            return None
        return self._names.get(id(module))

    def _stack(self, meta) -> dict:
        out = {}
        for key, value in (meta or {}).items():
            qual = self._real_name(value[0]) if isinstance(value, tuple) else ""
            if not qual or key.startswith("_empty_nn_module_stack"):
                continue
            short = key[len("L__self__"):] if key.startswith("L__self__") else key
            try:
                kind = type(self.model.get_submodule(qual))
            except AttributeError:
                kind = value[1]
            out[short or qual] = (qual, kind)
        return out

    def _copy(self) -> None:
        from torch.export.graph_signature import InputKind

        sig = self.ep.graph_signature
        attrs, consts, users = {}, {}, []
        for spec in sig.input_specs:
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
                attrs[spec.arg.name] = spec.target
            elif spec.kind == InputKind.CONSTANT_TENSOR:
                consts[spec.arg.name] = (spec.target, self.ep.constants[spec.target])
            elif spec.kind == InputKind.USER_INPUT:
                users.append(spec.arg.name)
            else:
                raise TraceError(f"torch.export captured an input of kind {spec.kind.name}, which aimgen cannot write.")
        env: dict[fx.Node, Any] = {}
        scoped: dict[tuple[str, str], fx.Node] = {}   # (call key, attribute) -> its get_attr there
        placeholders = [n for n in self.ep.graph.nodes if n.op == "placeholder"]
        given = [n for n in placeholders if n.name in users and _is_tensor(n)]
        for i, n in enumerate(given):
            name = self.names[i] if i < len(self.names) else n.name
            p = self.g.placeholder(name)
            p.meta["val"] = n.meta.get("val")
            env[n] = p
        out_node = None
        for n in self.ep.graph.nodes:
            if n.op == "placeholder":
                continue
            if n.op == "output":
                out_node = n
                continue
            stack = self._stack(n.meta.get("nn_module_stack"))
            key = list(stack)[-1] if stack else ""

            def value(a, stack=stack, key=key):
                if not isinstance(a, fx.Node):
                    return a
                if a.name in attrs:
                    k = (key, attrs[a.name])
                    if k not in scoped:
                        scoped[k] = self.g.get_attr(attrs[a.name])
                        scoped[k].meta.update(nn_module_stack=dict(stack), val=a.meta.get("val"))
                    return scoped[k]
                if a.name in consts:
                    return self._constant(a.name, *consts[a.name], stack)
                if a not in env:
                    raise TraceError(f"torch.export gave an input {a.name!r} aimgen did not expect "
                                     f"(an input that was not given?).")
                return env[a]

            args = fx.node.map_aggregate(n.args, value)
            kwargs = fx.node.map_aggregate(n.kwargs, value)
            new = self.g.create_node(n.op, n.target, args, kwargs, name=n.name)
            new.meta["nn_module_stack"] = stack
            if n.meta.get("stack_trace"):
                new.meta["stack_trace"] = n.meta["stack_trace"]
            new.meta["val"] = n.meta.get("val")
            env[n] = new
        flat = [env.get(a, a) if isinstance(a, fx.Node) else a for a in out_node.args[0]]
        n_user = len([s for s in sig.output_specs if s.kind.name == "USER_OUTPUT"])
        flat = flat[len(flat) - n_user:] if n_user else []
        self.g.output(self._structure(self.ep.call_spec.out_spec, iter(flat)))

    def _constant(self, name: str, target: str, value: torch.Tensor, stack: dict) -> fx.Node:
        """A tensor the exporter lifted as a constant. A plain tensor attribute of a module (not a
        buffer: VideoMAE's sinusoid table, SimpleViT's position embedding) is read from its module,
        as torch.fx reads one, and the code generator decides how it is written (a literal, its
        ``__init__``'s expression, or its module kept whole). A tensor the forward makes itself is
        written as a literal where small."""
        owner, _, attr = target.rpartition(".")
        try:
            held = getattr(self.model.get_submodule(owner), attr, None) is value
        except AttributeError:
            held = False
        if held:
            node = self.g.get_attr(target)
            node.meta.update(nn_module_stack=dict(stack), val=value)
            return node
        if value.numel() > 64:
            raise TraceError(f"a {tuple(value.shape)} tensor constant created in forward ({name}) is too large "
                             "to write into the generated source.",
                             hint="Register it as a buffer of its module (self.register_buffer).")
        node = self.g.call_function(torch.tensor, (value.tolist(),), {"dtype": value.dtype})
        node.meta.update(nn_module_stack=dict(stack), val=value)
        return node

    def _structure(self, spec, leaves):
        """The output value built from the flat outputs as ``spec`` (a pytree spec) says."""
        if spec.is_leaf():
            return next(leaves)
        kind = spec.type if spec.type is not collections.namedtuple else spec.context  # pytree's namedtuple node
        children = [self._structure(c, leaves) for c in spec.children()]
        if kind is type(None):
            return None
        if kind in (tuple, list):
            return kind(children)
        if kind is dict:
            return dict(zip(spec.context, children))
        if is_namedtuple(kind):
            return kind(*children)
        fields = spec.context if isinstance(spec.context, (list, tuple)) else None
        if isinstance(spec.context, dict):
            fields = list(spec.context)
        if fields and len(fields) == 2 and all(isinstance(f, list) for f in fields):   # register_dataclass
            fields, nones = fields
            children = children + [None] * len(nones)
            fields = fields + nones
        if fields is None or len(fields) != len(children) or not all(isinstance(f, str) for f in fields):
            raise TraceError(f"the model returns a {kind.__name__}, whose structure aimgen cannot rebuild.",
                             hint="Return tensors, tuples, dicts or a dataclass.")
        node = self.g.call_function(kind, (), dict(zip(fields, children)))
        node.meta["nn_module_stack"] = {}
        return node

    # --- clean-ups -------------------------------------------------------------------------
    def _dead_code(self) -> None:
        """Values nothing reads (sizes read again inside blocks, unused attribute reads)."""
        for n in reversed(list(self.g.nodes)):
            if n.users or n.op not in ("call_function", "get_attr"):
                continue
            op = n.target
            if isinstance(op, torch._ops.OpOverload) and op._schema.is_mutable:
                continue
            self.g.erase_node(n)

    def _drop_checks(self) -> None:
        """The exporter's checks (they compute nothing), whole-axis slices (``x[:, :]``, the
        same values as ``x``) and copies of a constant the forward makes anew anyway."""
        for n in list(self.g.nodes):
            if n.op == "call_function" and not n.users and op_name(n) in _CHECKS:
                self.g.erase_node(n)
            elif n.op == "call_function" and ((n.target is aten.slice.Tensor and _whole(n)) or (
                    n.target is aten.lift_fresh_copy.default and n.args[0].target is torch.tensor)):
                n.replace_all_uses_with(n.args[0])
                self.g.erase_node(n)

    def _name_masks(self) -> None:
        """The mask attention reads is called ``attention_mask`` where it comes from elsewhere."""
        for n in self.g.nodes:
            if n.op == "call_function" and n.target is aten.scaled_dot_product_attention.default and len(n.args) > 3:
                mask = n.args[3]
                if isinstance(mask, fx.Node) and mask.op == "call_function" and _innermost(mask) != _innermost(n) \
                        and not mask.name.startswith("attention_mask"):
                    mask._rename("attention_mask")

    def _functional_inplace(self) -> None:
        """``x += y`` on a value nothing else reads afterwards: ``x = x + y`` (the same values,
        and the generated code then never mutates a tensor another name holds)."""
        order = {n: i for i, n in enumerate(self.g.nodes)}
        for n in list(self.g.nodes):
            op = n.target
            if n.op != "call_function" or not isinstance(op, torch._ops.OpOverload):
                continue
            name = op._schema.name.split("::")[-1]
            if not name.endswith("_") or name.startswith("_") or not n.args:
                continue
            pure = getattr(getattr(aten, name[:-1], None), op._overloadname, None)
            target = n.args[0]
            if pure is None or not isinstance(target, fx.Node) or not _fresh(target):
                continue
            if any(order[u] > order[n] for u in target.users if u is not n):
                continue
            n.target = pure

    def _sizes_where_used(self) -> None:
        """Arithmetic on sizes (``(height - 1) // 8 + 1``) placed where it is used: the exporter
        writes it where it was first needed, which differs between train() and eval() (BatchNorm's
        batch-size check runs only in train()) and can be inside a layer's call, so that the
        layer's call no longer has one output. Each such value goes just before its first user,
        and is computed anew in each other call that reads it. The sizes it starts from
        (``x.shape[2]``) stay where they are; ``_local_sizes`` reads them where they are used."""
        made: dict[tuple[str, fx.Node], fx.Node] = {}

        def place(a: fx.Node, user: fx.Node) -> fx.Node:
            key = _innermost(user)[0] if user.op != "output" else ""
            if (key, a) in made:
                return made[(key, a)]
            if not a.users.keys() - {user} and _innermost(a)[0] == key:   # one user, same call: move it
                copy = a
                user.prepend(a)
            else:
                with self.g.inserting_before(user):
                    copy = self.g.create_node(a.op, a.target, a.args, a.kwargs)
                copy.meta.update(a.meta)
                if user.op != "output":
                    copy.meta["nn_module_stack"] = dict(user.meta.get("nn_module_stack") or {})
            made[(key, a)] = copy
            for b in list(copy.all_input_nodes):
                if _is_size_arithmetic(b):
                    copy.replace_input_with(b, place(b, copy))
            return copy

        for n in list(self.g.nodes):
            if _is_size_arithmetic(n):
                continue
            for a in list(n.all_input_nodes):
                if _is_size_arithmetic(a):
                    n.replace_input_with(a, place(a, n))

    # --- layers ------------------------------------------------------------------------------
    def _runs(self, of: str | None = None):
        """Each module call's nodes, when they are one contiguous run: {key: [nodes]}; of the
        innermost module of each node, or (``of``) of that module with what it holds."""
        runs: dict[str, list[fx.Node]] = {}
        last: dict[str, int] = {}
        broken = set()
        ops = ("call_function", "get_attr") if of is None else ("call_function", "get_attr", "call_module")
        for i, n in enumerate(self.g.nodes):
            if n.op not in ops:
                continue
            if of is None:
                key, _ = _innermost(n)
            else:
                key = next((k for k, (q, _) in (n.meta.get("nn_module_stack") or {}).items() if q == of), "")
            if not key:
                continue
            if key in last and last[key] != i - 1:
                broken.add(key)
            runs.setdefault(key, []).append(n)
            last[key] = i
        return {k: v for k, v in runs.items() if k not in broken}

    def _owns(self, module: nn.Module, node: fx.Node) -> bool:
        if node.op != "get_attr":
            return False
        obj = _attr(self.model, node.target)
        return any(obj is t for t in list(module.parameters()) + list(module.buffers()))

    def _boundary(self, run: list[fx.Node], module: nn.Module):
        """(the one tensor the run reads from outside, the one node used after it) or None."""
        inside = set(run)
        ins, outs = [], []
        for n in run:
            for a in n.all_input_nodes:
                if a not in inside and not self._owns(module, a) and a not in ins:
                    ins.append(a)
            if any(u not in inside for u in n.users):
                outs.append(n)
        tensors = [a for a in ins if _is_tensor(a)]
        others = [a for a in ins if not _is_tensor(a)]
        if len(tensors) != 1 or len(outs) != 1 or not _is_tensor(outs[0]) or \
                any(a.op in ("get_attr", "placeholder") or _is_tensor(a) for a in others):
            return None
        return tensors[0], outs[0]

    def _replace_run(self, run: list[fx.Node], out: fx.Node, new: fx.Node) -> None:
        out.replace_all_uses_with(new)
        for n in reversed(run):
            if not n.users:
                self.g.erase_node(n)

    def _linear_layers(self) -> None:
        """``addmm(bias, x.view(-1, d), weight).view(..., out)`` in a module of its own (transformers'
        Conv1D): ``F.linear(x, weight.t(), bias)``, the same function, tapped as a linear layer."""
        for key, run in self._runs().items():
            qual = _innermost(run[0])[1]
            module = self.model.get_submodule(qual)
            calls = [n for n in run if n.op == "call_function" and not _is_size_arithmetic(n)]
            if module._modules or [n.target for n in calls] != [aten.view.default, aten.addmm.default, aten.view.default]:
                continue
            flat, mm, back = calls
            if mm.kwargs or len(mm.args) != 3 or mm.args[1] is not flat or back.args[0] is not mm:
                continue
            bias, weight = mm.args[0], mm.args[2]
            if not (self._owns(module, bias) and self._owns(module, weight)):
                continue
            found = self._boundary(run, module)
            if found is None or found[1] is not back or found[0] is not flat.args[0]:
                continue
            w = _attr(self.model, weight.target)
            x = found[0]
            if w.dim() != 2 or x.meta["val"].shape[-1] != w.shape[0] or list(back.meta["val"].shape[:-1]) != \
                    list(x.meta["val"].shape[:-1]):
                continue
            with self.g.inserting_before(mm):   # after the attribute reads, made before their first use
                t = self.g.call_function(aten.t.default, (weight,))
                lin = self.g.call_function(F.linear, (x, t, bias))
            t.meta.update(nn_module_stack=dict(flat.meta["nn_module_stack"]), val=w.t())
            _stand_in(lin, back)
            self._replace_run([flat, mm, back], back, lin)

    def _linear_subclasses(self) -> None:
        """A Linear subclass that computes the linear function its own way (Falcon's
        ``x @ self.weight.T + self.bias``), checked on a random input: ``F.linear(x, weight,
        bias)``, tapped as a linear layer (taps/linear.py says which modules and checks the values)."""
        for key, run in self._runs().items():
            qual = _innermost(run[0])[1]
            module = self.model.get_submodule(qual)
            if not is_linear_subclass(module):
                continue
            found = self._boundary(run, module)
            reads = {id(_attr(self.model, n.target)): n for n in run if n.op == "get_attr"}
            weight, bias = reads.get(id(module.weight)), reads.get(id(module.bias))
            if found is None or weight is None or (module.bias is not None and bias is None) or \
                    not _computes_linear(module, found[0].meta.get("val")):
                continue
            x, out = found
            with self.g.inserting_before(out):
                lin = self.g.call_function(F.linear, (x, weight) if bias is None else (x, weight, bias))
            _stand_in(lin, out)
            self._replace_run(run, out, lin)

    def _raisable(self, qual: str, module: nn.Module) -> bool:
        if qual in self.stochastic or (self.raising and qual in self.leaves):
            return _one_input(module)
        if not self.raising or not type(module).__module__.startswith("torch.nn.") or module._modules or \
                isinstance(module, _NOT_RAISED) or getattr(module, "return_indices", False):
            return False
        return _one_input(module)

    def _raise_leaves(self) -> None:
        """Each call of a module that is written as a call (a torch.nn leaf, a module kept whole;
        one tensor in, one out): a ``call_module`` node."""
        for key, run in self._runs().items():
            qual = _innermost(run[0])[1]
            module = self.model.get_submodule(qual)
            if not self._raisable(qual, module):
                continue
            self._raise(qual, module, run)
        # one with layers of its own, kept whole for the mode: its layers' nodes are its run too
        for qual in sorted(q for q in self.stochastic if self.model.get_submodule(q)._modules):
            module = self.model.get_submodule(qual)
            if _one_input(module):
                for key, run in self._runs(of=qual).items():
                    self._raise(qual, module, run, key)

    def _raise(self, qual: str, module: nn.Module, run: list[fx.Node], key: str | None = None) -> None:
        """The run as one ``call_module`` node, where it reads one tensor and one value of it is
        used after it; ``key``: the call's own key, where the value comes from a layer inside it
        (the call's module stack ends there)."""
        found = self._boundary(run, module)
        if found is None:
            return
        x, out = found
        with self.g.inserting_before(run[0]):
            call = self.g.call_module(qual, (x,))
        _stand_in(call, out)
        if key is not None:
            stack = call.meta["nn_module_stack"]
            keys = list(stack)
            call.meta["nn_module_stack"] = {k: stack[k] for k in keys[:keys.index(key) + 1]}
        self._replace_run(run, out, call)

    def _as_torch(self) -> None:
        for n in self.g.nodes:
            if n.op == "call_function" and n.target in _AS_TORCH:
                n.target = _AS_TORCH[n.target]
            elif n.op == "call_function" and n.target in _UPSAMPLE:
                # what F.interpolate called: written as the call (its arguments, not the kernel's)
                mode = _UPSAMPLE[n.target]
                x, size, *rest = n.args
                scales = rest[-1] if rest else None
                kwargs = {"size": size} if size is not None else {}
                if scales is not None:
                    kwargs["scale_factor"] = scales
                kwargs["mode"] = mode
                if "nearest" not in mode:
                    kwargs["align_corners"] = rest[0]
                n.target, n.args, n.kwargs = F.interpolate, (x,), kwargs

    # --- devices and sizes ------------------------------------------------------------------
    def _devices(self) -> None:
        """``device=cpu`` the exporter wrote in: the device of a tensor the code already has,
        so the generated model runs where its inputs are; ``pin_memory=False`` and a strided
        layout say nothing and are dropped."""
        nodes = list(self.g.nodes)
        made: dict[str, fx.Node] = {}   # call key -> its device read
        for i, n in enumerate(nodes):
            if n.op != "call_function" or not n.kwargs:
                continue
            kwargs = dict(n.kwargs)
            if kwargs.get("pin_memory") is False:
                del kwargs["pin_memory"]
            if kwargs.get("layout") == torch.strided:
                del kwargs["layout"]
            device = kwargs.get("device")
            if isinstance(device, torch.device):
                name = getattr(n.target, "__name__", "")
                if name.startswith("to.") and n.args and _is_tensor(n.args[0]):
                    del kwargs["device"]   # the input is on the device already
                else:
                    key = _innermost(n)[0]
                    dev = made.get(key)
                    source = self._nearby_tensor(nodes, i) if dev is None else None
                    if source is not None:
                        with self.g.inserting_before(n):
                            dev = made[key] = self.g.call_function(builtins.getattr, (source, "device"))
                        dev._rename("device")
                        dev.meta.update(nn_module_stack=dict(n.meta.get("nn_module_stack") or {}), val=device)
                    if dev is not None:
                        kwargs["device"] = dev
            n.kwargs = kwargs

    def _available(self) -> dict[str, list[fx.Node]]:
        """Per module call: the values its code has without new arguments (its inputs, in order)."""
        inputs: dict[str, list[fx.Node]] = {}
        for n in self.g.nodes:
            chain = list((n.meta.get("nn_module_stack") or {}))
            for depth in range(len(chain)):
                key = chain[depth]
                for a in n.all_input_nodes:
                    a_chain = list((a.meta.get("nn_module_stack") or {}))
                    if a.op == "placeholder" or a_chain[:depth + 1] != chain[:depth + 1]:
                        lst = inputs.setdefault(key, [])
                        if a not in lst:
                            lst.append(a)
        return inputs

    def _nearby_tensor(self, nodes: list[fx.Node], i: int) -> fx.Node | None:
        """A tensor the node's own code has: an argument, an earlier value of the same call, an
        input of the call; at the root, the first input."""
        n = nodes[i]
        for a in n.all_input_nodes:
            if _is_tensor(a) and a.op != "get_attr":
                return a
        key, _ = _innermost(n)
        if not key:
            return next((p for p in nodes if p.op == "placeholder" and _is_tensor(p)), None)
        if not hasattr(self, "_inputs_cache"):
            self._inputs_cache = self._available()
        for a in self._inputs_cache.get(key, []):
            if _is_tensor(a) and a.op != "get_attr" and a in nodes[:i]:
                return a
        for m in reversed(nodes[:i]):
            if _innermost(m)[0] == key and _is_tensor(m) and m.op != "get_attr":
                return m
        return None

    def _local_sizes(self) -> None:
        """A size one block reads is read in that block (``x.shape[0]``), not passed down from
        the model's inputs: each use of a symbolic size outside the call that computed it gets
        its own ``sym_size`` from a tensor of the using call that has that size, and so does
        arithmetic on sizes whose result a tensor there has (``(height - 1) // 8 + 1`` is
        ``x.shape[2]`` of the block's input, as the user's code wrote it)."""
        nodes = list(self.g.nodes)
        index = {n: i for i, n in enumerate(nodes)}
        inputs = self._available()
        made: dict[tuple[str, str], fx.Node] = {}
        for i, n in enumerate(nodes):
            if n.op not in ("call_function", "call_module", "output"):
                continue
            key, _ = _innermost(n) if n.op != "output" else ("", "")
            for a in list(n.all_input_nodes):
                sym = a.meta.get("val")
                if not isinstance(sym, torch.SymInt):
                    continue
                if a.target is aten.sym_size.int:
                    if _innermost(a)[0] == key and a.op != "placeholder":
                        continue
                elif not _is_size_arithmetic(a):   # arithmetic: a size a tensor here has, if any
                    continue
                expr = str(sym)
                local = made.get((key, expr))
                if local is None or index.get(local, i) > i:
                    found = self._with_size(nodes, i, key, expr, inputs)
                    if found is None:
                        continue
                    t, d = found
                    with self.g.inserting_before(n):
                        local = self.g.call_function(aten.sym_size.int, (t, d))
                    local.meta.update(nn_module_stack=dict(n.meta.get("nn_module_stack") or {}), val=sym)
                    made[(key, expr)] = local
                    index[local] = i
                n.replace_input_with(a, local)

    def _with_size(self, nodes, i, key, expr, inputs) -> tuple[fx.Node, int] | None:
        def dim_of(t):
            val = t.meta.get("val") if isinstance(t, fx.Node) else None
            if t is None or not isinstance(val, torch.Tensor) or t.op == "get_attr":
                return None
            for d, size in enumerate(val.shape):
                if str(size) == expr:
                    return d
            return None

        def here(m: fx.Node) -> bool:   # a value this call has: its own, or one a call in it returned
            return m.op != "output" and (_innermost(m)[0] == key or any(
                u.op != "output" and _innermost(u)[0] == key for u in m.users))

        candidates = list(nodes[i].all_input_nodes)
        candidates += [m for m in reversed(nodes[:i]) if here(m)]
        candidates += inputs.get(key, []) if key else [p for p in nodes if p.op == "placeholder"]
        for t in candidates:
            d = dim_of(t)
            if d is not None:
                return t, d
        return None

    def _name_sizes(self) -> None:
        """Size reads named for what they are: ``batch_size``, ``seq_len``, ``height``..."""
        placeholders = [n for n in self.g.nodes if n.op == "placeholder"]
        meaning: dict[str, str] = {}
        for p in placeholders:
            val = p.meta.get("val")
            if not isinstance(val, torch.Tensor):
                continue
            spatial = {3: ("length",), 4: ("height", "width"), 5: ("depth", "height", "width")}.get(val.dim(), ())
            for d, size in enumerate(val.shape):
                if not isinstance(size, torch.SymInt) or str(size) in meaning:
                    continue
                if d == 0:
                    meaning[str(size)] = "batch_size"
                elif not val.is_floating_point() and d == 1:
                    meaning[str(size)] = "seq_len"
                elif val.is_floating_point() and d >= 2 and spatial:
                    meaning[str(size)] = spatial[d - 2]
        for n in self.g.nodes:
            if n.op == "call_function" and n.target is aten.sym_size.int:
                wanted = meaning.get(str(n.meta.get("val")))
                if wanted is None:   # computed from one spatial size: (height - 1) // 8 + 1 is a height
                    sym = n.meta.get("val")
                    free = [str(f) for f in sym.node.expr.free_symbols] if isinstance(sym, torch.SymInt) else []
                    found = meaning.get(free[0]) if len(free) == 1 else None
                    wanted = found if found in ("length", "depth", "height", "width") else None
                if wanted and not n.name.startswith(wanted):
                    n._rename(wanted)


def _one_input(module: nn.Module) -> bool:
    """Whether the module's forward can be called with one argument (a call of it in the captured
    graph is written with the one tensor its run reads)."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1


def _inline_regions(ep) -> None:
    """``with torch.no_grad():`` in a forward (timm's Gemma4 rotary embedding) is exported as a
    call of a graph of its own (``wrap_with_set_grad_enabled``), which the written model cannot
    call: its operations are copied in its place, and what leaves a no-grad region is detached
    (it carries no gradient there either). A region that turns autocast off
    (``@autocast('cuda', enabled=False)`` on vit-pytorch's rotary embeddings:
    ``wrap_with_autocast``) is copied in its place as it is: the model computes in float32."""
    grad = getattr(torch.ops.higher_order, "wrap_with_set_grad_enabled", None)
    autocast = getattr(torch.ops.higher_order, "wrap_with_autocast", None)
    graph = ep.graph
    for n in [n for n in graph.nodes if n.op == "call_function" and n.target in (grad, autocast)]:
        if n.target is grad:
            enabled, body, *operands = n.args
        else:
            device, _, enabled, _, body, *operands = n.args
        inner = getattr(ep.graph_module, body.target).graph
        if n.target is autocast and enabled:
            where = next(filter(None, map(stack_location, [n, *inner.nodes])), "an unknown place")
            raise TraceError(f"the model computes a part under torch.autocast({device!r}) (at {where}), which "
                             "aimgen cannot write yet.",
                             hint="Convert the model without autocast, and run the converted one under it.")
        with graph.inserting_before(n):
            outs = graph.graph_copy(inner, dict(zip([p for p in inner.nodes if p.op == "placeholder"], operands)))
            outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
            if n.target is grad and not enabled:
                detached = [graph.call_function(torch.ops.aten.detach.default, (o,)) for o in outs]
                for d, o in zip(detached, outs):
                    d.meta.update(o.meta)
                outs = detached
        for user in list(n.users):
            if user.target is not operator.getitem:
                raise TraceError("torch.export captured a grad-mode or autocast region whose results aimgen cannot "
                                 "read.")
            user.replace_all_uses_with(outs[user.args[1]])
            graph.erase_node(user)
        graph.erase_node(n)
        if not body.users:
            graph.erase_node(body)


def _is_size_arithmetic(node: fx.Node) -> bool:
    """Python arithmetic on sizes (``(height - 1) // 8 + 1``), not a size read itself."""
    if node.op != "call_function" or not isinstance(node.meta.get("val"), (torch.SymInt, torch.SymBool)):
        return False
    return getattr(node.target, "__module__", "") in ("_operator", "operator") or \
        (getattr(node.target, "__name__", "").startswith("sym_") and node.target is not aten.sym_size.int)


def _whole(node: fx.Node) -> bool:
    """aten.slice over a whole axis: ``x[:, 0:]`` up to the end, step 1."""
    args = list(node.args) + [None] * (5 - len(node.args))
    start, end, step = args[2], args[3], args[4]
    return not node.kwargs and isinstance(node.args[0], fx.Node) and start in (None, 0) and \
        (end is None or (isinstance(end, int) and end >= _INT64_MAX)) and step in (None, 1)


def _attr(model: nn.Module, target: str):
    obj = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _fresh(node: fx.Node) -> bool:
    """A value no other tensor shares memory with: the output of an aten op that makes a new
    tensor (not a view, not dropout, which returns its input unchanged in eval())."""
    op = node.target
    if node.op == "call_function" and op is torch.tensor:   # a constant, made anew by every call
        return True
    if node.op != "call_function" or not isinstance(op, torch._ops.OpOverload):
        return False
    if op in (aten.dropout.default,) or getattr(op, "is_view", False):
        return False
    schema = op._schema
    if schema.is_mutable or len(schema.returns) != 1:
        return False
    return schema.returns[0].alias_info is None


# ----------------------------------------------------------------------------- train / eval


def _normalise(a: fx.Node, b: fx.Node) -> None:
    """Give two calls of one aten op the same argument list: an argument one of them leaves at
    its default (``dropout_p`` of attention in eval()) is written out in both."""
    op = a.target
    if not isinstance(op, torch._ops.OpOverload) or (len(a.args), set(a.kwargs)) == (len(b.args), set(b.kwargs)):
        return
    schema = op._schema.arguments
    n = max(len(a.args), len(b.args))
    for node in (a, b):
        args = list(node.args)
        for i in range(len(args), n):
            if i >= len(schema) or not schema[i].has_default_value():
                return
            args.append(schema[i].default_value)
        kwargs = dict(node.kwargs)
        for k in set(a.kwargs) | set(b.kwargs):
            if k not in kwargs:
                arg = next((s for s in schema if s.name == k), None)
                if arg is None or not arg.has_default_value():
                    return
                kwargs[k] = arg.default_value
        node.args, node.kwargs = tuple(args), kwargs


def _on_random_input(module: nn.Module, example):
    """(a random input shaped like ``example``, the module's eval() output on it, no gradients),
    or None where there is no such input or the module fails on it. The module's mode is kept."""
    if not isinstance(example, torch.Tensor) or not example.is_floating_point() or None in _example_shape(example):
        return None
    was = module.training
    try:
        module.eval()
        x = torch.randn(_example_shape(example), generator=torch.Generator().manual_seed(0)).to(example.dtype)
        with torch.no_grad():
            return x, module(x)
    except Exception:   # noqa: BLE001 - a module that fails here is not the simple function asked about
        return None
    finally:
        module.train(was)


def _computes_linear(module: nn.Module, example) -> bool:
    """Whether the module's forward equals F.linear with its weight and bias (on a random input)."""
    ran = _on_random_input(module, example)
    return ran is not None and computes_f_linear(module, *ran)


def _train_only(train: fx.Graph, evalg: fx.Graph, model: nn.Module) -> frozenset[str]:
    """The outermost modules that compute in train() and are the identity in eval(), where they
    leave no node: stochastic depth (timm's and transformers' DropPath). A module that eval()
    does not call at all (auxiliary logits) is not one of them."""
    def owners(g: fx.Graph) -> set[str]:
        return {q for n in g.nodes for q, _ in (n.meta.get("nn_module_stack") or {}).values() if q}
    only = owners(train) - owners(evalg)
    outer = [q for q in only if not any(q.startswith(p + ".") for p in only)]
    return frozenset(q for q in outer if _identity_in_eval(model.get_submodule(q), _run_input(train, q)))


def _run_input(g: fx.Graph, qual: str):
    """An example value of the tensor the nodes of module ``qual`` read from outside, if they
    read one shape (a module called twice, as BEiT's drop_path is, reads two tensors of it)."""
    inside = {n for n in g.nodes if any(q == qual for q, _ in (n.meta.get("nn_module_stack") or {}).values())}
    outside = {a for n in inside for a in n.all_input_nodes if a not in inside and _is_tensor(a)}
    vals = [a.meta.get("val") for a in outside if a.op != "get_attr"]
    if not vals or not all(isinstance(v, torch.Tensor) for v in vals):
        return None
    shapes = {(_example_shape(v), v.dtype) for v in vals}
    return vals[0] if len(shapes) == 1 and None not in next(iter(shapes))[0] else None


def _example_shape(value: torch.Tensor) -> tuple:
    """The shape at the example input (a symbolic size by its hint; None where there is none)."""
    return tuple(d if isinstance(d, int) else getattr(d.node, "hint", None) for d in value.shape)


def _identity_in_eval(module: nn.Module, example) -> bool:
    ran = _on_random_input(module, example)
    return ran is not None and (ran[1] is ran[0] or (isinstance(ran[1], torch.Tensor) and torch.equal(ran[1], ran[0])))


_TRAIN_ONLY = "it computes only in train() (stochastic depth), so one captured graph cannot hold it"


def _reconcile(train: fx.Graph, evalg: fx.Graph, model: nn.Module, source: str,
               stochastic: frozenset[str] = frozenset()) -> dict:
    """{eval node: {path: (value in train(), value in eval())}} where the graphs differ only by
    constants; a ``.contiguous()`` only the train graph has is added to the eval graph (it
    changes no value), and so is a call of a ``stochastic`` module (the identity in eval()).
    Nodes are matched in order (their names may differ: the exporter numbers them per mode).
    Any other difference is refused with the module and line."""
    flags: dict[str, dict[tuple, tuple]] = {}
    match: dict[fx.Node, fx.Node] = {}
    inserted: set[fx.Node] = set()   # train-only .contiguous() nodes, copied into the eval graph
    tn, en = list(train.nodes), list(evalg.nodes)
    i = j = 0
    while i < len(tn) and j < len(en):
        a, b = tn[i], en[j]
        if (a.op, a.target) != (b.op, b.target):
            kept = a.op == "call_module" and a.target in stochastic
            if (a.target in _SAME_VALUES or kept) and isinstance(a.args[0], fx.Node) and a.args[0] in match:
                src = match[a.args[0]]
                with evalg.inserting_before(b):
                    copy = evalg.create_node(a.op, a.target, (src,) + tuple(a.args[1:]), dict(a.kwargs))
                copy.meta.update({k: v for k, v in a.meta.items() if k in ("nn_module_stack", "stack_trace")})
                match[a] = copy
                inserted.add(a)
                i += 1
                continue
            if b.target in _SAME_VALUES:
                j += 1
                continue
            raise _mode_error(model, source, a, b)
        for x in a.all_input_nodes:   # read the copied .contiguous() where train reads it
            if x in inserted and match.get(x.args[0]) in b.all_input_nodes:
                b.replace_input_with(match[x.args[0]], match[x])
        _normalise(a, b)
        fa, fb = list(flat_values((a.args, a.kwargs))), list(flat_values((b.args, b.kwargs)))
        if [p for p, _ in fa] != [p for p, _ in fb]:
            raise _mode_error(model, source, a, b)
        for (path, va), (_, vb) in zip(fa, fb):
            if isinstance(va, fx.Node) or isinstance(vb, fx.Node):
                if not (isinstance(va, fx.Node) and isinstance(vb, fx.Node) and match.get(va) is vb):
                    raise _mode_error(model, source, a, b)
            elif type(va) is type(vb) and va == vb:
                continue
            elif isinstance(va, (bool, int, float, type(None))) and isinstance(vb, (bool, int, float, type(None))):
                flags.setdefault(b.name, {})[path] = (va, vb)
            else:
                raise _mode_error(model, source, a, b)
        match[a] = b
        i += 1
        j += 1
    while j < len(en) and en[j].target in _SAME_VALUES:
        j += 1
    if i < len(tn) or j < len(en):
        raise _mode_error(model, source, tn[min(i, len(tn) - 1)], en[min(j, len(en) - 1)])
    evalg.lint()
    return flags


def _owner(node: fx.Node) -> str:
    """The module whose forward made the node (for a module call: its caller), '' for the root."""
    chain = [q for q, _ in (node.meta.get("nn_module_stack") or {}).values()]
    if node.op == "call_module" and chain and chain[-1] == node.target:
        chain = chain[:-1]
    return chain[-1] if chain else ""


class ModeSplit(TraceError):
    """A module's forward takes another path in train() than in eval(): which, and near what."""

    def __init__(self, message: str, *, hint: str, owner: str, where: str):
        super().__init__(message, hint=hint)
        self.owner, self.where = owner, where


def _mode_error(model: nn.Module, source: str, a: fx.Node, b: fx.Node) -> ModeSplit:
    """The first train/eval difference: in the deeper module of the two nodes (the other may
    just be where the shorter graph goes on)."""
    depth = {n: len(_owner(n).split(".")) if _owner(n) else 0 for n in (a, b)}
    node = a if b.op == "output" or (a.op != "output" and depth[a] > depth[b]) else b
    where = stack_location(node) or stack_location(a if node is b else b) or source
    owner = _owner(node)
    return ModeSplit(
        f"{_named(source, model)}: the forward of {owner or 'the root module'} takes a different path in train() "
        f"and eval() mode (`if self.training` or similar), near {where}; one captured graph cannot hold both.",
        hint="Make it branch-free (e.g. F.dropout(x, p, self.training)), or move the branch into a submodule "
        "torch.fx can trace around (it is then kept whole as a leaf).", owner=owner, where=where)


# ----------------------------------------------------------------------------- checking


def _flat(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, dict):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    return []


def _check_function(traced: Traced, make_inputs, overrides: dict, source: str) -> None:
    """The captured graph computes what the model computes (eval mode, the example input)."""
    model = traced.root
    inputs = tuple(make_inputs())
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), as_found(model):
            try:
                want = _flat(model(*inputs, **overrides))
            except Exception as err:
                raise TraceError(f"{_named(source, model)} itself fails on aimgen's example input: "
                                 f"{type(err).__name__}: {_first_line(err)}.",
                                 hint="aimgen makes example inputs from the shapes and dtypes given (random values; "
                                 "integers below the smallest embedding table), so a model that needs particular "
                                 "values (a token it checks for) cannot be captured at them.") from err
            try:
                got = _flat(fx.Interpreter(model, graph=traced.graph).run(*inputs))
            except Exception as err:
                raise TraceError(f"{_named(source, model)}: the graph torch.export captured does not run on the "
                                 f"example input: {type(err).__name__}: {_first_line(err)}.",
                                 hint="This is likely a bug in aimgen's torch.export path: please report it with "
                                 "the model.") from err
    finally:
        model.train(was)
    ok = len(want) == len(got) and all(
        a.shape == b.shape and (torch.allclose(a, b, atol=1e-5, rtol=1e-5) if a.is_floating_point() else torch.equal(a, b))
        for a, b in zip(want, got))
    if not ok:
        raise TraceError(f"{_named(source, model)}: the graph torch.export captured computes something else "
                         "than the model on the example input.",
                         hint="This is likely a bug in aimgen's torch.export path: please report it with the model.")
