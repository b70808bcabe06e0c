"""Tracing with torch.fx and shape propagation at the example input.

Two things torch.fx gets wrong for us are handled here:
- ``self.training`` is read as a Python bool while tracing, so the branch taken is baked in.
  We trace twice (train and eval). Where the two graphs differ only by constants that are True
  in train mode and False in eval mode, those constants become ``self.training`` in the output.
  Where the structure differs, the smallest submodule responsible is kept as a leaf when its
  code can be carried over, otherwise the conversion is refused naming the module and line.
- Its code generator is never used, not even through ``fx.GraphModule`` (which pastes
  ModuleDict keys into code it executes): the graph is interpreted against the user's module
  directly, and aimgen writes the forward itself (see codegen.py).
"""
from __future__ import annotations

import contextlib
import copy
import dis
import functools
import importlib.util
import inspect
import operator
import re
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree
from torch import nn

from .errors import TraceError
from .library_forwards import library_forward
from .nn_forwards import TRACED_FORWARDS
from .taps import REGISTRY

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    return str(Path(spec.origin).resolve().parent) if spec is not None and spec.origin else None


#: where a frame is never the model's own line: torch, aimgen, and numpy (a model that calls
#: numpy in forward fails inside it; its own line is the one to show)
NOT_MODEL_CODE = tuple(d for d in (_TORCH_DIR, str(Path(__file__).resolve().parent), _package_dir("numpy")) if d)


def op_name(node: fx.Node) -> str:
    """What a call node computes, whatever form the call takes: ``reshape`` for torch.reshape,
    Tensor.reshape and aten's ``reshape.default``; '' for a node that calls no function or method."""
    if node.op == "call_method":
        return str(node.target)
    if node.op == "call_function":
        return getattr(node.target, "__name__", "").split(".")[0]
    return ""


