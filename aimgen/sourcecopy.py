"""Copying the user's own classes and functions into the generated file, with libcst.

A leaf module whose class is defined in the user's file (kept whole because torch.fx cannot
trace it, or because it branches on ``self.training``), a ``torch.fx.wrap``-ped function, or a
dataclass / NamedTuple the model returns cannot be imported by the generated file (it never
imports the user's file). Their definitions are copied instead, exactly as written (libcst
keeps comments and formatting), together with what they need:

- other classes and functions of the user's code they use (copied the same way, recursively,
  dependencies first);
- modules and library objects they use (``import math``, ``from torchvision.ops import X``);
- module-level constants, written from their *values* with literals.py (no user statement
  other than a ``class`` or ``def`` is ever copied, so nothing runs at import that did not).

What a definition uses is read with ``symtable`` (the names its body reads from module scope)
and from the decorators, bases and defaults (evaluated in module scope); each name is resolved
against the live module. Anything that cannot be carried over (a tensor or model instance at
module level, a class defined inside a function, a name that would shadow one of the generated
file's own names) is refused, naming the file and line.
"""
from __future__ import annotations

import ast
import builtins
import copy
import functools
import importlib
import inspect
import math
import re
import symtable
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path

import libcst
import torch
import torch.nn.functional as F
from torch import nn

from .errors import RenderError
from .files import installed
from .literals import Unrenderable, python_literal
from .naming import comment_lines, is_safe_identifier

# Names the generated file binds itself at module level, and to what.
_TEMPLATE_BINDINGS = {"torch": torch, "nn": nn, "F": F, "math": math}


