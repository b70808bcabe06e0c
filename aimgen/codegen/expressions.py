"""One graph node as a Python expression.

Values of other nodes are written as markers (``ref(node)``) and replaced by their local names
once every statement of a function is known (see functions.py): the same node is a parameter
name in one function and ``self.weight`` in another. Every user string that is not a safe
identifier is written with repr (``getattr(x, 'odd key')``); constants go through
literals.literal; functions are written by their import path or copied (sourcecopy.py).
"""
from __future__ import annotations

import builtins
import functools
import inspect
import math
import operator
import re

import torch
import torch.fx as fx
import torch.nn.functional as F

from ..errors import RenderError
from ..literals import index_literal, literal
from ..modules import public_path
from ..naming import attribute_access, is_safe_identifier
from ..sourcecopy import SourceCopier, is_namedtuple, is_user_object

MARK = "\x00"
CONST = "\x01"   # around a constant's number: the class writer may turn it into a parameter

_BINARY = {
    operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
    operator.floordiv: "//", operator.mod: "%", operator.pow: "**", operator.matmul: "@",
    operator.and_: "&", operator.or_: "|", operator.xor: "^", operator.lshift: "<<",
    operator.rshift: ">>", operator.eq: "==", operator.ne: "!=", operator.lt: "<",
    operator.le: "<=", operator.gt: ">", operator.ge: ">=",
}
_UNARY = {operator.neg: "-", operator.pos: "+", operator.invert: "~", operator.not_: "not "}
_FUNCTION_HOMES = (("F", F), ("torch", torch), ("torch.linalg", torch.linalg), ("torch.fft", torch.fft),
                   ("torch.special", torch.special), ("math", math), ("operator", operator))


def _has_class_statement(cls: type) -> bool:
    """True where ``cls`` was written as a class statement (a NamedTuple subclass, not a
    ``collections.namedtuple`` call), which the copier can then copy as written."""
    try:
        inspect.getsource(cls)
    except (OSError, TypeError):
        return False
    return True


def ref(node: fx.Node) -> str:
    return f"{MARK}{node.name}{MARK}"


