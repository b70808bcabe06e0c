"""What a generated class holds (its ``__init__``): the used part of the base model's module tree,
as constructor calls.

A member is a tree of ``Constructor`` values (taps.base): a leaf layer's own call, a block's
class with its arguments, a container of members, a tensor's initialisation. Keeping them as
values, not text, lets the class builder compare instances argument by argument and turn what
differs into ``__init__`` parameters (classes.py).
"""
from __future__ import annotations

import ast
import copy
import functools
import inspect
import math
import textwrap
import types
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import KeepWhole, RenderError
from ..literals import Unrenderable, python_literal
from ..naming import is_safe_identifier
from ..sourcecopy import SourceCopier, is_user_object, self_reads
from ..taps import Arg, Constructor
from .scopes import container_kind


@dataclass(frozen=True)
class Raw:
    """Source that is written as it is (and compared as text)."""

    code: str


@dataclass
class Member:
    name: str
    value: Constructor | Raw
    comment: str = ""


class Tree:
    """The used part of the base model's module tree, in the base model's order."""

    def __init__(self, root: nn.Module, leaves: set[str], attrs: set[str], extra_owners: set[str]):
        self.root = root
        self.leaves = leaves
        self.attrs = {a for a in attrs if not any(p in leaves for p in _prefixes(a)[:-1])}
        self._used = {p for k in [*leaves, *self.attrs, *extra_owners] for p in _prefixes(k)}
        self._attrs_of: dict[str, list[tuple[str, str]]] = {}
        for q in sorted(self.attrs):
            parent, _, name = q.rpartition(".")
            self._attrs_of.setdefault(parent, []).append((name, q))
        self._is_list: dict[str, bool] = {}

    def used(self, path: str) -> bool:
        return path in self._used if path else bool(self._used)

    def module(self, path: str) -> nn.Module:
        return self.root.get_submodule(path) if path else self.root

    def entries(self, path: str):
        """(name, kind, qualified path) of used members: 'leaf', 'tree', 'param', 'buffer',
        'tensor', and in a list container 'unused': a stateless item whose code is written inline
        (it stays in the container, as nn.Identity, so the others keep their indices)."""
        module = self.module(path)
        out = []
        listed = container_kind(module) in ("sequential", "list")
        for name, child in module._modules.items():
            q = f"{path}.{name}" if path else name
            if child is None:
                continue
            if not self.used(q):
                stateful = any(True for _ in child.parameters()) or any(True for _ in child.buffers())
                if listed and not stateful:
                    out.append((name, "unused", q))
                elif stateful and self.used(path):  # never called (MONAI's deep-supervision heads),
                    out.append((name, "leaf", q))   # but its state is the base's: built whole
                continue
            out.append((name, "leaf" if q in self.leaves else "tree", q))
        for name, param in module._parameters.items():  # every parameter: one the forward never
            q = f"{path}.{name}" if path else name         # reads (DINOv2's mask_token) is state too
            if param is not None and self.used(path):
                out.append((name, "param", q))
        for name, buf in module._buffers.items():  # every buffer: state the forward may not read
            q = f"{path}.{name}" if path else name  # (num_batches_tracked) is still state_dict state
            if buf is not None and (q in self.attrs or (self.used(path) and name not in module._non_persistent_buffers_set)):
                out.append((name, "buffer", q))
        for name, q in self._attrs_of.get(path, []):
            if name not in module._parameters and name not in module._buffers and name not in module._modules:
                out.append((name, "tensor", q))
        return out

    def is_list(self, path: str) -> bool:
        """Whether the used members are children named 0..n-1 of a list-like container, written
        as an nn.Sequential / nn.ModuleList and indexed (``self.layer1[0]``)."""
        if not path:
            return False  # the root is a class of its own: its members are attributes
        if path not in self._is_list:
            module = self.module(path)
            entries = self.entries(path)
            self._is_list[path] = container_kind(module) in ("sequential", "list") and \
                any(k != "unused" for _, k, _ in entries) and \
                all(k in ("leaf", "tree", "unused") for _, k, _ in entries) and \
                [n for n, _, _ in entries] == [str(i) for i in range(len(entries))]
        return self._is_list[path]

    def access(self, target: str, base: str = "") -> str:
        """Source for ``target`` (a qualified name) from the class of module ``base``."""
        from ..naming import attribute_access

        if base and not target.startswith(base + "."):
            target = self._alias_under(target, base)
        rel = target[len(base) + 1:] if base else target
        expr, path = "self", base
        for part in rel.split("."):
            module = self.module(path) if isinstance(self.module(path), nn.Module) else None
            if module is not None and container_kind(module) == "dict":
                expr = f"{expr}[{part!r}]"
            elif module is not None and self.is_list(path) and part.isdigit():
                expr = f"{expr}[{int(part)}]"
            else:
                expr = attribute_access(expr, part)
            path = f"{path}.{part}" if path else part
        return expr


    def _alias_under(self, target: str, base: str) -> str:
        """The name under ``base`` of ``target``, which a block class of ``base`` reads but which
        torch.fx named outside it: a module the base model holds under both names (timm's CoaT
        blocks hold their stage's shared convolution as ``cpe``; fx names it ``cpe1``)."""
        parts = target.split(".")
        for i in range(len(parts), 0, -1):
            try:
                held = self.root.get_submodule(".".join(parts[:i]))
            except AttributeError:
                continue
            for name, module in self.module(base).named_modules(remove_duplicate=False):
                if module is held and name:
                    return ".".join([base, name, *parts[i:]])
            break
        raise RenderError(f"{base}: its block reads {target}, which is neither under it nor held by it under "
                          "another name, so its class cannot reach it.",
                          hint="This is a bug in aimgen's block classes: please report it with the model; "
                          "flat=True (--flat) writes the model as one forward meanwhile.")


