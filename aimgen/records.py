"""Recording the arguments every module's constructor was called with, while aimgen builds the
user's model.

Reading constructor arguments back from a module's attributes is a guess (PyTorch stores most
under their own names; user and library classes often do not). When aimgen builds the model
itself (``aimgen convert FILE.py:NAME``) it watches every ``__init__`` call of an ``nn.Module``
(through ``sys.setprofile``, so no class is patched) and keeps the arguments of the outermost
one per object: the call ``Bottleneck(64, 64, stride=2)`` made, with its defaults filled in.
The code generator then writes kept leaves as their true constructor calls and names block
parameters after the user's own (``inplanes``, ``planes``).
"""
from __future__ import annotations

import builtins
import contextlib
import functools
import importlib.util
import inspect
import sys
import threading
import types
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from .files import installed


class Call(dict):
    """The arguments of one constructor call, by parameter name (``*args`` as ``"*args"``), and
    in ``locals`` the local variables its ``__init__`` ended with (``image_height`` in
    ``self.table = sincos(h=image_height // patch, dim=dim)``): what an expression of that
    ``__init__`` may read besides its arguments."""

    locals: dict = {}
    #: the calls that built the modules passed as its arguments, by id: what a module that is
    #: not kept as a submodule (nn.TransformerEncoder's ``encoder_layer``, copied num_layers
    #: times) is written from
    arguments: dict = {}


class ConstructorRecords:
    """Arguments of each module's constructor call, by object."""

    def __init__(self):
        self._by_id: dict[int, tuple[nn.Module, dict]] = {}
        self._open: dict[int, Call] = {}   # id(frame) -> its call, until the frame returns

    def add(self, module: nn.Module, arguments: dict, frame=None) -> None:
        if id(module) not in self._by_id:
            call = Call(arguments)
            self._by_id[id(module)] = (module, call)
            if frame is not None:
                self._open[id(frame)] = call

    def returned(self, frame) -> None:
        """A constructor frame ended: keep its locals (``self`` and the arguments aside)."""
        call = self._open.pop(id(frame), None)
        if call is not None:   # (not tensors or modules: no expression writes them, and they are large)
            call.locals = {k: v for k, v in frame.f_locals.items()
                           if k != "self" and k not in call and not isinstance(v, (torch.Tensor, nn.Module))}

    def of(self, module: nn.Module) -> dict | None:
        found = self._by_id.get(id(module))
        return found[1] if found is not None and found[0] is module else None

    def by_name(self, root: nn.Module) -> dict[str, dict]:
        """{qualified name: arguments} for the modules of ``root`` that were recorded."""
        out = {}
        for name, module in root.named_modules(remove_duplicate=False):
            args = self.of(module)
            if args is not None:
                self._link(args, set())
                out.setdefault(name, args)
        return out

    def _link(self, call: Call, seen: set[int]) -> None:
        """Attach to ``call`` the calls of the modules among its arguments (and theirs)."""
        if id(call) in seen:
            return
        seen.add(id(call))
        found = {}
        for value in call.values():
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                inner = self.of(v) if isinstance(v, nn.Module) else None
                if inner is not None:
                    self._link(inner, seen)
                    found[id(v)] = inner
        call.arguments = found


def _wrapped(init) -> Iterator[Callable]:
    """``init`` and the functions its wrappers call, outermost first: those held in a wrapper's
    closure (the ``kernels`` package replaces transformers' MambaMixer.__init__ by a
    ``new_init(self, *args, **kwargs)`` that calls it, without functools.wraps) or named by
    ``__wrapped__``."""
    todo, seen = [init], set()
    while todo:
        f = todo.pop(0)
        if not inspect.isfunction(f) or f in seen:
            continue
        seen.add(f)
        yield f
        todo.append(getattr(f, "__wrapped__", None))
        for cell in f.__closure__ or ():
            with contextlib.suppress(ValueError):   # (an empty cell)
                todo.append(cell.cell_contents)


@functools.lru_cache(maxsize=None)
def _constructors(cls: type) -> dict[types.CodeType, Callable]:
    """The ``__init__`` functions that are the class's own constructor, by their code: those of
    its classes and the ones their wrappers call (not nn.Module's, whose ``*args, **kwargs`` any
    subclass's call reaches)."""
    found: dict[types.CodeType, Callable] = {}
    for klass in cls.__mro__:
        if klass not in (nn.Module, object):
            for f in _wrapped(klass.__dict__.get("__init__")):
                found.setdefault(f.__code__, f)
    return found


def unwrapped_init(init):
    """The ``__init__`` that decorators' wrappers call, else ``init`` itself: its signature names
    the constructor's arguments (``inspect.signature`` follows only ``functools.wraps``)."""
    return next((f for f in _wrapped(init) if f.__code__.co_name == "__init__"), init)


def _arguments(frame, module: nn.Module) -> dict | None:
    """The bound arguments of a constructor frame at its first line, defaults included."""
    function = _constructors(type(module)).get(frame.f_code)
    if function is None:
        return None
    try:
        sig = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    local = frame.f_locals
    out = {}
    for p in list(sig.parameters.values())[1:]:
        if p.name not in local:
            return None  # not the class's own __init__ (a wrapper): no record
        value = local[p.name]
        if p.kind is p.VAR_POSITIONAL:
            out["*" + p.name] = tuple(value)
        elif p.kind is p.VAR_KEYWORD:
            out["**" + p.name] = dict(value)
        else:
            out[p.name] = value
    return out


@contextmanager
def recording() -> Iterator[ConstructorRecords]:
    """Record constructor arguments of every nn.Module built in this thread meanwhile."""
    records = ConstructorRecords()
    previous = sys.getprofile()
    # a profiler written in C (cProfile) is not a function to chain to: it is paused meanwhile
    chained = previous if callable(previous) else None
    own_thread = threading.get_ident()

    def profile(frame, event, arg):
        if frame.f_code.co_name == "__init__" and threading.get_ident() == own_thread:
            if event == "call":
                module = frame.f_locals.get("self")
                if isinstance(module, nn.Module) and records.of(module) is None:
                    args = _arguments(frame, module)
                    if args is not None:
                        records.add(module, args, frame)
            elif event == "return":
                records.returned(frame)
        if chained is not None:
            chained(frame, event, arg)

    original_import = builtins.__import__

    def quiet_import(name, globals=None, locals=None, fromlist=(), level=0):
        """An installed package's import, unrecorded: it runs a great deal of code and builds
        no model of the user's (importing torchvision took 0.7 s longer recorded)."""
        if level or sys.getprofile() is not profile or not _installed_module(name):
            return original_import(name, globals, locals, fromlist, level)
        sys.setprofile(chained)
        try:
            return original_import(name, globals, locals, fromlist, level)
        finally:
            sys.setprofile(profile)

    sys.setprofile(profile)
    builtins.__import__ = quiet_import
    try:
        yield records
    finally:
        if builtins.__import__ is quiet_import:
            builtins.__import__ = original_import
        if previous is None or chained is not None:
            sys.setprofile(previous)
        else:
            previous.enable()


def _installed_module(name: str) -> bool:
    """Whether ``import name`` imports (or has imported) the standard library's or an installed
    package's module; False where that is not known without importing it."""
    top = name.partition(".")[0]
    module = sys.modules.get(top)
    try:
        file = getattr(module, "__file__", None) if module is not None else \
            getattr(importlib.util.find_spec(top), "origin", None)
    except (ImportError, ValueError):
        return False
    return bool(file) and file not in ("built-in", "frozen") and installed(file)