class AimTracer(fx.Tracer):
    """torch.fx's tracer with extra leaf modules (by qualified name) and stack traces on.

    A buffer a forward reads is a traced value (``mask.view(1, mask.shape[0], ...)`` is
    recorded, not run once and frozen into a constant the size of the mask, as torch.fx does
    by default), except in modules of the classes ``real_buffers`` lists: there a forward that
    uses a buffer as a Python number (``float(self.num_batches_tracked)``) reads the tensor
    itself, as torch.fx's default does. ``proxied`` collects the classes whose forwards read a
    buffer as a traced value (see trace)."""

    def __init__(self, leaf_names: frozenset[str] = frozenset(), empty_varargs: bool = False,
                 real_buffers: frozenset[type] = frozenset(), wrapped: tuple = ()):
        super().__init__(autowrap_functions=tuple(wrapped))
        self.leaf_names = leaf_names
        self.empty_varargs = empty_varargs
        self.record_stack_traces = True
        self.proxy_buffer_attributes = True
        self.real_buffers = real_buffers
        self.proxied: set[type] = set()
        self._held: dict[int, list[str]] = {}

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if isinstance(attr_val, torch.Tensor) and not isinstance(attr_val, nn.Parameter):
            reader = next(reversed(self.module_stack.values()))[1] if self.module_stack else type(self.root)
            if reader in self.real_buffers:
                return attr_val
            value = super().getattr(attr, attr_val, parameter_proxy_cache)
            if value is not attr_val:
                self.proxied.add(reader)
            return value
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def trace(self, root, concrete_args=None):
        """With ``empty_varargs``, a root forward's ``*args``/``**kwargs`` are traced empty, as
        the model is called (``forward(self, x, *args, **kwargs)``: ultralytics' models);
        otherwise torch.fx makes them inputs (see capture.check_fx)."""
        if self.empty_varargs:
            concrete_args = {**variadic(root), **(concrete_args or {})}
        self._held = {}   # id(module) -> every name the root holds it under (see path_of_module)
        if isinstance(root, nn.Module):
            for name, m in root.named_modules(remove_duplicate=False):
                self._held.setdefault(id(m), []).append(name)
        try:
            with _proxies_are_tensors():
                graph = super().trace(root, concrete_args or None)
        except Exception as err:
            err._aimgen_proxied = set(self.proxied)
            raise
        if isinstance(graph._codegen, fx.graph._PyTreeCodeGen):
            # an empty *args is a container torch.fx flattens: it then also flattens the output
            # into a list of tensors; restore the structure the forward returned
            out = next(n for n in graph.nodes if n.op == "output")
            spec = graph._codegen.pytree_info.out_spec
            out.args = (pytree.tree_unflatten(list(out.args[0]), spec),)
            graph._codegen = fx.graph.CodeGen()
        return graph

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaf_names or type(m) in REGISTRY.module_types:
            return True  # a kept leaf, or a layer of a tap kind (a user's own kind included)
        if type(m) in TRACED_FORWARDS:
            return False  # torch.nn's transformer modules: traced through (see nn_forwards.py)
        return super().is_leaf_module(m, module_qualified_name)

    def to_bool(self, obj) -> bool:
        """``assert`` on traced values (``assert x.shape[1] == self.channels``, as diffusers
        writes its shape checks) holds at the example input and is left out of the output, as
        ``python -O`` leaves it out; any other branch on a traced value is refused as before
        (torch.fx's own ``trace_asserts`` does not read Python 3.11's bytecode)."""
        frame = inspect.currentframe()
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        if caller is not None and _asserting(caller):
            return True
        known = _compared_shape(obj.node)
        if known is not None:
            if not obj.node.users:
                self.graph.erase_node(obj.node)   # decided here: nothing computes it
            return known
        return super().to_bool(obj)

    def path_of_module(self, mod: nn.Module) -> str:
        """A stateless module held under several names (ultralytics' ``Conv.default_act``, one
        nn.SiLU for every Conv) is named under the module that calls it, as if each held its
        own: torch.fx names it after its first holder, whose block class the others cannot
        reach. A module with state stays one module under its first name."""
        path = super().path_of_module(mod)
        if not self.module_stack or next(mod.parameters(), None) is not None or next(mod.buffers(), None) is not None:
            return path
        caller = next(reversed(self.module_stack.values()))[0]
        under = [n for n in self._held.get(id(mod), []) if n.startswith(caller + ".") or not caller]
        return min(under, key=lambda n: n.count(".")) if under and path not in under else path

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _PiecesProxy(node, self)

    def iter(self, obj):
        """Iterating the pieces of ``chunk(n)`` or of ``split([sizes])``, whose number the call
        gives (``list(self.cv1(x).chunk(2, 1))``: ultralytics' C2f). A dimension shorter than n
        chunks gives fewer: the graph would then not compute what the model does, which the
        conversion's function check reports."""
        n = _pieces(obj.node)
        if n is None:
            return super().iter(obj)
        return iter([obj[i] for i in range(n)])

    def call_module(self, m, forward, args, kwargs):
        traced = TRACED_FORWARDS.get(type(m)) or library_forward(m)
        if traced is not None:
            forward = functools.partial(traced, m)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as err:
            # the innermost module being traced when tracing failed: the smallest candidate leaf
            if not hasattr(err, "_aimgen_module"):
                try:
                    err._aimgen_module = self.path_of_module(m)
                except Exception:
                    pass
            raise


def _compared_shape(node: fx.Node) -> bool | None:
    """A traced input's whole shape compared with None or a fixed shape: taken as differing.
    That is the cache pattern, ``if self.shape != shape: self.anchors = ...; self.shape = shape``
    (ultralytics' Detect), where recomputing every time computes the same; a shape is never
    None. (The conversion's function check holds the result at the example input.)"""
    ops = {operator.eq: False, operator.ne: True, operator.is_: False, operator.is_not: True}
    if node.op != "call_function" or node.target not in ops or len(node.args) != 2:
        return None
    a, b = node.args
    shape, other = (a, b) if isinstance(a, fx.Node) else (b, a)
    is_shape = isinstance(shape, fx.Node) and (
        (shape.op == "call_function" and shape.target is getattr and shape.args[1:] == ("shape",)) or
        (shape.op == "call_method" and shape.target == "size" and len(shape.args) == 1))
    fixed = other is None or (isinstance(other, tuple) and all(isinstance(v, int) for v in other))
    return ops[node.target] if is_shape and fixed else None


class _PiecesProxy(fx.Proxy):
    """A Proxy whose ``len`` is known where it holds a chunk's or a split's pieces (``list()``
    of it asks for the length first), and which records item assignment."""

    def __len__(self):
        n = _pieces(self.node)
        return super().__len__() if n is None else n

    def __setitem__(self, key, value):
        """``y[:, 2::3] = y[:, 2::3].sigmoid()`` (ultralytics' Pose head): recorded as
        operator.setitem, which torch.fx keeps (it changes ``y``) and the output writes as is."""
        self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})