class Expressions:
    """Writes nodes as expressions; collects the imports and copied definitions they need."""

    def __init__(self, training_values: dict, copier: SourceCopier):
        self.training_values = training_values
        self.copier = copier
        self.imports: set[str] = set()
        self.constants: dict[str, object] = {}   # constant marker -> its value
        self.labels: dict[str, str] = {}          # constant marker -> the argument it fills, if known

    # --- values ---------------------------------------------------------------------------
    def arg(self, value, node: fx.Node | None = None, path: tuple = ()) -> str:
        if node is not None:
            modes = self.training_values.get(node.name, {})
            if path in modes:
                train, evaluate = modes[path]
                if train is True and evaluate is False:
                    return "self.training"
                return f"({literal(train)} if self.training else {literal(evaluate)})"
        if isinstance(value, fx.Node):
            return ref(value)
        if is_namedtuple(type(value)):
            items = [self.arg(v, node, path + (i,)) for i, v in enumerate(value)]
            return f"{self.class_ref(type(value), node)}({', '.join(items)})"
        if isinstance(value, (tuple, list)):
            items = [self.arg(v, node, path + (i,)) for i, v in enumerate(value)]
            if isinstance(value, tuple):
                return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
            return "[" + ", ".join(items) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{literal(k)}: {self.arg(v, node, path + (k,))}" for k, v in value.items()) + "}"
        if isinstance(value, slice):
            return f"slice({self.arg(value.start)}, {self.arg(value.stop)}, {self.arg(value.step)})"
        if isinstance(value, str) and "Proxy(" in value:  # torch.fx wrote a traced value into a message
            value = re.sub(r"Proxy\(\w+\)", "...", value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and node is not None:
            key = str(len(self.constants))
            self.constants[key] = value
            self.labels[key] = argument_name(node, path)
            return f"{CONST}{key}{CONST}"
        return literal(value, where=f"operation {node.name if node else '?'}")

    def call_parts(self, node: fx.Node) -> tuple[list[str], dict[str, str]]:
        args = [self.arg(a, node, (0, i)) for i, a in enumerate(node.args)]
        kwargs = {}
        defaults = _functional_defaults(node.target) if node.op == "call_function" else {}
        for k, v in node.kwargs.items():
            if not is_safe_identifier(k):
                raise RenderError(f"operation {node.name}: keyword argument {k!r} is not an identifier.")
            if k in defaults and type(v) is type(defaults[k]) and v == defaults[k]:
                continue   # torch.fx records F.relu(x) as F.relu(x, inplace=False): written as called
            kwargs[k] = self.arg(v, node, (1, k))
        return args, kwargs

    @staticmethod
    def join(args: list[str], kwargs: dict[str, str]) -> str:
        return ", ".join(list(args) + [f"{k}={v}" for k, v in kwargs.items()])

    # --- callables ------------------------------------------------------------------------
    def class_ref(self, cls, node: fx.Node | None) -> str:
        """Source naming a class the forward builds (a NamedTuple or dataclass output)."""
        if is_namedtuple(cls) and not (is_user_object(cls) and _has_class_statement(cls)):
            return self.copier.add_namedtuple(cls, f"operation {node.name if node else '?'} builds it")
        if is_user_object(cls):
            return self.copier.add(cls, f"operation {node.name if node else '?'} builds it")
        return self.function_ref(cls, node)

    def function_ref(self, fn, node: fx.Node) -> str:
        if is_namedtuple(fn):
            return self.class_ref(fn, node)
        name = getattr(fn, "__name__", None)
        if fn is getattr(builtins, name or "", None):
            return name
        if is_user_object(fn):
            return self.copier.add(fn, f"operation {node.name} calls it")
        for home, module in _FUNCTION_HOMES:
            if name and getattr(module, name, None) is fn and is_safe_identifier(name):
                if home in ("math", "operator"):
                    self.imports.add(home)
                return f"{home}.{name}"
        copied = self.copier.copy_library(fn, f"operation {node.name} calls it") if inspect.isfunction(fn) else None
        if copied is not None:   # a library's function (torchvision.ops.stochastic_depth): standalone
            return copied
        found = public_path(fn)
        if found is not None and is_safe_identifier(name or "") and not found[0].startswith("aimgen_user_"):
            if found[0] != "torch":
                self.imports.add(found[0])
            return found[1]
        raise RenderError(
            f"operation {node.name} calls {getattr(fn, '__qualname__', fn)!r}"
            f"{' from ' + fn.__module__ if getattr(fn, '__module__', None) else ''}, which the "
            "generated file cannot import by name.",
            hint="Call it inside a submodule and list that with leaf=, or use a torch function.")

    # --- one node -------------------------------------------------------------------------
    def expression(self, node: fx.Node, module: str | None = None) -> str:
        """The node's value as an expression; ``module`` is the source of the called module
        for call_module nodes (relative to the class the statement is written in)."""
        if node.op == "call_module":
            args, kwargs = self.call_parts(node)
            return f"{module}({self.join(args, kwargs)})"
        if node.op == "call_method":
            obj = self.arg(node.args[0], node, (0, 0))
            rest = [self.arg(a, node, (0, i + 1)) for i, a in enumerate(node.args[1:])]
            kw = {k: self.arg(v, node, (1, k)) for k, v in node.kwargs.items()}
            method = node.target
            target = f"{obj}.{method}" if is_safe_identifier(method) else f"getattr({obj}, {method!r})"
            return f"{target}({self.join(rest, kw)})"
        fn = node.target
        if fn in _BINARY and len(node.args) == 2 and not node.kwargs:
            a, b = (self.arg(x, node, (0, i)) for i, x in enumerate(node.args))
            return f"{a} {_BINARY[fn]} {b}"
        if fn in _UNARY and len(node.args) == 1:
            return f"{_UNARY[fn]}{self.arg(node.args[0], node, (0, 0))}"
        if fn is operator.getitem and len(node.args) == 2:
            obj = self.arg(node.args[0], node, (0, 0))
            idx = index_literal(node.args[1], lambda v: self.arg(v, node))
            return f"{obj}[{idx}]"
        if fn is operator.setitem and len(node.args) == 3 and not node.users:   # a statement
            obj = self.arg(node.args[0], node, (0, 0))
            idx = index_literal(node.args[1], lambda v: self.arg(v, node))
            return f"{obj}[{idx}] = {self.arg(node.args[2], node, (0, 2))}"
        if fn is builtins.getattr and len(node.args) == 2 and isinstance(node.args[1], str):
            return attribute_access(self.arg(node.args[0], node, (0, 0)), node.args[1])
        if aten_name(fn) is not None:
            return aten_expression(self, node)
        args, kwargs = self.call_parts(node)
        return f"{self.function_ref(fn, node)}({self.join(args, kwargs)})"

    def callee(self, node: fx.Node) -> str:
        """The function a call_function node calls, as source."""
        name = aten_name(node.target)
        if name in _ATEN_FUNCTIONS:
            return _ATEN_FUNCTIONS[name]
        return self.function_ref(node.target, node)


@functools.lru_cache(maxsize=None)
def _functional_defaults(fn) -> dict:
    """The plain default values of a torch.nn.functional function's keyword parameters."""
    if getattr(fn, "__module__", None) != "torch.nn.functional":
        return {}
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not p.empty
            and type(p.default) in (bool, int, float, str, type(None))}


