"""From a traced graph and a plan to the pieces of a standalone source file.

This module decides *what* each line says; templates/ decide how the file is laid out. Every
identifier comes from naming.Namespace; every user string that is not a safe identifier is
written with repr (``getattr(self, 'odd key')``, ``Group(**{'odd key': ...})``); constants go
through literals.literal. Nothing from a name is ever pasted into code.
"""
from __future__ import annotations

import builtins
import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .errors import RenderError
from .handlers import REGISTRY, TapSite
from .literals import index_literal, literal
from .modules import constructor, public_path
from .naming import RESERVED, Namespace, attribute_access, class_name, is_safe_identifier, sanitize
from .plan import Plan, UpdateSite
from .sourcecopy import SourceCopier, is_user_object
from .tracing import Traced, tensor_meta

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


@dataclass
class Line:
    code: str
    comment: str = ""


@dataclass
class Source:
    """Everything the template needs, already written as source fragments."""

    class_name: str
    base_class: str
    plain: bool
    init_lines: list[Line]
    forward_params: list[str]        # signature of forward, with defaults
    input_names: list[str]           # plain names, in order
    body: list[Line]                 # forward_with_memory (or plain forward) body
    return_expr: str
    memory_attr: str
    batch_expr: str
    imports: list[str]
    uses_group: bool
    uses_grouped_fit: bool
    uses_feature_fit: bool
    state_dict_map: dict[str, str] = field(default_factory=dict)
    copied: str = ""                 # the user's classes/functions the model needs (sourcecopy.py)


class _Tree:
    """The used part of the base model's module tree, in the base model's order."""

    def __init__(self, traced: Traced):
        self.root = traced.root
        self.leaves: dict[str, nn.Module] = {}
        self.attrs: dict[str, object] = {}
        for n in traced.graph.nodes:
            if n.op == "call_module":
                self.leaves[n.target] = self.root.get_submodule(n.target)
            elif n.op == "get_attr":
                self.attrs[n.target] = _fetch(self.root, n.target)
        self.attrs = {k: v for k, v in self.attrs.items() if not any(p in self.leaves for p in _prefixes(k)[:-1])}
        # indices, so that walking the tree stays linear in its size
        self._used = {p for k in [*self.leaves, *self.attrs] for p in _prefixes(k)}
        self._is_list: dict[str, bool] = {}
        self._attrs_of: dict[str, list[tuple[str, str]]] = {}
        for q in self.attrs:
            parent, _, name = q.rpartition(".")
            self._attrs_of.setdefault(parent, []).append((name, q))

    def used(self, path: str) -> bool:
        return path in self._used if path else bool(self._used)

    def entries(self, module: nn.Module, path: str):
        """(name, kind, qualified path) of used members: 'leaf', 'tree', 'param', 'buffer', 'tensor'."""
        out = []
        for name, child in module._modules.items():
            q = f"{path}.{name}" if path else name
            if child is None or not self.used(q):
                continue
            out.append((name, "leaf" if q in self.leaves else "tree", q))
        for name in list(module._parameters) + list(module._buffers):
            q = f"{path}.{name}" if path else name
            if q in self.attrs:
                out.append((name, "param" if name in module._parameters else "buffer", q))
        for name, q in self._attrs_of.get(path, []):
            if name not in module._parameters and name not in module._buffers and name not in module._modules:
                out.append((name, "tensor", q))
        return out

    def is_list(self, module: nn.Module, path: str) -> bool:
        """Whether the used members are children named 0..n-1 (written as an nn.ModuleList).
        Asked once per module access in forward, so remembered per path."""
        if path not in self._is_list:
            entries = self.entries(module, path)
            self._is_list[path] = bool(entries) and all(k in ("leaf", "tree") for _, k, _ in entries) and \
                [n for n, _, _ in entries] == [str(i) for i in range(len(entries))]
        return self._is_list[path]