def _pieces(node: fx.Node) -> int | None:
    """How many tensors a chunk or split call returns, where its arguments say."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", None)
    if node.op not in ("call_method", "call_function") or name not in ("chunk", "split"):
        return None
    arg = node.args[1] if len(node.args) > 1 else node.kwargs.get("chunks" if name == "chunk" else "split_size")
    if name == "chunk" and isinstance(arg, int):
        return arg
    if name == "split" and isinstance(arg, (list, tuple)) and all(isinstance(a, int) for a in arg):
        return len(arg)
    return None


def variadic(root) -> dict:
    """``{"*args": (), "**kwargs": {}}`` for the variadic parameters of a module's forward."""
    if not isinstance(root, nn.Module):
        return {}
    code = inspect.unwrap(type(root).forward).__code__
    names = iter(code.co_varnames[code.co_argcount + code.co_kwonlyargcount:])
    empty = {}
    if code.co_flags & inspect.CO_VARARGS:
        empty["*" + next(names)] = ()
    if code.co_flags & inspect.CO_VARKEYWORDS:
        empty["**" + next(names)] = {}
    return empty


_FX_CONSTANT = re.compile(r"_tensor_constant\d+")   # tensors torch.fx keeps on the root while tracing

_JIT_ISINSTANCE = {"original": None, "depth": 0}
_JIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _proxies_are_tensors():
    """``torch.jit.isinstance(x, torch.Tensor)`` is False for a traced value, so torch.fx would
    record the other branch without a word (MONAI's BasicUNet lost its skip connections, and
    the graph failed later with a channel count). While tracing, a traced value is a tensor.
    The swap is counted under a lock: traces in several threads restore the original once, at
    the end of the last (the wrapper answers as the original does for anything but a Proxy)."""
    with _JIT_LOCK:
        if _JIT_ISINSTANCE["depth"] == 0:
            original = _JIT_ISINSTANCE["original"] = torch.jit.isinstance

            def jit_isinstance(obj, target_type) -> bool:
                if isinstance(obj, fx.Proxy) and target_type is torch.Tensor:
                    return True
                return original(obj, target_type)

            torch.jit.isinstance = jit_isinstance
        _JIT_ISINSTANCE["depth"] += 1
    try:
        yield
    finally:
        with _JIT_LOCK:
            _JIT_ISINSTANCE["depth"] -= 1
            if _JIT_ISINSTANCE["depth"] == 0:
                torch.jit.isinstance = _JIT_ISINSTANCE["original"]


def _asserting(frame) -> bool:
    """Whether ``frame`` is testing the condition of an ``assert`` statement: the jump that
    bool() serves (just at or after the current instruction) skips a raise of AssertionError."""
    insts = list(dis.get_instructions(frame.f_code))
    at = next((i for i, ins in enumerate(insts) if ins.offset >= frame.f_lasti), None)
    if at is None:
        return False
    for i in range(at, min(at + 3, len(insts) - 1)):
        if insts[i].opname.startswith("POP_JUMP") and insts[i].opname.endswith("IF_TRUE"):
            nxt = insts[i + 1]
            return nxt.opname == "LOAD_ASSERTION_ERROR" or (nxt.opname == "LOAD_GLOBAL" and nxt.argval == "AssertionError")
    return False


@dataclass
class Traced:
    """The eval-mode graph, with shapes, and where train/eval differ only by a flag."""

    root: nn.Module
    graph: fx.Graph
    # node name -> {path (a tuple of arg/kwarg keys): (value in train(), value in eval())} of
    # the constants that differ between the two modes (``self.training``, ``p if self.training else 0``)
    training_values: dict[str, dict[tuple, tuple]] = field(default_factory=dict)
    # how the model was captured: "torch.fx" or "torch.export"
    capture: str = "torch.fx"
    # module qualified name -> the arguments its constructor was called with, when aimgen built
    # the model itself (see aimgen/records.py)
    constructor_args: dict[str, dict] = field(default_factory=dict)
    # forward arguments traced at their defaults because no input was given for them
    fixed_inputs: dict[str, Any] = field(default_factory=dict)
    leaf_names: frozenset[str] = frozenset()
    # submodules aimgen chose to keep whole -> why (file:line of the code that forced it)
    leaf_reasons: dict[str, str] = field(default_factory=dict)
    outputs: Any = None
    # the submodule whose output depends on the mode, written in the root's forward after a
    # ``return`` in train() (see _mode_tail), or None
    mode_tail: str | None = None
    # where the traced forward fails at twice the example's size though the base model runs
    # there (it holds a size the input sets as a number): set by aimgen.shapes; None otherwise
    size_fixed_at: str | None = None

    @property
    def nodes(self) -> list[fx.Node]:
        return list(self.graph.nodes)

    @property
    def train_heads(self) -> list[str]:
        """The submodules only train() runs, for outputs eval() does not return (see
        _train_branches; GoogLeNet's aux1 and aux2), outermost first."""
        quals = sorted({module_of(n) for n in self.graph.nodes if n.meta.get("train_only")} - {""}, key=len)
        heads: list[str] = []
        for q in quals:
            if not any(q.startswith(h + ".") for h in heads):
                heads.append(q)
        return sorted(heads)

    def mode_note(self) -> str | None:
        """What the generated forward writes for a model whose two modes return other things."""
        if self.mode_tail:
            return (f"{self.mode_tail} returns other things in train() and eval(): what follows the part both "
                    "share is written in the root's forward, after `if self.training: return ...`")
        if any(n.meta.get("train_only") for n in self.graph.nodes):
            return (f"only train() runs {', '.join(self.train_heads) or 'a part of the forward'}, and returns other "
                    "things than eval(): written under `if self.training:`, reading no memory")
        return None