# --- aten operations (graphs captured with torch.export, see capture.py) ------------------------
# The common aten overloads written as a person writes them: ``aten.view.default(x, [b, -1])`` as
# ``x.view(b, -1)``, ``aten.add.Tensor`` as ``a + b``, ``aten.linear.default`` as ``F.linear``,
# ``aten.sym_size.int(x, 0)`` as ``x.shape[0]``. Arguments left at their schema defaults are left
# out (unless they differ between train() and eval()). Any other overload is written
# ``torch.ops.aten.NAME.OVERLOAD(...)``, which is valid too.

_ATEN_OPERATORS = {
    "add.Tensor": "+", "add.Scalar": "+", "sub.Tensor": "-", "sub.Scalar": "-", "mul.Tensor": "*",
    "mul.Scalar": "*", "div.Tensor": "/", "div.Scalar": "/", "floor_divide.default": "//",
    "remainder.Tensor": "%", "remainder.Scalar": "%", "pow.Tensor_Scalar": "**", "pow.Tensor_Tensor": "**",
    "pow.Scalar": "**", "matmul.default": "@", "eq.Tensor": "==", "eq.Scalar": "==", "ne.Tensor": "!=",
    "ne.Scalar": "!=", "lt.Tensor": "<", "lt.Scalar": "<", "le.Tensor": "<=", "le.Scalar": "<=",
    "gt.Tensor": ">", "gt.Scalar": ">", "ge.Tensor": ">=", "ge.Scalar": ">=", "bitwise_and.Tensor": "&",
    "__and__.Tensor": "&", "bitwise_or.Tensor": "|", "__or__.Tensor": "|", "bitwise_xor.Tensor": "^",
    "__xor__.Tensor": "^",
}
_ATEN_UNARY = {"neg.default": "-", "bitwise_not.default": "~"}
# methods whose list argument is written unpacked: x.view(b, -1)
_ATEN_UNPACKED = {"view.default": "view", "reshape.default": "reshape", "expand.default": "expand",
                  "permute.default": "permute", "repeat.default": "repeat"}