def _prefixes(path: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b', 'a.b.c']."""
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


# --- tensors ---------------------------------------------------------------------------------

def tensor_member(value: torch.Tensor, kind: str, owner: nn.Module, name: str, recorded: dict | None,
                  copier: SourceCopier | None = None, runtime: bool = True) -> tuple[Constructor | Raw, str]:
    """A parameter, buffer or plain tensor attribute as its initialisation, and a comment.

    Exact when the values are constant (zeros, ones, a fill) or small; otherwise the owner's own
    initialisation expression where it can be read from its ``__init__`` (``torch.randn(1, 16,
    dim) * 0.02``, with the recorded constructor arguments filled in); otherwise the documented
    rule ``torch.randn(shape) * 0.02``. Never statistics of the model's random draw: the same
    input gives the same file. Without the ``runtime`` (a plain file), a weight drawn by its
    ``weight_parameter`` is written out as the same draw."""
    if not isinstance(value, torch.Tensor):
        raise RenderError(f"attribute {name} ({type(value).__name__}) is read in forward but is not a tensor.")
    init, comment = _initial_values(value, owner, name, recorded, kind, copier)
    if isinstance(init, Constructor) and init.callee == "weight_parameter" and not runtime:
        init = _drawn(init.args[0].value)
    if isinstance(init, Constructor) and init.callee == "weight_parameter":
        return init, comment   # a Parameter already; a call, so blocks that differ only in shapes share a class
    if kind == "param":
        args = [Arg("data", init, True)]
        if not value.requires_grad:
            args.append(Arg("requires_grad", False, False))
        return Constructor("nn.Parameter", args), comment
    # a tensor that is not a registered buffer (a constant torch.fx kept) stays out of state_dict
    persistent = kind == "buffer" and name not in owner._non_persistent_buffers_set
    args = [Arg("data", init, True)]
    if not persistent:
        args.append(Arg("persistent", False, False))
    return Constructor("nn.Buffer", args), comment


def _initial_values(t: torch.Tensor, owner: nn.Module, name: str, recorded: dict | None,
                    kind: str, copier: SourceCopier | None = None) -> tuple[Constructor | Raw, str]:
    shape = tuple(t.shape)
    dtype = [] if t.dtype == torch.float32 else [Arg("dtype", t.dtype, False)]
    data = t.detach().cpu()
    flat = data.reshape(-1)
    if flat.numel() and bool((flat == flat[0]).all()):
        v = flat[0].item()
        if t.dtype == torch.float32:  # the shortest decimal that is this float32: 1e-06
            v = float(str(flat[0].numpy()))
        if v == 0:
            return Constructor("torch.zeros", [Arg("size", shape, True)] + dtype), ""
        if v == 1:
            return Constructor("torch.ones", [Arg("size", shape, True)] + dtype), ""
        return Constructor("torch.full", [Arg("size", shape, True), Arg("fill_value", v, True)] + dtype), ""
    saved = kind == "param" or (kind == "buffer" and name not in owner._non_persistent_buffers_set)
    found = init_expression(owner, name, recorded, t, copier)
    if found is not None and (saved or not found[1]):   # a random draw only where a checkpoint restores it
        expr, drawn = found
        return Raw(expr), ("as its module's __init__ draws it; load base weights for the model's values" if drawn
                           else "as its module's __init__ computes it")
    exact = not t.is_floating_point() or kind != "param"  # parameters are drawn at random: never copied
    # floats as literals only where small, or where no checkpoint restores them and the module
    # would otherwise be kept whole (Hugging Face Swin V2's (1, 13, 13, 2) coordinate table)
    limit = 4096 if not t.is_floating_point() else 64 if saved else 1024
    if exact and data.numel() <= limit and data.dim() <= 4:
        inferred = torch.tensor(data.tolist()).dtype  # what torch.tensor makes of the values by itself
        try:
            return Raw(f"torch.tensor({python_literal(data.tolist())}{'' if t.dtype == inferred else ', dtype=' + python_literal(t.dtype)})"), ""
        except Unrenderable:
            pass
    if not saved and t.is_floating_point():  # no checkpoint restores it: only its own __init__ can
        what = "a buffer left out of state_dict" if kind == "buffer" else "a constant of the traced forward"
        raise KeepWhole(f"the {shape} tensor {name} ({what}) is too large to write into the source, and no "
                        "checkpoint restores it: a random value would change what the model computes.",
                        hint="Compute it in forward, or keep its module whole with leaf=.",
                        modules={"": f"its {shape} tensor {name} (not in state_dict) is too large to write as a "
                                     "literal; its own __init__ builds it"})
    if not t.is_floating_point():
        raise KeepWhole(f"the {shape} integer tensor {name} is too large to write into the source.",
                        hint="Compute it in forward, or keep its module whole with leaf=.",
                        modules={"": f"its {shape} integer tensor {name} is too large to write as a literal; "
                                     "its own __init__ builds it"})
    return _default_init(shape, name, dtype, trainable=kind == "param" and t.requires_grad)


def _default_init(shape: tuple[int, ...], name: str, dtype: list,
                  trainable: bool = False) -> tuple[Constructor | Raw, str]:
    """The documented rule for a tensor whose own initialisation cannot be read: a weight of two
    or more axes is drawn as PyTorch draws a layer's (uniform over +-1/sqrt(fan_in)); a bias
    starts at zero, a 1-D scale at one; anything else N(0, 0.02)."""
    note = "its own init could not be read: {}; load base weights for the model's values"
    if len(shape) >= 2 and not dtype:
        drawn = note.format("drawn like a layer's weight")
        if trainable:   # the runtime's weight_parameter makes the (trainable) Parameter itself
            return Constructor("weight_parameter", [Arg("shape", shape, True)]), drawn
        return _drawn(shape), drawn
    if len(shape) == 1 and name.endswith("bias"):
        return Constructor("torch.zeros", [Arg("size", shape, True)] + dtype), note.format("a bias starts at zero")
    if len(shape) == 1 and name in ("weight", "scale", "gamma", "gain"):
        return Constructor("torch.ones", [Arg("size", shape, True)] + dtype), note.format("a scale starts at one")
    return (Raw(f"torch.randn({python_literal(shape)}{', dtype=' + python_literal(dtype[0].value) if dtype else ''}) * 0.02"),
            note.format("drawn N(0, 0.02)"))


def _drawn(shape: tuple[int, ...]) -> Raw:
    """A weight drawn as PyTorch draws a layer's: uniform over +-1/sqrt(fan_in)."""
    fan_in = math.prod(shape[1:])
    return Raw(f"torch.empty({python_literal(shape)}).uniform_(-{fan_in} ** -0.5, {fan_in} ** -0.5)")


def init_expression(owner: nn.Module, name: str, recorded: dict | None, like: torch.Tensor,
                    copier: SourceCopier | None = None) -> tuple[str, bool] | None:
    """The expression that makes ``self.<name>`` in the owner's ``__init__`` and the methods of
    its class that ``__init__`` calls (timm's ``reset_parameters()`` -> ``_init_buffers()``):
    what is assigned to it (inside ``nn.Parameter(...)`` if so) or registered as the buffer
    ``name``, then what fills it in place (``self.<name>.copy_(table(...))`` replaces it;
    ``nn.init.zeros_(self.<name>)`` and ``self.<name>.normal_(std=0.02)`` apply to it), in the
    order they run. Each part may use torch, the constructor's arguments and the locals its
    ``__init__`` ended with (their recorded values), a method's own locals, plain values read
    from ``self`` and, given a ``copier``, functions of the owner's module (copied into the
    generated file) and methods of its class that only read plain values from ``self`` (copied
    as functions of those values: ``get_attn_mask(window_size=(7, 7), ...)``). A tensor left
    uninitialised (``torch.empty``) is no expression. Checked by evaluating it: same shape and
    dtype, and the same values where it draws nothing at random. Returns the expression and
    whether it draws."""
    home = inspect.getmodule(type(owner)) if copier is not None else None
    module_globals = vars(home) if home is not None else {}
    functions: dict[str, object] = {}
    #: name in the expression -> (method of the owner's class, the buffer it registers or None)
    methods: dict[str, tuple[str, str | None]] = {}
    allowed = {"torch", "math", "nn", _HOLE}

    def literal(value) -> ast.expr:
        if isinstance(value, torch.device):
            value = None   # where the model is built, as its layers are
        try:
            return ast.parse(python_literal(value), mode="eval").body
        except Unrenderable:
            raise LookupError(value) from None

    class Substitute(ast.NodeTransformer):
        """The names of one method, replaced by what they mean there: ``__init__``'s recorded
        values, the method's locals (each value of one inlined once: a local read twice would
        be computed twice), module functions and methods (see above)."""

        def __init__(self, method: str, tree: ast.AST):
            self.values = {**getattr(recorded, "locals", {}), **(recorded or {})} if method == "__init__" else {}
            #: name -> (line, value or None, whether the method's own body assigns it, not a block in it)
            self.assigned: dict[str, list[tuple[int, ast.expr | None, bool]]] = {}
            body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.FunctionDef) else []
            top = {id(st) for st in body}
            for node in ast.walk(tree):
                targets = getattr(node, "targets", [getattr(node, "target", None)]) \
                    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) else []
                for t in targets:
                    made = node.value if not isinstance(node, ast.AugAssign) else None
                    at = (node.lineno, id(node) in top)
                    if isinstance(t, ast.Name):
                        self.assigned.setdefault(t.id, []).append((at[0], made, at[1]))
                    elif isinstance(t, (ast.Tuple, ast.List)):   # table, index = self._pairs(...)
                        plain = all(isinstance(e, ast.Name) for e in t.elts)
                        for i, e in enumerate(t.elts):
                            if isinstance(e, ast.Name):
                                self.assigned.setdefault(e.id, []).append(
                                    (at[0], ast.Subscript(made, ast.Constant(i), ast.Load()) if plain and made else None,
                                     at[1]))
            self.inlined: set[tuple[str, int]] = set()
            self.depth = 0

        def value_of(self, node: ast.Name) -> tuple[int, ast.expr] | None:
            """The assignment a read of a local sees: its only one, or, where the method's body
            assigns it again line after line (``x = f(x)``), the last one above the read."""
            made = self.assigned.get(node.id, [])
            if len(made) > 1 and all(top for _, _, top in made) and hasattr(node, "lineno"):
                made = [m for m in made if m[0] < node.lineno][-1:]
            return (made[0][0], made[0][1]) if len(made) == 1 and made[0][1] is not None else None

        def visit_Name(self, node):
            if node.id in allowed or node.id in functions:
                return node
            if node.id in self.values:
                return literal(self.values[node.id])
            found = self.value_of(node)
            if found is not None and self.depth < 8 and (node.id, found[0]) not in self.inlined:
                self.inlined.add((node.id, found[0]))
                self.depth += 1
                try:
                    return self.visit(copy.deepcopy(found[1]))
                finally:
                    self.depth -= 1
            if inspect.isfunction(module_globals.get(node.id)):
                functions[node.id] = module_globals[node.id]
                return node
            raise LookupError(node.id)

        def visit_Attribute(self, node):
            path = _dotted(node)
            if path.startswith("self.") and isinstance(node.ctx, ast.Load):
                value = owner
                for part in path.split(".")[1:]:
                    value = getattr(value, part)
                if isinstance(value, (torch.Tensor, nn.Module)) or callable(value):
                    raise LookupError(path)
                return literal(value)
            return self.generic_visit(node)

        def visit_Call(self, node):
            path = _dotted(node.func)
            if not (path.startswith("self.") and path.count(".") == 1):
                return self.generic_visit(node)
            method = path[5:]
            fn = getattr(type(owner), method, None)
            attrs = self_reads(fn) if inspect.isfunction(fn) and copier is not None else None
            if attrs is None:
                raise LookupError(path)
            called = method.lstrip("_") or method
            if called in allowed or module_globals.get(called, fn) is not fn:
                raise LookupError(path)

            functions[called], methods[called] = _as_function(fn, attrs), (method, None)
            node = self.generic_visit(ast.Call(ast.Name(called, ast.Load()), node.args, node.keywords))
            node.keywords += [ast.keyword(a, literal(getattr(owner, a))) for a in attrs]
            return node

    def meaning(expr: ast.expr, method: str, tree: ast.AST) -> ast.expr | None:
        try:
            return Substitute(method, tree).visit(copy.deepcopy(expr))
        except Exception:   # a name with no meaning here, a value with no literal
            return None

    def registering(method: str, tree: ast.AST) -> ast.expr | None:
        """``method(<what it reads from self>)`` where the method (called by ``__init__``, no
        arguments) computes the buffer and ends by registering it (torchvision's
        ``define_relative_position_index``): it is copied as a function that returns it."""
        fn = getattr(type(owner), method, None)
        if method == "__init__" or copier is None or len(tree.body[0].args.args) != 1:
            return None
        attrs = self_reads(fn, name)   # None unless it ends by registering ``name``
        called = method.lstrip("_") or method
        if attrs is None or called in allowed or module_globals.get(called, fn) is not fn:
            return None
        try:
            keywords = [ast.keyword(a, literal(getattr(owner, a))) for a in attrs]
        except LookupError:
            return None
        functions[called], methods[called] = _as_function(fn, attrs, registers=name), (method, name)
        return ast.Call(ast.Name(called, ast.Load()), [], keywords)

    found = None
    for method, tree in _constructor_methods(type(owner)):
        made = registering(method, tree)
        if made is not None:
            found = made
            continue
        for node in sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.Call))),
                           key=lambda n: (n.lineno, n.col_offset)):
            made = _made(node, name)
            if made is not None:
                found = meaning(made, method, tree)
                continue
            template = _filling(node, name)
            if template is not None and found is not None:
                filled = meaning(template, method, tree)
                found = None if filled is None else _Fill(found).visit(filled)
    if found is None:
        return None

    def draw(seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # only torch calls and the module's functions remain
            return eval(expr, {"torch": torch, "math": math, "nn": nn, **functions, "__builtins__": {}})

    try:
        found = _plain_keywords(found)
        if _uninitialised(found):
            return None   # torch.empty(...) filled where this cannot read (a loop, another object)
        expr = ast.unparse(found)
        value, again = draw(1), draw(2)
    except Exception:
        return None
    if not isinstance(value, torch.Tensor) or value.shape != like.shape or value.dtype != like.dtype:
        return None
    if torch.equal(value, again) and not torch.allclose(value, like.detach().cpu(), equal_nan=True):
        return None  # a fixed value that is not this tensor's: the module changed it after __init__
    used = {n.id for n in ast.walk(found) if isinstance(n, ast.Name)}
    renamed = {}
    for called, fn in functions.items():
        if called not in used:   # met in a part a later one replaced
            continue
        why = f"{type(owner).__name__}.__init__ computes its {name} with it"
        try:
            if called in methods:
                cls, (method, registers) = type(owner), methods[called]
                renamed[called] = copier.add_method(cls, method, why, registers) if is_user_object(cls) \
                    else copier.copy_library(cls, why, method=method, registers=registers)
            else:
                renamed[called] = copier.add(fn, why) if is_user_object(fn) else copier.copy_library(fn, why)
        except RenderError:
            renamed[called] = None
        if renamed[called] is None:
            return None
    if any(new != old for old, new in renamed.items()):
        class Rename(ast.NodeTransformer):
            def visit_Name(self, node):
                return ast.copy_location(ast.Name(renamed.get(node.id, node.id), node.ctx), node)
        expr = ast.unparse(Rename().visit(ast.parse(expr, mode="eval")))
    return expr, not torch.equal(value, again)


def _as_function(method, attrs: list[str], registers: str | None = None):
    """A method that only reads ``attrs`` from ``self``, called as the function the copier writes
    of it (``self_reads``): those attributes by keyword; with ``registers``, it returns the value
    the method registers as that buffer."""
    def call(*args, **kwargs):
        holder = types.SimpleNamespace(**{a: kwargs.pop(a) for a in attrs})
        box = {}
        holder.register_buffer = lambda _name, tensor, persistent=True: box.setdefault("value", tensor)
        out = method(holder, *args, **kwargs)
        return box["value"] if registers is not None else out
    return call


_HOLE = "__aimgen_value__"   # where the value so far goes in an in-place fill (see _filling)
_PARAMETER = ("nn.Parameter", "torch.nn.Parameter", "Parameter")


def _made(node: ast.AST, name: str) -> ast.expr | None:
    """The new value a statement gives ``self.<name>``: assigned (the tensor inside
    ``nn.Parameter(...)``), registered as a buffer, or copied in with ``copy_``."""
    value = None
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and _dotted(node.targets[0]) == f"self.{name}":
        value = node.value
    elif isinstance(node, ast.Call) and _dotted(node.func) == "self.register_buffer":
        named = dict(zip(("name", "tensor"), node.args)) | {k.arg: k.value for k in node.keywords}
        if isinstance(named.get("name"), ast.Constant) and named["name"].value == name:
            value = named.get("tensor")
    elif isinstance(node, ast.Call) and _dotted(node.func) == f"self.{name}.copy_" and len(node.args) == 1:
        value = node.args[0]
    if isinstance(value, ast.Call) and _dotted(value.func) in _PARAMETER and value.args:
        value = value.args[0]
    return value


def _filling(node: ast.AST, name: str) -> ast.Call | None:
    """An in-place initialisation of ``self.<name>`` as a call on ``_HOLE`` (the value so far):
    ``self.<name>.normal_(std=0.02)``, ``nn.init.zeros_(self.<name>)``, ``trunc_normal_(...)``."""
    if not isinstance(node, ast.Call):
        return None
    func, target = node.func, f"self.{name}"
    if isinstance(func, ast.Attribute) and _dotted(func.value) == target and _in_place(func.attr):
        return ast.Call(ast.Attribute(ast.Name(_HOLE, ast.Load()), func.attr, ast.Load()), node.args, node.keywords)
    if node.args and _dotted(node.args[0]) == target and _in_place(_dotted(func).rpartition(".")[2]):
        return ast.Call(func, [ast.Name(_HOLE, ast.Load()), *node.args[1:]], node.keywords)
    return None


def _in_place(name: str) -> bool:
    return name.endswith("_") and not name.startswith("_") and name != "copy_"


class _Fill(ast.NodeTransformer):
    def __init__(self, value: ast.expr):
        self.value = value

    def visit_Name(self, node):
        return copy.deepcopy(self.value) if node.id == _HOLE else node


_EMPTY = ("torch.empty", "torch.empty_like", "torch.empty_strided")


def _uninitialised(tree: ast.AST) -> bool:
    """Whether the expression makes a tensor without values (``torch.empty(...)``, ``x.new_empty``)
    that it does not fill itself (``torch.empty(n).uniform_(-b, b)`` and ``nn.init.zeros_(torch.empty(n))``
    fill it)."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    filled = {id(n.func.value) for n in calls if isinstance(n.func, ast.Attribute) and _in_place(n.func.attr)} | \
             {id(n.args[0]) for n in calls if n.args and _in_place(_dotted(n.func).rpartition(".")[2])}
    return any(isinstance(n, ast.Call) and (_dotted(n.func) in _EMPTY or getattr(n.func, "attr", "") == "new_empty")
               and id(n) not in filled for n in ast.walk(tree))


def _plain_keywords(tree: ast.AST) -> ast.AST:
    """``torch.zeros(3, **{'device': None, 'dtype': torch.float16})`` (a constructor's ``**dd``
    with its recorded value) -> ``torch.zeros(3, dtype=torch.float16)``: a dict of names spread
    into keywords, and torch's ``device=None``/``dtype=None`` (its defaults) left out."""
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        keywords = []
        for k in call.keywords:
            if k.arg is None and isinstance(k.value, ast.Dict) and all(
                    isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.isidentifier()
                    for key in k.value.keys):
                keywords += [ast.keyword(key.value, v) for key, v in zip(k.value.keys, k.value.values)]
            else:
                keywords.append(k)
        if _dotted(call.func).startswith("torch."):
            keywords = [k for k in keywords if not (k.arg in ("device", "dtype") and
                                                    isinstance(k.value, ast.Constant) and k.value.value is None)]
        call.keywords = keywords
    return tree


@functools.lru_cache(maxsize=512)
def _constructor_methods(cls: type) -> tuple[tuple[str, ast.AST], ...]:
    """``__init__`` and the methods of the class it calls on ``self`` (``self.reset_parameters()``,
    and what those call), parsed, in the order they are first called; torch's own left out.
    Parsed once a class (every tensor of every instance asks); the trees are only read."""
    out, seen, todo = [], set(), [("__init__", cls.__init__)]
    while todo and len(out) < 16:
        method, fn = todo.pop(0)
        if method in seen or not inspect.isfunction(fn) or fn.__module__.startswith("torch."):
            continue
        seen.add(method)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError, IndentationError):
            continue
        out.append((method, tree))
        for n in ast.walk(tree):
            called = _dotted(n.func) if isinstance(n, ast.Call) else ""
            if called.startswith("self.") and called.count(".") == 1:
                todo.append((called[5:], getattr(cls, called[5:], None)))
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__" and \
                    isinstance(n.func.value, ast.Call) and _dotted(n.func.value.func) == "super":
                # the parent's __init__, which calls the methods this class overrides (torchvision's
                # ShiftedWindowAttentionV2); its own arguments are not the recorded ones
                owner = next((c for c in cls.__mro__ if "__init__" in vars(c) and vars(c)["__init__"] is fn), None)
                parents = cls.__mro__[cls.__mro__.index(owner) + 1:] if owner is not None else ()
                parent = next((c for c in parents if "__init__" in vars(c)), None)
                if parent is not None:
                    todo.append((f"__init__ of {parent.__name__}", vars(parent)["__init__"]))
    return tuple(out)


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