def _user_location(err: BaseException) -> str | None:
    """file:line of the innermost frame of user code (outside torch and aimgen)."""
    here = str(Path(__file__).resolve().parent)
    loc = None
    for frame in traceback.extract_tb(err.__traceback__):
        fname = str(Path(frame.filename).resolve()) if frame.filename else ""
        if fname.startswith(_TORCH_DIR) or fname.startswith(here) or not fname.endswith(".py"):
            continue
        loc = f"{frame.filename}:{frame.lineno} (`{(frame.line or '').strip()}`)"
    return loc


def _user_frames(node: fx.Node) -> list[tuple[str, str, str, str]]:
    """(file, line, function, code) of each frame of the model's code (not torch's, not aimgen's)
    in a node's recorded stack trace, outermost first."""
    lines = (node.meta.get("stack_trace") or "").splitlines()
    frames = []
    for i, line in enumerate(lines):
        m = re.match(r'\s*File "(.+)", line (\d+), in (\S+)', line)
        if m and not str(Path(m.group(1)).resolve()).startswith(NOT_MODEL_CODE):
            frames.append((m.group(1), m.group(2), m.group(3), lines[i + 1].strip() if i + 1 < len(lines) else ""))
    return frames


def _mode_function(*nodes: fx.Node):
    """The function of the user's or a library's code (not a forward) in which train() and
    eval() first take different paths, where it is one torch.fx can call whole: a module-level
    function given the mode as an argument (smp's EfficientNet blocks call
    ``drop_connect(x, p, training=self.training)``, which returns ``x`` in eval()). Called as
    one operation, its flag becomes ``self.training`` and its block is traced, not kept whole
    (its layers then read the memory); None where there is no such function."""
    for node in nodes:
        frames = _user_frames(node)
        if not frames or frames[-1][2] in ("forward", "<module>"):
            continue
        file, _, name, _ = frames[-1]
        for module in list(sys.modules.values()):
            fn = getattr(module, name, None)
            if inspect.isfunction(fn) and fn.__qualname__ == name and fn.__code__.co_filename == file and \
                    "training" in inspect.signature(fn).parameters:
                return fn
    return None


def stack_location(node: fx.Node) -> str | None:
    """file:line (`code`) of the innermost user frame in a node's recorded stack trace."""
    frames = _user_frames(node)
    return f"{frames[-1][0]}:{frames[-1][1]} (`{frames[-1][3]}`)" if frames else None


def _trace_once(model: nn.Module, leaf_names: frozenset[str], training: bool, fixed: dict,
                empty_varargs: bool = False, real_buffers: frozenset[type] = frozenset(),
                wrapped: tuple = ()) -> tuple[fx.Graph, set[type]]:
    """One trace, and the classes whose forwards read a buffer as a traced value."""
    # torch.fx keeps tensors made while tracing (torch.arange(...) of plain numbers) as root
    # attributes _tensor_constant0, 1, ...: start each trace without an earlier trace's, so the
    # train and eval graphs name them alike
    for name in [k for k in vars(model) if _FX_CONSTANT.fullmatch(k)]:
        delattr(model, name)
    saved = snapshot(model)   # the mode of each module included
    model.train(training)
    try:
        tracer = AimTracer(leaf_names, empty_varargs, real_buffers, wrapped)
        graph = tracer.trace(model, concrete_args=fixed or None)
    finally:
        restore(saved)
    _drop_fixed_inputs(graph, fixed)
    return graph, tracer.proxied