_ATEN_METHODS = {
    "transpose.int": "transpose", "t.default": "t", "unsqueeze.default": "unsqueeze", "squeeze.dim": "squeeze",
    "squeeze.dims": "squeeze", "squeeze.default": "squeeze", "flatten.using_ints": "flatten",
    "contiguous.default": "contiguous", "clone.default": "clone", "split.Tensor": "split",
    "split_with_sizes.default": "split", "chunk.default": "chunk", "unbind.int": "unbind", "to.dtype": "to",
    "to.dtype_layout": "to", "to.device": "to", "type_as.default": "type_as", "masked_fill.Scalar": "masked_fill",
    "masked_fill.Tensor": "masked_fill", "softmax.int": "softmax", "log_softmax.int": "log_softmax",
    "mean.dim": "mean", "mean.default": "mean", "sum.dim_IntList": "sum", "sum.default": "sum",
    "amax.default": "amax", "amin.default": "amin", "max.dim": "max", "min.dim": "min", "argmax.default": "argmax",
    "argmin.default": "argmin", "cumsum.default": "cumsum", "gather.default": "gather",
    "index_select.default": "index_select", "new_ones.default": "new_ones", "new_zeros.default": "new_zeros",
    "new_full.default": "new_full", "new_empty.default": "new_empty", "detach.default": "detach",
    "clamp.default": "clamp", "clamp_min.default": "clamp_min", "clamp_max.default": "clamp_max",
    "flip.default": "flip", "narrow.default": "narrow", "expand_as.default": "expand_as",
    "view_as.default": "view_as", "float.default": "float", "bool.default": "bool", "long.default": "long",
    "add_.Tensor": "add_", "add_.Scalar": "add_", "sub_.Tensor": "sub_", "sub_.Scalar": "sub_",
    "mul_.Tensor": "mul_", "mul_.Scalar": "mul_", "div_.Tensor": "div_", "div_.Scalar": "div_",
    "copy_.default": "copy_", "fill_.Scalar": "fill_", "zero_.default": "zero_",
    "masked_fill_.Scalar": "masked_fill_", "relu_.default": "relu_",
}
# functions whose arguments are the aten schema's, in the same order
_ATEN_FUNCTIONS = {
    "linear.default": "F.linear", "conv1d.default": "F.conv1d", "conv2d.default": "F.conv2d",
    "conv3d.default": "F.conv3d", "conv_transpose1d.default": "F.conv_transpose1d",
    "conv_transpose2d.input": "F.conv_transpose2d", "conv_transpose3d.input": "F.conv_transpose3d",
    "dropout.default": "F.dropout", "gelu.default": "F.gelu", "relu.default": "F.relu", "silu.default": "F.silu",
    "mish.default": "F.mish", "hardswish.default": "F.hardswish", "hardsigmoid.default": "F.hardsigmoid",
    "elu.default": "F.elu", "leaky_relu.default": "F.leaky_relu", "softplus.default": "F.softplus",
    "hardtanh.default": "F.hardtanh", "glu.default": "F.glu", "pixel_shuffle.default": "F.pixel_shuffle",
    "scaled_dot_product_attention.default": "F.scaled_dot_product_attention",
    "max_pool1d.default": "F.max_pool1d", "max_pool2d.default": "F.max_pool2d", "max_pool3d.default": "F.max_pool3d",
    "avg_pool1d.default": "F.avg_pool1d", "avg_pool2d.default": "F.avg_pool2d", "avg_pool3d.default": "F.avg_pool3d",
    "adaptive_avg_pool1d.default": "F.adaptive_avg_pool1d", "adaptive_avg_pool2d.default": "F.adaptive_avg_pool2d",
    "adaptive_avg_pool3d.default": "F.adaptive_avg_pool3d", "pad.default": "F.pad",
    "cat.default": "torch.cat", "stack.default": "torch.stack", "where.self": "torch.where",
    "arange.default": "torch.arange", "arange.start": "torch.arange", "arange.start_step": "torch.arange",
    "zeros.default": "torch.zeros", "ones.default": "torch.ones", "full.default": "torch.full",
    "zeros_like.default": "torch.zeros_like", "ones_like.default": "torch.ones_like",
    "full_like.default": "torch.full_like", "bmm.default": "torch.bmm", "mm.default": "torch.mm",
    "addmm.default": "torch.addmm", "baddbmm.default": "torch.baddbmm", "einsum.default": "torch.einsum",
    "tanh.default": "torch.tanh", "sigmoid.default": "torch.sigmoid", "exp.default": "torch.exp",
    "log.default": "torch.log", "sqrt.default": "torch.sqrt", "rsqrt.default": "torch.rsqrt",
    "abs.default": "torch.abs", "erf.default": "torch.erf", "sin.default": "torch.sin", "cos.default": "torch.cos",
    "logical_not.default": "torch.logical_not", "diff.default": "torch.diff", "tril.default": "torch.tril",
    "triu.default": "torch.triu", "roll.default": "torch.roll", "outer.default": "torch.outer",
}
# arguments torch's own function does not take (they only pick a kernel)
_ATEN_DROPPED = {"layer_norm.default": 5, "group_norm.default": 5, "batch_norm.default": 8}


def argument_name(node: fx.Node, path: tuple) -> str:
    """The name of the argument a value fills (``stride`` of ``F.conv2d``), from the aten schema
    of the call; '' where there is none. ``path``: (0, position, ...) or (1, keyword, ...)."""
    if len(path) < 2:
        return ""
    if path[0] == 1:
        return str(path[1])
    try:
        names = _argument_names(node.target)
    except TypeError:   # a target that cannot be a cache key
        return ""
    i = path[1]
    return names[i] if isinstance(i, int) and i < len(names) else ""