# --- writing members -------------------------------------------------------------------------

def lines(value, render_value, indent: str = "") -> list[str]:
    """Source lines of a member's value; ``render_value(path, arg)`` writes a plain argument
    value (a literal, or a parameter expression); containers put one member per line."""
    return _lines(value, render_value, (), indent)


def _lines(value, render_value, path: tuple, indent: str) -> list[str]:
    if isinstance(value, Raw):
        return [value.code]
    if not isinstance(value, Constructor):
        return [render_value(path, None, value)]
    nested = [a for a in value.args if isinstance(a.value, (Constructor, list, dict)) and has_constructor(a.value)]
    if len(nested) <= 1 and all(isinstance(a.value, (Constructor, Raw)) and
                                len(_lines(a.value, render_value, path + (a.name,), indent)) == 1 for a in nested):
        return [_inline(value, render_value, path)]  # a value around one short call: one line
    last = value.args[-1]
    if nested == [last] and isinstance(last.value, Constructor):
        # one nested member, last: Block(64, 64, downsample=nn.Sequential(  ...  ))
        head = _inline(Constructor(value.callee, value.args[:-1]), render_value, path)[:-1]
        inner = _lines(last.value, render_value, path + (last.name,), indent)
        if len(inner) > 1:
            sep = ", " if value.args[:-1] else ""
            prefix = "" if last.positional else f"{last.name}="
            return [f"{head}{sep}{prefix}{inner[0]}"] + inner[1:-1] + [inner[-1] + ")"]
    out = [f"{value.callee}("]
    odd = []
    items = []
    for a in value.args:
        sub = path + (a.name,)
        if isinstance(a.value, list) and has_constructor(a.value):
            bodies = [_lines(item, render_value, sub + (j,), indent) for j, item in enumerate(a.value)]
            if len(bodies) >= 3 and all(b == bodies[0] and len(b) == 1 for b in bodies):
                items.append((a, [f"[{bodies[0][0]} for _ in range({len(bodies)})]"]))  # all alike
                continue
            out.append("    [")
            for body in _repeats([_lines(item, render_value, sub + (j,), indent) for j, item in enumerate(a.value)],
                                 "[{} for _ in range({})]"):
                out += ["        " + body[0]] + ["        " + b for b in body[1:]]
                out[-1] += ","
            out.append("    ],")
            continue
        if isinstance(a.value, dict) and has_constructor(a.value):
            out.append("    {")
            for key, item in a.value.items():
                body = _lines(item, render_value, sub + (key,), indent)
                out += [f"        {key!r}: " + body[0]] + ["        " + b for b in body[1:]]
                out[-1] += ","
            out.append("    },")
            continue
        body = _lines(a.value, render_value, sub, indent) if isinstance(a.value, (Constructor, Raw)) \
            else [_arg_source(a, render_value, sub)]
        if not a.positional and not is_safe_identifier(a.name):
            odd.append((a.name, body))
            continue
        items.append((a, body))
    positional = [body for a, body in items if a.positional]
    keywords = [(a, body) for a, body in items if not a.positional]
    for body in _repeats(positional, "({} for _ in range({}))"):
        out += ["    " + body[0]] + ["    " + b for b in body[1:]]
        out[-1] += ","
    for a, body in keywords:
        out += ["    " + f"{a.name}=" + body[0]] + ["    " + b for b in body[1:]]
        out[-1] += ","
    if odd:
        out.append("    **{")
        for name, body in odd:
            out += [f"        {name!r}: " + body[0]] + ["        " + b for b in body[1:]]
            out[-1] += ","
        out.append("    },")
    out.append(")")
    return out