@dataclass
class Snapshot:
    """Each module's own attributes, buffers, parameters and submodules at one moment, and what
    a run may change in place: the items of each dict or list a module holds (LeViT's attention
    caches a table per device in a dict; the hooks a forward registers) and (``values``) each
    buffer's values."""

    modules: list[tuple[nn.Module, dict, dict, dict, dict]]
    values: list[tuple[torch.Tensor, torch.Tensor]]
    items: list[tuple[dict | list, dict | list]]


def snapshot(model: nn.Module, values: bool = False) -> Snapshot:
    modules = [(m, dict(vars(m)), dict(m._buffers), dict(m._parameters), dict(m._modules)) for m in model.modules()]
    # (hooks included: transformers installs its output-capturing hooks on the first call and
    # marks the root; put back the mark alone, and the next call installs them twice)
    items = [(v, copy.copy(v)) for m, attrs, *_ in modules for k, v in attrs.items()
             if isinstance(v, (dict, list)) and k not in ("_buffers", "_parameters", "_modules")]
    return Snapshot(modules, [(b, b.clone()) for b in model.buffers()] if values else [], items)


@contextlib.contextmanager
def as_found(model: nn.Module):
    """Run the model inside, then put back what the run set on its modules (``restore``)."""
    saved = snapshot(model, values=True)
    try:
        yield
    finally:
        restore(saved)


def restore(saved: Snapshot) -> None:
    """Put back what a run set on the model's modules: a traced forward's ``self.anchors = ...``
    (values of the trace, which would stand in for real ones in the next call), or a table a
    layer makes on its first real call (ConViT's ``self.rel_indices = ...``, a buffer), so that
    a kept layer is compared with its rebuild as the model was loaded, and the caller's model
    is left as it was given."""
    for module, *saved_dicts in saved.modules:
        plain = vars(module)
        for now, then in zip((plain, module._buffers, module._parameters, module._modules), saved_dicts):
            # (torch.fx's own constants stay: the graph reads them)
            kept = {k: v for k, v in now.items() if k not in then and _FX_CONSTANT.fullmatch(k)} if now is plain else {}
            if not _unchanged(now, {**then, **kept}):
                now.clear()   # in the order they were: a ModuleList's items are its dict's order
                now.update(then)
                now.update(kept)
    with torch.no_grad():
        for buffer, value in saved.values:
            buffer.copy_(value)
    for container, items in saved.items:
        if _unchanged(container, items):
            continue   # (diffusers' config is a FrozenDict: its update raises, after clear() emptied it)
        if isinstance(container, dict):
            container.clear()
            container.update(items)
        else:
            container[:] = items


def _unchanged(container: dict | list, items: dict | list) -> bool:
    """Whether a dict or list holds the very items it held (the same objects, in order)."""
    if isinstance(container, dict):
        return list(container) == list(items) and all(container[k] is v for k, v in items.items())
    return len(container) == len(items) and all(a is b for a, b in zip(container, items))