@functools.lru_cache(maxsize=None)
def _argument_names(target) -> tuple[str, ...]:
    """The aten schema's argument names of a call target (an aten op, or the torch function or
    method of that name); () where there is none (operators: ``x * 3``)."""
    if not isinstance(target, torch._ops.OpOverload):
        name = target if isinstance(target, str) else getattr(target, "__name__", "")
        if getattr(target, "__module__", "") == "_operator" or not name or name.startswith("_"):
            return ()
        packet = getattr(torch.ops.aten, name, None)
        overloads = packet.overloads() if packet is not None else []
        chosen = "default" if "default" in overloads else (overloads[0] if overloads else None)
        target = getattr(packet, chosen, None) if chosen else None
    try:
        return tuple(a.name for a in target._schema.arguments)
    except AttributeError:
        return ()


def aten_name(op) -> str | None:
    """``view.default`` for ``torch.ops.aten.view.default``; None for anything else."""
    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten":
        return None
    return f"{op._schema.name.split('::', 1)[1]}.{op._overloadname}"


def _same(value, default) -> bool:
    """``value`` is the schema's default (``[0, 0]`` is ``int[2] padding=0``)."""
    if isinstance(value, (list, tuple)) and isinstance(default, int) and not isinstance(default, bool):
        return bool(value) and all(type(v) is int and v == default for v in value)
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return len(value) == len(default) and all(_same(v, d) for v, d in zip(value, default))
    if isinstance(value, fx.Node) or type(value) is not type(default) and not (
            isinstance(value, (int, float)) and isinstance(default, (int, float)) and not isinstance(value, bool)):
        return False
    try:
        return bool(value == default)
    except Exception:
        return False


class _AtenCall:
    """One aten call's arguments, written; with the schema to leave defaults out."""

    def __init__(self, ex: "Expressions", node: fx.Node):
        self.ex, self.node = ex, node
        self.schema = node.target._schema.arguments
        self.args = [ex.arg(a, node, (0, i)) for i, a in enumerate(node.args)]
        self.kwargs = {k: ex.arg(v, node, (1, k)) for k, v in node.kwargs.items() if is_safe_identifier(k)}
        self.modes = ex.training_values.get(node.name, {})

    def items(self, i: int) -> list[str]:
        """The i-th argument's items (a list argument), each written on its own."""
        value = self.node.args[i]
        if isinstance(value, (list, tuple)):
            return [self.ex.arg(v, self.node, (0, i, j)) for j, v in enumerate(value)]
        return [self.args[i]]

    def _default(self, name: str):
        for s in self.schema:
            if s.name == name and s.has_default_value():
                return True, s.default_value
        return False, None

    def trimmed(self, start: int = 0, stop: int | None = None) -> tuple[list[str], dict[str, str]]:
        """Positional arguments from ``start`` (to ``stop``) and keywords, trailing defaults left out."""
        raw = list(self.node.args)[:stop]
        args = self.args[:stop]
        while len(args) > start and len(args) - 1 < len(self.schema):
            i = len(args) - 1
            s = self.schema[i]
            if (0, i) in self.modes or not s.has_default_value() or not _same(raw[i], s.default_value):
                break
            args.pop()
        kwargs = {}
        for k, v in self.kwargs.items():
            has, default = self._default(k)
            if (1, k) in self.modes or not has or not _same(self.node.kwargs[k], default):
                kwargs[k] = v
        return args[start:], kwargs

    def call(self, callee: str, start: int = 0, stop: int | None = None, first: list[str] | None = None) -> str:
        args, kwargs = self.trimmed(start, stop)
        return f"{callee}({Expressions.join((first or []) + args, kwargs)})"

    def index(self, dim, item: str) -> str:
        """``x[:, item]`` with ``item`` at axis ``dim``."""
        if isinstance(dim, int) and dim < 0:
            return f"{self.args[0]}[..., {', '.join([item] + [':'] * (-dim - 1))}]"
        lead = ":, " * dim if isinstance(dim, int) else ""
        return f"{self.args[0]}[{lead}{item}]"


def _slice_text(c: _AtenCall) -> str | None:
    raw = list(c.node.args) + [None] * (5 - len(c.node.args))
    dim, start, end, step = (raw[1] if len(c.node.args) > 1 else 0), raw[2], raw[3], raw[4]
    if not isinstance(dim, int) or c.modes:
        return None
    a = "" if start is None or (isinstance(start, int) and start == 0) else c.args[2]
    b = "" if end is None or (isinstance(end, int) and end >= 9223372036854775807) else c.args[3]
    s = "" if step is None or (isinstance(step, int) and step == 1) else f":{c.args[4]}"
    return c.index(dim, f"{a}:{b}{s}")