def is_namedtuple(cls) -> bool:
    """Whether ``cls`` is a namedtuple class (``collections.namedtuple`` or ``typing.NamedTuple``)."""
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def is_user_object(obj) -> bool:
    """True for a class or function defined in the user's own code (not the standard library,
    torch or an installed package): it must be copied, it cannot be imported."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if not file:
        return False
    return not installed(file)


def _is_library_module(module: types.ModuleType) -> bool:
    file = getattr(module, "__file__", None)
    if not file:  # builtin or namespace module
        return True
    return installed(file)


def _import_home(obj) -> str | None:
    """The shortest module path that exports ``obj`` under its own name."""
    name, mod = getattr(obj, "__name__", None), getattr(obj, "__module__", None)
    if not name or not mod:
        return None
    parts = mod.split(".")
    for i in range(1, len(parts) + 1):
        path = ".".join(parts[:i])
        if path.split(".")[-1].startswith("_") and i < len(parts):
            continue
        try:
            if getattr(importlib.import_module(path), name, None) is obj:
                return path
        except Exception:
            continue
    return None


@dataclass
class _File:
    """One source file, parsed three ways, and its live module."""

    path: Path
    text: str
    cst: libcst.Module
    tree: ast.Module
    table: symtable.SymbolTable
    globals: dict


@dataclass
class Copied:
    """What the generated file must hold: import lines, constants and definitions, in order."""

    imports: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    definitions: list[tuple[str, str]] = field(default_factory=list)  # (file name, source)
    objects: list[object] = field(default_factory=list)               # what each definition defines

    def without(self, objects) -> "Copied":
        """The same, less the definitions of ``objects`` (written elsewhere in the file)."""
        ids = {id(o) for o in objects}
        keep = [i for i, o in enumerate(self.objects) if id(o) not in ids]
        return Copied(imports=self.imports, constants=self.constants,
                      definitions=[self.definitions[i] for i in keep], objects=[self.objects[i] for i in keep],
                      depends=set(self.depends))
    depends: set[str] = field(default_factory=set)                    # non-torch import roots

    def text(self) -> str:
        if not self.definitions:
            return ""
        files = sorted({f for f, _ in self.definitions})
        out = comment_lines("", f"Copied from {', '.join(files)}: code the model or its __init__ runs, not "
                            "traced by torch.fx.")
        out += self.imports
        if self.constants:
            out += [""] + self.constants
        for _, src in self.definitions:
            out += ["", "", src.strip("\n")]
        return "\n".join(out) + "\n"


class SourceCopier:
    """Collects user classes and functions (``add``) and what they need (``copied``)."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset(), copy_modules: frozenset[str] = frozenset()):
        self.taken = set(taken)               # names the generated file defines itself
        self.copy_modules = copy_modules      # modules whose objects are always copied (aimgen.runtime)
        self.copy_libraries: set[str] = set()  # installed packages whose code is copied too (see copy_library)
        self.bound: dict[str, object] = {}   # top-level name in the output -> object it holds
        self.copied = Copied()
        self._files: dict[str, _File] = {}
        self._done: dict[int, str] = {}      # id(obj) -> name in the output
        self._busy: set[int] = set()

    # --- public ------------------------------------------------------------------------------
    def add(self, obj, why: str) -> str:
        """Copy ``obj`` (and its needs) into the output; returns the name to call it by."""
        if id(obj) in self._done:
            return self._done[id(obj)]
        name = getattr(obj, "__name__", "?")
        qual = getattr(obj, "__qualname__", name)
        if isinstance(obj, type) and "__aimgen_source__" in vars(obj):
            return self._add_written(obj, name, why)
        try:
            file = inspect.getsourcefile(obj)
        except TypeError:
            file = None
        if not file or not Path(file).exists():
            raise RenderError(f"{why}: {qual} has no source file to copy it from.",
                              hint="Define it in a .py file, or keep its parent traced instead.")
        if qual != name or "<locals>" in qual:
            raise RenderError(
                f"{Path(file).name}:{_line_of(obj)}: {why}: {qual} is defined inside a function or class, "
                "so it cannot be copied into the generated file.",
                hint=f"Define {name} at module level in {Path(file).name}.")
        if id(obj) in self._busy:  # mutual recursion: its name is bound once it is done
            return name
        self._busy.add(id(obj))
        src = self._file(Path(file), obj)
        stmt, node = self._definition(src, name, obj)
        if not is_user_object(obj):  # library code: drop registration decorators (they return it as is)
            stmt, node = _without_registrations(stmt, node, src, obj)
            stmt = stmt.visit(_FirstParagraph())
        for used in sorted(self._free_names(src, node, name)):
            self._resolve(src, used, name, why)
        self._bind(name, obj, src, node.lineno)
        code = src.cst.code_for_node(stmt)
        self.copied.definitions.append((src.path.name, code))
        self.copied.objects.append(obj)
        self._done[id(obj)] = name
        self._busy.discard(id(obj))
        return name

    def _add_written(self, cls: type, name: str, why: str) -> str:
        """A class that carries its own source (aimgen.taps.base.per_dimension): its bases
        outside torch first, then its text as is."""
        for base in cls.__bases__:
            if not base.__module__.startswith("torch"):
                self.add(base, why)
        return self._add_text(cls, name, cls.__aimgen_source__, why)

    def _add_text(self, cls: type, name: str, text: str, why: str) -> str:
        """``text``, the definition of ``cls`` as ``name``, into the output (a name bound once)."""
        if self.bound.get(name, cls) is not cls or name in self.taken:
            raise RenderError(f"{why}: the name {name} is needed for two different things in the generated file.",
                              hint="Rename the class of your code that is called so.")
        self.bound[name] = cls
        self.copied.definitions.append((f"{cls.__module__}.{name}", text))
        self.copied.objects.append(cls)
        self._done[id(cls)] = name
        return name

    def add_namedtuple(self, cls: type, why: str) -> str:
        """A namedtuple class of a library (torchvision's GoogLeNetOutputs) or one made by a
        ``collections.namedtuple`` call, which has no class statement to copy: written as that
        call, with its fields and defaults, so the generated file imports no library for it."""
        if id(cls) in self._done:
            return self._done[id(cls)]
        name = cls.__name__
        if not is_safe_identifier(name) or not all(is_safe_identifier(f) for f in cls._fields):
            raise RenderError(f"{why}: the namedtuple {cls.__qualname__} has a name or field that is not "
                              "an identifier.", hint="Return a tuple or a dict instead.")
        defaults = [cls._field_defaults[f] for f in cls._fields if f in cls._field_defaults]
        try:
            extra = f", defaults=[{', '.join(python_literal(d) for d in defaults)}]" if defaults else ""
        except Unrenderable:
            raise RenderError(f"{why}: the defaults of the namedtuple {name} cannot be written as literals.",
                              hint="Return a tuple or a dict instead.") from None
        text = f"{name} = collections.namedtuple({name!r}, {list(cls._fields)!r}{extra})"
        name = self._add_text(cls, name, text, why)
        if "import collections" not in self.copied.imports:
            self.copied.imports.append("import collections")
        return name

    def copy_library(self, obj, why: str, method: str | None = None, registers: str | None = None) -> str | None:
        """Copy a class or function of an installed package (and what it uses from that
        package) so the generated file stays standalone; None, with nothing copied, where that
        cannot be done. With ``method``: that method of the class ``obj``, as ``add_method``
        copies it."""
        package = (getattr(obj, "__module__", "") or "").split(".")[0]
        if not package or package == "torch":
            return None
        saved = (set(self.bound), list(self.copied.imports), list(self.copied.constants),
                 list(self.copied.definitions), list(self.copied.objects), set(self.copied.depends), dict(self._done))
        self.copy_libraries.add(package)
        try:
            return self.add(obj, why) if method is None else self.add_method(obj, method, why, registers)
        except RenderError:
            (bound, self.copied.imports, self.copied.constants, self.copied.definitions, self.copied.objects,
             self.copied.depends, self._done) = saved
            self.bound = {k: v for k, v in self.bound.items() if k in bound}
            self._busy.clear()
            return None
        finally:
            self.copy_libraries.discard(package)

    def add_method(self, cls: type, method: str, why: str, registers: str | None = None) -> str:
        """Copy ``cls.<method>`` as a module-level function (and what it uses): ``self`` is
        dropped and each ``self.<attr>`` it reads becomes a keyword-only parameter of that
        name, in the order ``self_reads`` gives. With ``registers``, the method's last
        statement registers that buffer: the function returns its value instead. Returns the
        name to call it by."""
        fn = getattr(cls, method)
        attrs = self_reads(fn, registers)
        if attrs is None:
            raise RenderError(f"{why}: {cls.__name__}.{method} uses self other than to read attributes.")
        if id(fn) in self._done:
            return self._done[id(fn)]
        home = next(c for c in cls.__mro__ if method in vars(c))
        file = inspect.getsourcefile(fn)
        if not file or not Path(file).exists():
            raise RenderError(f"{why}: {home.__name__}.{method} has no source file to copy it from.")
        src = self._file(Path(file), home)
        stmt, node = self._definition(src, home.__name__, home)
        found = [(m, n) for m, n in zip(
            (b for b in stmt.body.body if isinstance(b, libcst.FunctionDef)),
            (b for b in node.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))))
            if m.name.value == n.name == method]
        if len(found) != 1:
            raise RenderError(f"{src.path.name}: cannot isolate the method {home.__name__}.{method}.")
        cst_fn, ast_fn = found[0]
        name = method.lstrip("_") or method
        if registers is not None:   # self.register_buffer(name, value) -> return value
            last = cst_fn.body.body[-1]
            call = last.body[0].value
            value = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "tensor"),
                         None) or [a for a in call.args if a.keyword is None][1].value
            body = [*cst_fn.body.body[:-1], last.with_changes(body=[libcst.Return(value=value)])]
            cst_fn = cst_fn.with_changes(body=cst_fn.body.with_changes(body=body), returns=None)
        cst_fn = cst_fn.with_changes(name=libcst.Name(name), decorators=[],
                                     params=_without_self(cst_fn.params, attrs)).visit(_SelfReads())
        table = next((t for t in src.table.get_children()
                      if t.get_name() == home.__name__ and t.get_lineno() == node.lineno), None)
        method_table = next((t for t in (table.get_children() if table else []) if t.get_name() == method), None)
        used = set()
        if method_table is not None:
            _global_reads(method_table, used)
        used |= _header_reads(ast_fn)
        for free in sorted(used):
            self._resolve(src, free, name, why)
        self._bind(name, fn, src, ast_fn.lineno)
        self.copied.definitions.append((src.path.name, libcst.Module(body=[cst_fn]).code))
        self.copied.objects.append(fn)
        self._done[id(fn)] = name
        return name

    @property
    def names(self) -> set[str]:
        """Top-level names the copied code binds: the generated forward must not shadow them."""
        return set(self.bound)

    # --- parsing -----------------------------------------------------------------------------
    def _file(self, path: Path, obj) -> _File:
        key = str(path.resolve())
        if key not in self._files:
            text = path.read_text(encoding="utf-8")
            module = sys.modules.get(obj.__module__)
            self._files[key] = _File(path=path, text=text, cst=libcst.parse_module(text),
                                     tree=ast.parse(text), table=symtable.symtable(text, str(path), "exec"),
                                     globals=vars(module) if module is not None else {})
        return self._files[key]

    def _definition(self, src: _File, name: str, obj):
        """The libcst statement and the ast node of the top-level ``class``/``def`` of ``name``."""
        nodes = [n for n in src.tree.body
                 if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
        if not nodes:
            raise RenderError(f"{src.path.name}: no top-level definition of {name} found to copy.",
                              hint="Define it at module level with class/def.")
        want = _line_of(obj)
        node = next((n for n in nodes if want in (n.lineno, *(d.lineno for d in n.decorator_list))), nodes[-1])
        # the module's top-level class and def statements, in order, are the same in both trees
        # (libcst writes `async def` as a FunctionDef): the k-th of one is the k-th of the other
        ast_defs = [n for n in src.tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        cst_defs = [s for s in src.cst.body if isinstance(s, (libcst.ClassDef, libcst.FunctionDef))]
        index = next(i for i, n in enumerate(ast_defs) if n is node)
        if len(ast_defs) == len(cst_defs) and cst_defs[index].name.value == name:
            return cst_defs[index], node
        raise RenderError(f"{src.path.name}:{node.lineno}: cannot isolate the definition of {name}.")

    def _free_names(self, src: _File, node, name: str) -> set[str]:
        """Module-scope names the definition reads: its body (symtable) and its header (ast)."""
        used: set[str] = set()
        header = list(node.decorator_list)
        if isinstance(node, ast.ClassDef):
            header += node.bases + [k.value for k in node.keywords]
        else:
            used |= _header_reads(node)
        for expr in header:
            used |= {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}

        for child in src.table.get_children():
            if child.get_name() == name and child.get_lineno() in (node.lineno, *(d.lineno for d in node.decorator_list)):
                _global_reads(child, used)
        used.discard(name)
        return used

    # --- resolving names ---------------------------------------------------------------------
    def _resolve(self, src: _File, used: str, owner: str, why: str) -> None:
        where = f"{src.path.name}: {owner} uses {used}"
        if used not in src.globals:
            return  # a builtin, or a name that does not exist (Python would fail the same way)
        value = src.globals[used]
        if _TEMPLATE_BINDINGS.get(used, _MISSING) is value:
            return
        if isinstance(value, types.ModuleType):
            if not _is_library_module(value):
                raise RenderError(f"{where}, a module of your own code, which the generated file cannot import.",
                                  hint=f"Move what {owner} needs into {src.path.name}.")
            mod = value.__name__
            line = f"import {mod}" if used == mod else f"import {mod} as {used}"
            self._bind(used, value, src, None, line)
            self._depend(value.__name__)
            return
        if inspect.isclass(value) or inspect.isfunction(value):
            module_name = getattr(value, "__module__", None) or ""
            if is_user_object(value) or module_name in self.copy_modules or \
                    module_name.split(".")[0] in self.copy_libraries:
                real = self.add(value, why)
                if real != used:
                    self._bind(used, value, src, None, None, constant=f"{used} = {real}")
                return
        home = _import_home(value) if hasattr(value, "__name__") else None
        if home is not None:
            line = f"from {home} import {value.__name__}" + ("" if used == value.__name__ else f" as {used}")
            self._bind(used, value, src, None, line)
            self._depend(home)
            return
        if getattr(builtins, used, _MISSING) is value:
            return
        line = _import_line(src, used)  # the file's own import of the name (`from types import X`)
        if line is not None:
            self._bind(used, value, src, None, line[0])
            self._depend(line[1])
            return
        try:
            text = python_literal(value)
        except Unrenderable:
            raise RenderError(
                f"{where} ({type(value).__name__}), a module-level value that cannot be written as "
                "source, so the generated file would miss it.",
                hint=f"Make {used} a plain constant (number, string, tuple), or an attribute or buffer of the module.",
            ) from None
        self._bind(used, value, src, None, None, constant=f"{used} = {text}")

    def _depend(self, module: str) -> None:
        root = module.split(".")[0]
        if root != "torch" and root not in sys.stdlib_module_names:
            self.copied.depends.add(module)

    def _bind(self, name: str, value, src: _File, line: int | None, import_line: str | None = None,
              constant: str | None = None) -> None:
        if name in self.bound:
            if self.bound[name] is value or (constant is not None and _same_value(self.bound[name], value)):
                return
            raise RenderError(
                f"{src.path.name}: the name {name} is needed for two different things in the generated file.",
                hint="Rename one of them in your code.")
        if name in self.taken and _TEMPLATE_BINDINGS.get(name, _MISSING) is not value:
            raise RenderError(
                f"{src.path.name}{':' + str(line) if line else ''}: the name {name} of your code is also a name "
                "the generated file defines itself.", hint=f"Rename {name} in your code.")
        self.bound[name] = value
        if import_line is not None:
            self.copied.imports.append(import_line)
        if constant is not None:
            self.copied.constants.append(constant)


_MISSING = object()


def _global_reads(table: symtable.SymbolTable, used: set[str]) -> None:
    """Add the module-scope names ``table`` (and the scopes inside it) reads to ``used``."""
    for sym in table.get_symbols():
        if sym.is_global() and sym.is_referenced() or (
                table.get_type() == "class" and sym.is_referenced() and not sym.is_assigned()
                and not sym.is_local()):
            used.add(sym.get_name())
    for child in table.get_children():
        _global_reads(child, used)


def _header_reads(node: ast.FunctionDef) -> set[str]:
    """Names a function's defaults and annotations read: evaluated where it is defined."""
    a = node.args
    header = a.defaults + [d for d in a.kw_defaults if d is not None]
    params = a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p is not None]
    header += [p.annotation for p in params if p.annotation is not None]
    header += [node.returns] if node.returns is not None else []
    return {n.id for expr in header for n in ast.walk(expr) if isinstance(n, ast.Name)}


def self_reads(fn, registers: str | None = None) -> list[str] | None:
    """The attributes a method reads from ``self``, in order of first use, where that is all it
    does with ``self`` (no stores, no other use, no decorators) and no attribute has the name of
    one of its own variables; otherwise None. Such a method is a function of those values.
    With ``registers``: a method that ends by registering that buffer
    (``self.register_buffer("index", index)``, torchvision's ``define_relative_position_index``)
    and is otherwise such a method, a function that returns the buffer's value."""
    found = _self_reads(fn, registers)
    return None if found is None else list(found)


def _registered_value(stmt: ast.stmt, name: str) -> ast.expr | None:
    """The tensor of ``self.register_buffer(name, tensor, ...)`` where ``stmt`` is that call."""
    call = stmt.value if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) else None
    func = call.func if call is not None else None
    if not (isinstance(func, ast.Attribute) and func.attr == "register_buffer" and
            isinstance(func.value, ast.Name) and func.value.id == "self"):
        return None
    named = dict(zip(("name", "tensor"), call.args)) | {k.arg: k.value for k in call.keywords}
    given = named.get("name")
    return named.get("tensor") if isinstance(given, ast.Constant) and given.value == name else None


