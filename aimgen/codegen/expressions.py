"""One graph node as a Python expression.

Values of other nodes are written as markers (``ref(node)``) and replaced by their local names
once every statement of a function is known (see functions.py): the same node is a parameter
name in one function and ``self.weight`` in another. Every user string that is not a safe
identifier is written with repr (``getattr(x, 'odd key')``); constants go through
literals.literal; functions are written by their import path or copied (sourcecopy.py).
"""
from __future__ import annotations

import builtins
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
from ..sourcecopy import SourceCopier, is_user_object

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


def ref(node: fx.Node) -> str:
    return f"{MARK}{node.name}{MARK}"


class Expressions:
    """Writes nodes as expressions; collects the imports and copied definitions they need."""

    def __init__(self, training_values: dict, copier: SourceCopier):
        self.training_values = training_values
        self.copier = copier
        self.imports: set[str] = set()
        self.constants: dict[str, object] = {}   # constant marker -> its value

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
        if isinstance(value, tuple) and hasattr(value, "_fields") and type(value) is not tuple:
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
            return f"{CONST}{key}{CONST}"
        return literal(value, where=f"operation {node.name if node else '?'}")

    def call_parts(self, node: fx.Node) -> tuple[list[str], dict[str, str]]:
        args = [self.arg(a, node, (0, i)) for i, a in enumerate(node.args)]
        kwargs = {}
        for k, v in node.kwargs.items():
            if not is_safe_identifier(k):
                raise RenderError(f"operation {node.name}: keyword argument {k!r} is not an identifier.")
            kwargs[k] = self.arg(v, node, (1, k))
        return args, kwargs

    @staticmethod
    def join(args: list[str], kwargs: dict[str, str]) -> str:
        return ", ".join(list(args) + [f"{k}={v}" for k, v in kwargs.items()])

    # --- callables ------------------------------------------------------------------------
    def class_ref(self, cls, node: fx.Node | None) -> str:
        """Source naming a class the forward builds (a NamedTuple or dataclass output)."""
        if is_user_object(cls):
            return self.copier.add(cls, f"operation {node.name if node else '?'} builds it")
        return self.function_ref(cls, node)

    def function_ref(self, fn, node: fx.Node) -> str:
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
        if fn is builtins.getattr and len(node.args) == 2 and isinstance(node.args[1], str):
            return attribute_access(self.arg(node.args[0], node, (0, 0)), node.args[1])
        args, kwargs = self.call_parts(node)
        return f"{self.function_ref(fn, node)}({self.join(args, kwargs)})"

    def callee(self, node: fx.Node) -> str:
        """The function a call_function node calls, as source."""
        return self.function_ref(node.target, node)