def _index_text(c: _AtenCall) -> str | None:
    indices = c.node.args[1]
    if not isinstance(indices, (list, tuple)) or not indices:
        return None
    parts = [":" if v is None else c.ex.arg(v, c.node, (0, 1, j)) for j, v in enumerate(indices)]
    return f"{c.args[0]}[{', '.join(parts)}{',' if len(parts) == 1 and parts[0] == ':' else ''}]"


def _aten_special(name: str, c: _AtenCall) -> str | None:
    n = len(c.node.args)
    if name == "sym_size.int" and n == 2:
        return f"{c.args[0]}.shape[{c.args[1]}]"
    if name == "sym_numel.default":
        return f"{c.args[0]}.numel()"
    if name == "sym_stride.int" and n == 2:
        return f"{c.args[0]}.stride({c.args[1]})"
    if name == "select.int" and n == 3 and not c.modes:
        return c.index(c.node.args[1], c.args[2])
    if name == "slice.Tensor" and n >= 1:
        return _slice_text(c)
    if name == "index.Tensor" and n == 2:
        return _index_text(c)
    if name == "rsub.Scalar" and n == 2 and not c.node.kwargs:
        return f"{c.args[1]} - {c.args[0]}"
    if name in ("layer_norm.default", "group_norm.default") and n >= 2:
        return c.call("F." + name.split(".")[0], stop=_ATEN_DROPPED[name])
    if name == "batch_norm.default" and n == 9:
        a = c.args   # aten: input, weight, bias, mean, var, training, momentum, eps, cudnn
        return f"F.batch_norm({', '.join([a[0], a[3], a[4], a[1], a[2], a[5], a[6], a[7]])})"
    if name == "embedding.default" and n >= 2:
        raw = list(c.node.args) + [-1, False, False][n - 2:]
        extra = []
        if raw[2] != -1 or (0, 2) in c.modes:
            extra.append(f"padding_idx={c.args[2]}")
        if raw[3] is not False:
            extra.append(f"scale_grad_by_freq={c.args[3]}")
        if raw[4] is not False:
            extra.append(f"sparse={c.args[4]}")
        return f"F.embedding({', '.join([c.args[1], c.args[0]] + extra)})"
    if name == "_softmax.default" and n == 3 and c.node.args[2] is False:
        return f"{c.args[0]}.softmax({c.args[1]})"
    if name == "constant_pad_nd.default" and n >= 2:
        return f"F.pad({c.args[0]}, {c.args[1]}" + (f", value={c.args[2]})" if n > 2 else ")")
    return None


def aten_expression(ex: "Expressions", node: fx.Node) -> str:
    """An aten call as a person writes it (see the tables above), else as ``torch.ops.aten``."""
    name = aten_name(node.target)
    c = _AtenCall(ex, node)
    n = len(node.args)
    text = _aten_special(name, c)
    if text is not None:
        return text
    if name in _ATEN_OPERATORS and n == 2 and not node.kwargs:
        return f"{c.args[0]} {_ATEN_OPERATORS[name]} {c.args[1]}"
    if name in _ATEN_UNARY and n == 1 and not node.kwargs:
        return f"{_ATEN_UNARY[name]}{c.args[0]}"
    if name in _ATEN_UNPACKED and n >= 2:
        rest, kwargs = c.trimmed(2)
        return f"{c.args[0]}.{_ATEN_UNPACKED[name]}({Expressions.join(c.items(1) + rest, kwargs)})"
    if name in _ATEN_METHODS and n >= 1:
        return c.call(f"{c.args[0]}.{_ATEN_METHODS[name]}", start=1)
    if name in _ATEN_FUNCTIONS:
        return c.call(_ATEN_FUNCTIONS[name])
    packet, overload = name.rsplit(".", 1)
    target = f"torch.ops.aten.{packet}" if is_safe_identifier(packet) else f"getattr(torch.ops.aten, {packet!r})"
    target += f".{overload}" if is_safe_identifier(overload) else f"getattr(..., {overload!r})"
    return f"{target}({Expressions.join(c.args, c.kwargs)})"