@functools.lru_cache(maxsize=512)
def _self_reads(fn, registers: str | None = None) -> tuple[str, ...] | None:   # parsed once a method
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef) or node.decorator_list or not node.args.args \
            or node.args.args[0].arg != "self":
        return None
    if registers is not None:   # the method less its last statement, which registers the buffer
        if not node.body or _registered_value(node.body[-1], registers) is None:
            return None
        value = node.body[-1].value.args[1:] + [k.value for k in node.body[-1].value.keywords]
        node = copy.copy(node)
        node.body = node.body[:-1] + [ast.Expr(v) for v in value]
    attrs, reads = [], set()
    for n in sorted((n for n in ast.walk(node) if hasattr(n, "lineno")), key=lambda n: (n.lineno, n.col_offset)):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
            if not isinstance(n.ctx, ast.Load):
                return None
            reads.add(id(n.value))
            if n.attr not in attrs:
                attrs.append(n.attr)
    selfs = [n for n in ast.walk(node) if isinstance(n, ast.Name) and n.id == "self"]
    if any(id(n) not in reads for n in selfs):
        return None
    own = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
          {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
    return None if own & set(attrs) else tuple(attrs)


def _without_self(params: libcst.Parameters, attrs: list[str]) -> libcst.Parameters:
    """A method's parameters less ``self``, with ``attrs`` as keyword-only parameters, laid out
    as the method's own are (one per line where they were)."""
    kept = list(params.params[1:])
    first = params.params[0].comma if params.params else libcst.MaybeSentinel.DEFAULT
    sep = next((p.comma for p in [*kept[:-1], params.params[0]] if isinstance(p.comma, libcst.Comma)),
               libcst.Comma(whitespace_after=libcst.SimpleWhitespace(" ")))
    star = params.star_arg if isinstance(params.star_arg, (libcst.Param, libcst.ParamStar)) else libcst.ParamStar()
    kwonly = [*params.kwonly_params, *(libcst.Param(libcst.Name(a)) for a in attrs)]
    slots = [*kept, star, *kwonly] + ([params.star_kwarg] if isinstance(params.star_kwarg, libcst.Param) else [])
    # the last one ends as the method's last did: a trailing comma before a ")" on its own line
    if isinstance(params.star_kwarg, libcst.Param):
        last = params.star_kwarg.comma
    elif kept:
        last = kept[-1].comma
    elif isinstance(first, libcst.Comma) and "\n" in libcst.Module(body=[]).code_for_node(first):
        last = first
    else:
        last = libcst.MaybeSentinel.DEFAULT
    slots = [s.with_changes(comma=sep) for s in slots[:-1]] + [slots[-1].with_changes(comma=last)]
    n = len(kept)
    return params.with_changes(
        params=slots[:n], star_arg=slots[n], kwonly_params=slots[n + 1: n + 1 + len(kwonly)],
        star_kwarg=slots[-1] if isinstance(params.star_kwarg, libcst.Param) else params.star_kwarg)


class _SelfReads(libcst.CSTTransformer):
    """``self.attr`` -> ``attr`` (see ``self_reads``)."""

    def leave_Attribute(self, original, updated):
        if isinstance(updated.value, libcst.Name) and updated.value.value == "self":
            return updated.attr
        return updated


def _import_line(src, used: str) -> tuple[str, str] | None:
    """The top-level ``import``/``from ... import`` of the file that binds ``used``, as a line,
    and the module it imports from; absolute imports only."""
    for stmt in src.tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for alias in stmt.names:
                if (alias.asname or alias.name) == used:
                    return (f"from {stmt.module} import {alias.name}" +
                            (f" as {alias.asname}" if alias.asname else ""), stmt.module)
    return None


def _without_registrations(stmt, node, src, obj):
    """A library class or function without the decorators that only register it somewhere
    (timm's ``@register_notrace_module``): each is evaluated and kept unless it gives ``obj``
    back unchanged."""
    keep_cst, keep_ast = [], []
    for dec_cst, dec_ast in zip(stmt.decorators, node.decorator_list):
        try:
            decorator = eval(compile(ast.Expression(dec_ast), src.path.name, "eval"), dict(src.globals))
            plain = decorator(obj) is obj
        except Exception:
            plain = False
        if not plain:
            keep_cst.append(dec_cst)
            keep_ast.append(dec_ast)
    if len(keep_ast) == len(node.decorator_list):
        return stmt, node
    node = copy.copy(node)
    node.decorator_list = keep_ast
    return stmt.with_changes(decorators=keep_cst), node


class _FirstParagraph(libcst.CSTTransformer):
    """A library's docstrings cut to their first paragraph: the copy says where it came from,
    and the library documents the rest (torchvision's ``_log_api_usage_once`` has 20 lines of
    docstring for a line of code)."""

    def leave_SimpleString(self, original, updated):
        raw = updated.value
        quote = raw[-3:]
        if quote not in ('"""', "'''"):
            return updated
        blank = re.search(r"\n[ \t]*\n", raw)
        if blank is None or not raw.rstrip(quote).strip():
            return updated
        closing = raw.rsplit("\n", 1)[-1]   # the indentation the closing quotes have
        indent = closing[:len(closing) - len(closing.lstrip())] if closing.strip() == quote else ""
        return updated.with_changes(value=raw[:blank.start()] + "\n" + indent + quote)

    def visit_SimpleStatementLine(self, node):
        return _is_docstring(node)

    def visit_Call(self, node):
        return False   # strings in code stay as they are


def _is_docstring(line) -> bool:
    return len(line.body) == 1 and isinstance(line.body[0], libcst.Expr) and \
        isinstance(line.body[0].value, libcst.SimpleString)


def _same_value(a, b) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _line_of(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 0