def forward_inputs(model: nn.Module) -> list[inspect.Parameter]:
    """The forward's parameters that take inputs (not ``self``, not ``*args``/``**kwargs``)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def fixed_arguments(model: nn.Module, n_inputs: int | None, source: str) -> dict:
    """Forward arguments beyond the given inputs that have defaults: traced at their defaults
    (``attn_mask=None``). Too few inputs for the required ones is an error naming them."""
    params = forward_inputs(model)
    if n_inputs is None or not params:
        return {}
    required = [p.name for p in params if p.default is p.empty]
    optional = [p.name for p in params if p.default is not p.empty]
    if n_inputs < len(required):
        raise TraceError(
            f"{source}: the model's forward takes {len(required)} required input(s) ({', '.join(required)})"
            f"{' and optional ' + ', '.join(optional) if optional else ''}, but {n_inputs} input shape(s) were given.",
            hint="Give one input shape per required input, in order (an optional one may follow).")
    if n_inputs > len(params):
        raise TraceError(
            f"{source}: the model's forward takes {len(params)} input(s) ({', '.join(p.name for p in params)}) "
            f"but {n_inputs} input shapes were given.", hint="Give one input shape per input, in order.")
    return {p.name: p.default for p in params[n_inputs:]}


def _drop_fixed_inputs(graph: fx.Graph, fixed: dict) -> None:
    """torch.fx keeps a placeholder for each fixed argument, asserting its value: drop both, so
    the generated forward takes only the inputs that were given (its header says what was fixed)."""
    if not fixed:
        return
    asserts = {"_assert_is_none", "_assert"}
    for node in [n for n in graph.nodes if n.op == "placeholder"]:
        name = str(node.target).rsplit("_", 1)[0] if str(node.target) not in fixed else str(node.target)
        if name not in fixed:
            continue
        for user in list(node.users):
            if getattr(user.target, "__name__", "") in asserts:
                graph.erase_node(user)
            elif user.target is operator.eq and all(getattr(u.target, "__name__", "") in asserts for u in user.users):
                for u in list(user.users):
                    graph.erase_node(u)
                graph.erase_node(user)
        value = fixed[name]
        for user in list(node.users):
            user.args = fx.node.map_arg(user.args, lambda a: value if a is node else a)
            user.kwargs = fx.node.map_arg(user.kwargs, lambda a: value if a is node else a)
        graph.erase_node(node)


def flat_values(value, path=()):
    """(path, leaf) for every leaf of nested tuples, lists, dicts and slices: two calls'
    arguments compared value by value."""
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from flat_values(v, path + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from flat_values(v, path + (k,))
    elif isinstance(value, slice):
        for k in ("start", "stop", "step"):
            yield from flat_values(getattr(value, k), path + (k,))
    else:
        yield path, value


_MODE_VALUES = (bool, int, float, type(None))


def _compare(tn: list[fx.Node], en: list[fx.Node], k: int) -> fx.Node | None:
    """The first eval node that differs, given that the first ``k`` nodes agree (_agreeing);
    None where the graphs differ only by plain constants (True/False, a dropout rate and 0.0)."""
    if k < min(len(tn), len(en)):
        return _deeper(tn[k], en[k])
    if len(tn) != len(en):
        return en[min(len(tn), len(en)) - 1]
    return None


def _agreeing(tn: list[fx.Node], en: list[fx.Node]) -> tuple[int, dict]:
    """How many leading nodes of the two graphs agree (the same call, the same inputs, constants
    that differ only as plain values), and those constants."""
    flags: dict[str, dict[tuple, tuple]] = {}
    for k, (a, b) in enumerate(zip(tn, en)):
        differ = _same_call(a, b, lambda va, vb: va.name == vb.name) if a.name == b.name else None
        if differ is None:
            return k, flags
        if differ:
            flags[b.name] = differ
    return min(len(tn), len(en)), flags


def _same_call(a: fx.Node, b: fx.Node, same_input) -> dict[tuple, tuple] | None:
    """Whether ``a`` (train()) and ``b`` (eval()) make the same call on the same inputs
    (``same_input(a_input, b_input)``), with constants that may differ only as plain values:
    those, {path: (train value, eval value)}, or None where the calls differ."""
    if (a.op, a.target) != (b.op, b.target):
        return None
    fa = list(flat_values((a.args, a.kwargs)))
    fb = list(flat_values((b.args, b.kwargs)))
    if [p for p, _ in fa] != [p for p, _ in fb]:
        return None
    differ = {}
    for (path, va), (_, vb) in zip(fa, fb):
        if isinstance(va, fx.Node) or isinstance(vb, fx.Node):
            if not (isinstance(va, fx.Node) and isinstance(vb, fx.Node) and same_input(va, vb)):
                return None
        elif type(va) is type(vb) and va == vb:
            continue
        elif isinstance(va, _MODE_VALUES) and isinstance(vb, _MODE_VALUES):
            differ[path] = (va, vb)
        else:
            return None
    return differ


def _train_branches(train: fx.Graph, evalg: fx.Graph) -> tuple[fx.Graph, dict] | None:
    """Where eval() runs a part of what train() runs and returns something else: auxiliary
    heads that only train() computes and returns beside the logits (torchvision's GoogLeNet
    and Inception3: ``if self.training and self.aux_logits: return Outputs(x, aux2, aux1)``).
    One graph, train()'s: each node of it that eval() does not run is marked ``train_only``
    (written under ``if self.training:``), train()'s output is returned in train()
    (``train_return``) and eval()'s after it. eval()'s nodes are found in train()'s in order,
    call by call and input by input (their names may differ: torch.fx numbers them as it goes).
    (graph, flags) or None."""
    tn, en = list(train.nodes), list(evalg.nodes)
    if tn[-1].op != "output" or en[-1].op != "output":
        return None
    env: dict[fx.Node, fx.Node] = {}            # eval node -> the train node that computes it
    flags: dict[str, dict[tuple, tuple]] = {}
    i = 0
    for b in en[:-1]:
        while i < len(tn) - 1:
            differ = _same_call(tn[i], b, lambda va, vb: env.get(vb) is va)
            if differ is not None:
                break
            i += 1
        else:
            return None
        env[b] = tn[i]
        if differ:
            flags[tn[i].name] = differ
        i += 1
    matched = set(env.values())
    extra = [n for n in tn[:-1] if n not in matched]
    if not extra or any(n.op == "placeholder" for n in extra):
        return None
    with train.inserting_before(tn[-1]):
        ret = train.call_function(train_return, (tn[-1].args[0],))
    for n in extra + [ret]:
        n.meta["train_only"] = True
    tn[-1].args = (fx.node.map_arg(en[-1].args[0], env.__getitem__),)
    train.lint()
    return train, flags


@torch.fx.node.has_side_effect
def train_return(value):
    """Where a merged graph (see _mode_tail) returns ``value`` in train() mode: the generated
    forward writes ``if self.training: return value``. Computes nothing."""
    return None


def _has_weights(model: nn.Module, qual: str) -> bool:
    return bool(qual) and next(model.get_submodule(qual).parameters(), None) is not None


def _mode_tail(train: fx.Graph, evalg: fx.Graph, model: nn.Module, k: int, flags: dict):
    """A submodule with weights whose output depends on the mode (a head: logits in train(),
    ``(probabilities, logits)`` in eval(); ultralytics' Classify and Detect), where the two
    graphs agree up to a point and everything after it, up to the output, is that module's
    code: one graph that computes the part both share, then, in train(), its train part and
    returns its output (``train_return``), else its eval part. Their nodes are written in the
    root's forward (nothing outside the module computes anything after them, so the root's
    output is what each mode returns). The first ``k`` nodes agree, with ``flags`` (_agreeing).
    (graph, flags, module) or None."""
    tn, en = list(train.nodes), list(evalg.nodes)
    t_tail, e_tail = tn[k:-1], en[k:-1]
    if tn[-1].op != "output" or en[-1].op != "output" or not (t_tail or e_tail) or k == 0:
        return None
    owners = {module_of(n) for n in t_tail + e_tail}
    qual = min(owners, key=len)
    if not _has_weights(model, qual) or any(o != qual and not o.startswith(qual + ".") for o in owners) or \
            any(n.op == "placeholder" for n in t_tail + e_tail):
        return None
    env = {a: b for a, b in zip(tn[:k], en[:k])}
    with evalg.inserting_before(en[k]):
        for a in t_tail:
            b = evalg.create_node(a.op, a.target, fx.node.map_arg(a.args, env.__getitem__),
                                  fx.node.map_arg(a.kwargs, env.__getitem__), name=a.name)
            b.meta.update(a.meta)
            b.meta["train_only"] = True
            env[a] = b
        ret = evalg.call_function(train_return, (fx.node.map_arg(tn[-1].args[0], env.__getitem__),))
        ret.meta["train_only"] = True
    for n in e_tail:
        n.meta["eval_only"] = True
    for n in [env[a] for a in t_tail] + e_tail:
        stack = n.meta.get("nn_module_stack") or {}
        n.meta["nn_module_stack"] = {key: (q, cls) for key, (q, cls) in stack.items()
                                     if not (q == qual or q.startswith(qual + ".")) or
                                     (n.op == "call_module" and q == n.target)}
    evalg.lint()
    return evalg, flags, qual


def _deeper(a: fx.Node, b: fx.Node) -> fx.Node:
    """Of the first two nodes that differ, the one inside the deeper module: the other may just
    be where the shorter graph goes on (the root's next node)."""
    if a.op == "output":
        return b
    if b.op == "output":
        return a
    return a if module_of(a).count(".") + bool(module_of(a)) > module_of(b).count(".") + bool(module_of(b)) else b


def _classes_in(model: nn.Module, qual: str) -> set[type]:
    """The classes of the module ``qual`` and of the modules inside it."""
    try:
        return {type(m) for m in model.get_submodule(qual).modules()}
    except AttributeError:
        return set()


def module_of(node: fx.Node) -> str:
    """The module whose forward made the node (for a call_module node: its caller)."""
    stack = node.meta.get("nn_module_stack") or {}
    for key, (qual, _cls) in reversed(list(stack.items())):
        qual = qual if isinstance(qual, str) else key
        if node.op == "call_module" and qual == node.target:
            continue
        return qual
    return ""


def trace(model: nn.Module, leaf_names: frozenset[str] = frozenset(), source: str = "the model",
          n_inputs: int | None = None, empty_varargs: bool = False) -> Traced:
    """Trace in train and eval mode and reconcile ``self.training`` as described above.

    A submodule torch.fx cannot trace (control flow on a tensor value, ``len`` of a traced
    tensor, ...) is kept whole as a leaf, the innermost one first; code in the root module's own
    forward cannot be, and is refused with its file and line."""
    leaves = frozenset(leaf_names)
    reasons: dict[str, str] = {}
    fixed = fixed_arguments(model, n_inputs, source)
    real: frozenset[type] = frozenset()   # classes whose forwards read buffers as tensors
    wrapped: tuple = ()   # functions that branch on a training flag, called whole (see _mode_function)
    for _ in range(64):
        try:
            g_train, read_train = _trace_once(model, leaves, True, fixed, empty_varargs, real, wrapped)
            g_eval, read_eval = _trace_once(model, leaves, False, fixed, empty_varargs, real, wrapped)
        except Exception as err:
            loc = _user_location(err) or source
            first = str(err).splitlines()[0] if str(err) else ""
            qual = getattr(err, "_aimgen_module", "")
            readers = _classes_in(model, qual) & getattr(err, "_aimgen_proxied", set())
            if readers - real:   # a buffer read as a traced value may be what failed: read it as before
                real = real | readers
                continue
            if qual and qual not in leaves:
                reasons[qual] = f"torch.fx cannot trace it ({type(err).__name__}: {first} at {loc})"
                leaves = leaves | {qual}
                continue
            raise TraceError(
                f"torch.fx cannot trace {source}: {type(err).__name__}: {first} at {loc}"
                f"{' (in ' + qual + ', listed as a leaf)' if qual else ' (in the root module forward)'}.",
                hint="Control flow on tensor values and len() of a traced tensor cannot be traced; "
                "move that code into a submodule (aimgen then keeps it whole as a leaf), or list a module "
                "with --leaf NAME, or make it shape-free.",
            ) from err
        tn, en = list(g_train.nodes), list(g_eval.nodes)
        k, flags = _agreeing(tn, en)
        culprit = _compare(tn, en, k)
        readers = _classes_in(model, module_of(culprit)) & (read_train | read_eval) \
            if culprit is not None else set()
        if readers - real:   # a buffer updated in train() only (num_batches_tracked.add_(1)): as before
            real = real | readers
            continue
        function = _mode_function(tn[k], en[k]) if culprit is not None and k < min(len(tn), len(en)) else None
        if function is not None and function not in wrapped:
            wrapped += (function,)   # smp's drop_connect(x, p, training=self.training)
            continue
        tail = None
        # a module without weights whose output differs (a custom dropout) is better kept whole
        if culprit is not None and _has_weights(model, module_of(culprit)):
            tail = _mode_tail(g_train, g_eval, model, k, flags)
            if tail is not None:
                g_eval, flags, tail = tail
                culprit = None
        # (a module without weights whose output differs, a custom dropout, is kept whole below)
        branches = _train_branches(g_train, g_eval) if culprit is not None and (
            not module_of(culprit) or _has_weights(model, module_of(culprit))) else None
        if branches is not None:
            g_eval, flags = branches
            culprit = None
        if culprit is None:
            return Traced(root=model, graph=g_eval, training_values=flags, leaf_names=leaves,
                          leaf_reasons=reasons, fixed_inputs=fixed, mode_tail=tail)
        qual = module_of(culprit)
        loc = stack_location(culprit) or source
        if not qual or qual in leaves:
            raise TraceError(
                f"{source}: the forward of {'the root module' if not qual else qual} takes a different "
                f"path in train() and eval() mode (`if self.training` or similar), near {loc}; "
                "torch.fx would bake in one branch.",
                hint="Move the branch into a submodule (it is then kept whole as a leaf), or make it "
                "branch-free, e.g. F.dropout(x, p, self.training).",
            )
        reasons[qual] = f"its forward depends on self.training (near {loc})"
        leaves = leaves | {qual}
    raise TraceError(f"{source}: too many modules depend on self.training or cannot be traced.")