def _repeats(bodies: list[list[str]], pattern: str) -> list[list[str]]:
    """Runs of three or more identical one-line items written once: ``*(X for _ in range(5))``."""
    out, i = [], 0
    while i < len(bodies):
        j = i
        while j < len(bodies) and bodies[j] == bodies[i]:
            j += 1
        if j - i >= 3 and len(bodies[i]) == 1:
            out.append(["*" + pattern.format(bodies[i][0], j - i)])
        else:
            out += bodies[i:j]
        i = j
    return out


def has_constructor(value) -> bool:
    if isinstance(value, (Constructor, Raw)) or type(value).__name__ == "BlockRef":
        return True
    if isinstance(value, list):
        return any(has_constructor(v) for v in value)
    if isinstance(value, dict):
        return any(has_constructor(v) for v in value.values())
    return False


def _arg_source(a: Arg, render_value, path: tuple) -> str:
    src = render_value(path, a, a.value)
    return f"{src} + {a.widen}" if a.widen else src


def _inline(ctor: Constructor, render_value, path: tuple) -> str:
    parts, odd = [], []
    for a in ctor.args:
        if isinstance(a.value, (Constructor, Raw)):
            src = _lines(a.value, render_value, path + (a.name,), "")[0]
        else:
            src = _arg_source(a, render_value, path + (a.name,))
        if a.positional:
            parts.append(src)
        elif is_safe_identifier(a.name):
            parts.append(f"{a.name}={src}")
        else:
            odd.append(f"{a.name!r}: {src}")
    if odd:
        parts.append("**{" + ", ".join(odd) + "}")
    return f"{ctor.callee}({', '.join(parts)})"