def _prefixes(path: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b', 'a.b.c']."""
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _fetch(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _tensor_expr(t: torch.Tensor, shape: tuple[int, ...] | None = None) -> tuple[str, str]:
    """(source that makes a tensor like ``t`` of ``shape``, a comment if values are not exact)."""
    shape = tuple(shape if shape is not None else t.shape)
    dtype = "" if t.dtype == torch.float32 else f", dtype={literal(t.dtype)}"
    data = t.detach().cpu()
    if tuple(t.shape) == shape and data.numel() <= (4096 if not t.is_floating_point() else 64):
        return f"torch.tensor({literal(data.tolist())}{dtype})", ""
    flat = data.reshape(-1)
    if flat.numel() and bool((flat == flat[0]).all()):
        v = flat[0].item()
        if v == 0:
            return f"torch.zeros({literal(shape)}{dtype})", ""
        if v == 1:
            return f"torch.ones({literal(shape)}{dtype})", ""
        return f"torch.full({literal(shape)}, {literal(v)}{dtype})", ""
    if not t.is_floating_point():
        raise RenderError(f"a {tuple(t.shape)} integer tensor is too large to write into the source.",
                          hint="Compute it in forward, or keep its module whole with --leaf.")
    std = float(data.float().std()) if data.numel() > 1 else 0.0
    mean = float(data.float().mean())
    std, mean = float(f"{std:.4g}"), float(f"{mean:.4g}")
    expr = f"torch.randn({literal(shape)}{dtype}) * {literal(std)}"
    if mean:
        expr += f" + {literal(mean)}"
    return expr, f"drawn like the base values (mean {mean:.4g}, std {std:.4g}); load base weights for the exact ones"


class Generator:
    def __init__(self, traced: Traced, plan: Plan | None, *, plain: bool):
        self.traced = traced
        self.plan = plan
        self.plain = plain or plan is None
        self.root = traced.root
        self.tree = _Tree(traced)
        self.taps: dict[str, TapSite] = {} if self.plain else {t.node: t for t in plan.taps}
        self.updates: dict[str, UpdateSite] = {} if self.plain else {u.node: u for u in plan.updates}
        self.tap_weights = {t.weight: t for t in self.taps.values() if t.functional}
        self.module_taps: dict[str, list[TapSite]] = {}  # qualname -> its calls' taps (a layer may be called twice)
        for t in self.taps.values():
            if not t.functional:
                self.module_taps.setdefault(t.qualname, []).append(t)
        self.imports: set[str] = set()
        self.uses_group = False
        # root attribute names: the user's first, then ours
        self.attr_ns = Namespace(set())
        for name in self.root._modules:
            self.attr_ns.reserve(name)
        for name in list(self.root._parameters) + list(self.root._buffers):
            self.attr_ns.reserve(name)
        self.memory_attr = self.attr_ns.create("memory")
        for u in self.updates.values():
            u.name = self.attr_ns.create(f"update_{sanitize(u.label.replace(':', '_'))}")
        self.class_name = ("" if self.plain else "Aim") + class_name(type(self.root).__name__)
        self.copier = SourceCopier(taken=set(RESERVED) | {self.class_name})
        self._copy_graph_objects()
        self.locals = Namespace(set(RESERVED) | self.copier.names)
        self.vars: dict[str, str] = {}

    def _copy_graph_objects(self) -> None:
        """Copy the user's functions and classes the graph calls or builds (fx-wrapped functions,
        dataclass or NamedTuple outputs) before any local name is handed out, so none shadows them."""
        def visit(value, node):
            if isinstance(value, (tuple, list)):
                if type(value) not in (tuple, list) and is_user_object(type(value)):
                    self.copier.add(type(value), f"operation {node.name} builds it")
                for v in value:
                    visit(v, node)
            elif isinstance(value, dict):
                for v in value.values():
                    visit(v, node)

        for node in self.traced.graph.nodes:
            if node.op == "call_function" and is_user_object(node.target):
                self.copier.add(node.target, f"operation {node.name} calls it")
            visit((node.args, node.kwargs), node)

    # --- __init__ ----------------------------------------------------------------------------
    def init_lines(self) -> list[Line]:
        lines: list[Line] = []
        if not self.plain:
            p = self.plan
            lines.append(Line(f"self.{self.memory_attr} = Memory({literal(tuple(p.memory_shape))}, "
                              f"carry_rate={literal(p.carry_rate)})",
                              f"{math.prod(p.memory_shape):,} floats, carried from batch to batch"))
        for name, kind, q in self.tree.entries(self.root, ""):
            expr_lines = self._member(kind, q, name)
            first = expr_lines[0]
            target = f"self.{name}" if is_safe_identifier(name) else None
            if target:
                lines.append(Line(f"{target} = {first.code}", first.comment))
                lines.extend(expr_lines[1:])
            else:
                lines.append(Line(f"setattr(self, {name!r}, {first.code}", first.comment))
                lines.extend(expr_lines[1:])
                lines.append(Line(")"))
        if not self.plain:
            for u in self.updates.values():
                lines.append(Line(
                    f"self.{u.name} = MemoryUpdate({u.features}, {u.memory_channels}, rank={u.rank})",
                    f"update block after {u.label}: +{u.params:,} params"))
        return lines

    def _member(self, kind: str, q: str, name: str) -> list[Line]:
        """Lines of the expression for one member; the first line has no indentation prefix."""
        if kind == "leaf":
            return [self._leaf(q)]
        if kind in ("param", "buffer", "tensor"):
            return [self._tensor_member(kind, q)]
        module = self.root.get_submodule(q)
        is_list = self.tree.is_list(module, q)
        if type(module) is nn.ModuleDict and not is_list:
            return self._module_dict(module, q)
        out = [Line("nn.ModuleList([" if is_list else "Group(")]
        if not is_list:
            self.uses_group = True
        odd = []
        for cname, ckind, cq in self.tree.entries(module, q):
            sub = self._member(ckind, cq, cname)
            if is_list:
                prefix = ""
            elif is_safe_identifier(cname) and cname not in ("self",):
                prefix = f"{cname}="
            elif cname == "self":
                raise RenderError(f"module {q} has a member named 'self', which Group(**members) cannot take.",
                                  hint="Rename it (an nn.ModuleDict of modules may use any key).")
            else:
                odd.append((cname, sub))
                continue
            out.append(Line("    " + prefix + sub[0].code, sub[0].comment))
            out.extend(Line("    " + s.code, s.comment) for s in sub[1:])
            last = out[-1]
            out[-1] = Line(last.code + ",", last.comment)
        if odd:
            out.append(Line("    **{"))
            for cname, sub in odd:
                out.append(Line(f"        {cname!r}: " + sub[0].code, sub[0].comment))
                out.extend(Line("        " + s.code, s.comment) for s in sub[1:])
                last = out[-1]
                out[-1] = Line(last.code + ",", last.comment)
            out.append(Line("    },"))
        out.append(Line("])" if is_list else ")"))
        return out

    def _module_dict(self, module: nn.ModuleDict, q: str) -> list[Line]:
        """An nn.ModuleDict stays one: its keys are written as quoted strings, whatever they are."""
        out = [Line("nn.ModuleDict({")]
        for cname, ckind, cq in self.tree.entries(module, q):
            sub = self._member(ckind, cq, cname)
            out.append(Line(f"    {cname!r}: " + sub[0].code, sub[0].comment))
            out.extend(Line("    " + s.code, s.comment) for s in sub[1:])
            out[-1] = Line(out[-1].code + ",", out[-1].comment)
        out.append(Line("})"))
        return out

    def _leaf(self, q: str) -> Line:
        module = self.tree.leaves[q]
        shared = self.module_taps.get(q, [])
        tap = shared[0] if shared else None
        overrides = None
        if tap is not None:
            handler = REGISTRY.get(tap.handler)
            key = "in_features" if isinstance(module, nn.Linear) else "in_channels"
            overrides = {key: handler.widened_in(tap)}
            if len(shared) > 1 and len({(t.k, t.groups) for t in shared}) > 1:
                raise RenderError(f"layer {q} is called {len(shared)} times and would read different "
                                  "memory widths.", hint=f"Use --skip {q}, or a numeric --tap-width.")
        ctor = constructor(module, q, overrides, copier=self.copier, why=self.traced.leaf_reasons.get(q, ""))
        self.imports |= ctor.imports
        comment = REGISTRY.get(tap.handler).comment(tap) if tap is not None else ""
        return Line(ctor.source(), comment)

    def _tensor_member(self, kind: str, q: str) -> Line:
        value = self.tree.attrs[q]
        if not isinstance(value, torch.Tensor):
            raise RenderError(f"attribute {q} ({type(value).__name__}) is read in forward but is not a tensor.")
        shape = tuple(value.shape)
        comment = ""
        tap = self.tap_weights.get(q)
        if tap is not None:
            shape = REGISTRY.get(tap.handler).widened_shape(tap, shape)
            comment = REGISTRY.get(tap.handler).comment(tap)
        expr, note = _tensor_expr(value, shape)
        comment = "; ".join(c for c in (comment, note) if c)
        if kind == "param":
            grad = "" if value.requires_grad else ", requires_grad=False"
            return Line(f"nn.Parameter({expr}{grad})", comment)
        parent, _, name = q.rpartition(".")
        owner = self.root.get_submodule(parent) if parent else self.root
        persistent = kind == "buffer" and name not in owner._non_persistent_buffers_set
        return Line(f"nn.Buffer({expr}{'' if persistent else ', persistent=False'})", comment)

    # --- forward -----------------------------------------------------------------------------
    def access(self, target: str) -> str:
        expr, obj, path = "self", self.root, ""
        for part in target.split("."):
            parent_is_list = isinstance(obj, nn.Module) and path != "" and self.tree.is_list(obj, path)
            if parent_is_list:
                expr = f"{expr}[{int(part)}]"
            else:
                expr = attribute_access(expr, part)
            obj = getattr(obj, part)
            path = f"{path}.{part}" if path else part
        return expr

    def arg(self, value, node: fx.Node | None = None, path: tuple = ()) -> str:
        if node is not None and path in self._flags(node):
            return "self.training"
        if isinstance(value, fx.Node):
            return self.vars[value.name]
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
        return literal(value, where=f"operation {node.name if node else '?'}")

    def _flags(self, node: fx.Node) -> set[tuple]:
        return {tuple(p) for p in self.traced.training_flags.get(node.name, [])}

    def call_args(self, node: fx.Node, tap_input: str | None = None) -> str:
        parts = []
        for i, a in enumerate(node.args):
            src = self.arg(a, node, (0, i))
            if i == 0 and tap_input is not None:
                src = tap_input
            parts.append(src)
        for k, v in node.kwargs.items():
            src = self.arg(v, node, (1, k))
            if not is_safe_identifier(k):
                raise RenderError(f"operation {node.name}: keyword argument {k!r} is not an identifier.")
            parts.append(f"{k}={src}")
        return ", ".join(parts)

    def class_ref(self, cls, node: fx.Node) -> str:
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
            self.imports.add(found[0])
            return found[1]
        where = (node.meta.get("stack_trace") or "").strip().splitlines()
        raise RenderError(
            f"operation {node.name} calls {getattr(fn, '__qualname__', fn)!r}"
            f"{' from ' + fn.__module__ if getattr(fn, '__module__', None) else ''}, which the "
            "generated file cannot import by name.",
            hint="Call it inside a submodule and list that with --leaf, or use a torch function.")

    def body(self) -> tuple[list[str], list[str], list[Line], str, str]:
        params, names, lines = [], [], []
        batch = None
        for node in self.traced.graph.nodes:
            if node.op == "placeholder":
                name = self.locals.create(str(node.target).lstrip("*"), "x")
                self.vars[node.name] = name
                names.append(name)
                default = f"={self.arg(node.args[0])}" if node.args else ""
                params.append(name + default)
                if batch is None and tensor_meta(node) is not None:
                    batch = f"{name}.shape[0]"
                continue
            if node.op == "get_attr":
                self.vars[node.name] = self.access(node.target)
                continue
            if node.op == "output":
                ret = self.arg(node.args[0], node)
                return params, names, lines, ret, batch or "1"
            var = self.locals.create(node.name)
            tap = self.taps.get(node.name)
            tap_input = None
            if tap is not None:
                tap_input = REGISTRY.get(tap.handler).input_expr(tap, self.arg(node.args[0]))
            comment = REGISTRY.get(tap.handler).comment(tap) if tap is not None else ""
            lines.append(Line(f"{var} = {self.expression(node, tap_input)}", comment))
            self.vars[node.name] = var
            upd = self.updates.get(node.name)
            if upd is not None:
                lines.append(Line(f"{self.memory_local} = self.{upd.name}({self.memory_local}, "
                                  f"{self.features_expr(upd, var)})",
                                  f"update block: memory rewritten from {upd.label} "
                                  f"({upd.features} x {'x'.join(map(str, upd.shape[2:])) or 'vector'})"))
        raise RenderError("the traced graph has no output.")

    memory_local = "memory"

    def features_expr(self, upd: UpdateSite, var: str) -> str:
        grid = tuple(self.plan.grid)
        if upd.kind == "spatial":
            return f"F.adaptive_avg_pool{len(grid)}d({var}, {literal(grid)})"
        vec = var
        if upd.kind == "sequence":
            vec = f"{var}.flatten(1, -2).mean(1)"
        elif upd.kind == "channels":
            vec = f"{var}.flatten(2).mean(2)"
        return vec if not grid else f"{vec}[:, :{', None' * len(grid)}]"

    def expression(self, node: fx.Node, tap_input: str | None) -> str:
        if node.op == "call_module":
            return f"{self.access(node.target)}({self.call_args(node, tap_input)})"
        if node.op == "call_method":
            obj = self.arg(node.args[0], node, (0, 0))
            rest = node.args[1:]
            args = ", ".join([self.arg(a, node, (0, i + 1)) for i, a in enumerate(rest)] +
                             [f"{k}={self.arg(v, node, (1, k))}" for k, v in node.kwargs.items()])
            method = node.target
            ref = f"{obj}.{method}" if is_safe_identifier(method) else f"getattr({obj}, {method!r})"
            return f"{ref}({args})"
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
        return f"{self.function_ref(fn, node)}({self.call_args(node, tap_input)})"

    def generate(self) -> Source:
        init = self.init_lines()
        params, names, lines, ret, batch = self.body()
        base_cls = type(self.root).__name__
        copied = self.copier.copied
        self.imports |= copied.depends
        return Source(
            class_name=self.class_name, copied=copied.text(),
            base_class=base_cls, plain=self.plain, init_lines=init, forward_params=params,
            input_names=names, body=lines, return_expr=ret, memory_attr=self.memory_attr,
            batch_expr=batch, imports=sorted(self.imports), uses_group=self.uses_group,
            uses_grouped_fit=any(t.groups > 1 and t.axis == 1 for t in self.taps.values()),
            uses_feature_fit=any(t.axis == -1 for t in self.taps.values()),
        )


def generate(traced: Traced, plan: Plan | None, *, plain: bool = False) -> Source:
    return Generator(traced, plan, plain=plain).generate()
