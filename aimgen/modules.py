"""Writing a leaf module as an explicit constructor call, checked against the original.

Any module class works, not a fixed list. Its arguments come from the constructor call aimgen
recorded while building the model (aimgen/records.py), where there is one; otherwise they are
read back from the module's attributes (PyTorch stores them under the same names). Either way
the module is rebuilt from the written call, and the rebuilt module must have the same
``repr`` and the same parameter and buffer names, shapes and dtypes as the original (and, for
classes outside torch, the same plain attributes). Otherwise the layer is refused, by name.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re

import torch
from torch import nn

from .errors import RenderError
from .literals import Unrenderable, python_literal
from .records import unwrapped_init
from .sourcecopy import SourceCopier, is_namedtuple, is_user_object
from .taps import Arg, Constructor

_SKIP_PARAMS = {"self", "device", "dtype", "_weight", "_freeze"}
# Constructor arguments that are stored as something else than their own name.
_DERIVED = {
    "bias": lambda m: getattr(m, "bias", None) is not None if not isinstance(m, nn.MultiheadAttention)
    else m.in_proj_bias is not None,
    "add_bias_kv": lambda m: m.bias_k is not None,
    "elementwise_affine": lambda m: getattr(m, "elementwise_affine", getattr(m, "weight", None) is not None),
}


def public_path(obj) -> tuple[str, str] | None:
    """(import statement module, dotted callee) for a class or function importable by name."""
    name = getattr(obj, "__name__", None)
    mod = getattr(obj, "__module__", None)
    if not name or not mod:
        return None
    if getattr(nn, name, None) is obj:
        return "torch", f"nn.{name}"
    if getattr(torch, name, None) is obj:
        return "torch", f"torch.{name}"
    if getattr(nn.functional, name, None) is obj:
        return "torch", f"F.{name}"
    parts = mod.split(".")
    for i in range(1, len(parts) + 1):
        path = ".".join(parts[:i])
        if any(p.startswith("_") for p in parts[1:i]) and i < len(parts):
            continue
        try:
            module = importlib.import_module(path)
        except Exception:
            continue
        if getattr(module, name, None) is obj:
            return path, f"{path}.{name}"
    return None


class ValueWriter:
    """Writes constructor argument values as source: literals, classes and functions by their
    import path (or copied, for the user's own), ``functools.partial`` of those, and nn.Modules
    passed as arguments (``norm_layer=nn.LayerNorm(8)``) as their own constructor calls."""

    def __init__(self, copier: SourceCopier | None = None):
        self.copier = copier
        self.imports: set[str] = set()

    def __call__(self, value) -> str:
        if is_namedtuple(type(value)):   # a namedtuple keeps its class
            fields = ", ".join(f"{f}={self(getattr(value, f))}" for f in type(value)._fields)
            return f"{self(type(value))}({fields})"
        try:
            return python_literal(value)
        except Unrenderable:
            pass
        if isinstance(value, Constructor):   # a module passed as an argument, written as its own call
            self.imports |= value.imports
            return value.source(lambda a: self(a.value))
        if isinstance(value, functools.partial):
            parts = [self(value.func)] + [self(a) for a in value.args] + [f"{k}={self(v)}" for k, v in value.keywords.items()]
            self.imports.add("functools")
            return f"functools.partial({', '.join(parts)})"
        if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
            if self.copier is not None and is_user_object(value):
                return self.copier.add(value, "a constructor argument is this class or function")
            found = public_path(value)
            if found is None:
                raise Unrenderable(f"{getattr(value, '__qualname__', value)!r} (not importable by name)")
            if found[0] not in ("torch",):
                self.imports.add(found[0])
            return found[1]
        if isinstance(value, (tuple, list)):
            items = [self(v) for v in value]
            if isinstance(value, list):
                return "[" + ", ".join(items) + "]"
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return "{" + ", ".join(f"{k!r}: {self(v)}" for k, v in value.items()) + "}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # a config object (timm's LayerFn): its class called with the fields that differ from
            # their defaults (the rebuilt module is compared with the original afterwards)
            args = [f"{f.name}={self(getattr(value, f.name))}" for f in dataclasses.fields(value)
                    if f.init and not _is_default(f, getattr(value, f.name))]
            return f"{self(type(value))}({', '.join(args)})"
        raise Unrenderable(f"{type(value).__name__} value")


def _is_default(f: dataclasses.Field, value) -> bool:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return False
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # a comparison that is not a bool (tensors): write the value
        return False


def _same(a: nn.Module, b: nn.Module, strict: bool = False) -> str | None:
    """None if ``b`` rebuilds ``a``; else what differs. ``strict`` (classes outside torch, whose
    constructor arguments may be stored under other names): plain attributes must match too."""
    if repr(a) != repr(b):
        want, got = repr(a).splitlines(), repr(b).splitlines()
        k = next((i for i, (x, y) in enumerate(zip(want, got)) if x != y), min(len(want), len(got)))
        want_line, got_line = (lines[k].strip() if k < len(lines) else "(nothing)" for lines in (want, got))
        return f"it has {got_line!r} where the model has {want_line!r}"
    if strict:
        for (name, sa), (_, sb) in zip(_plain_attrs(a), _plain_attrs(b)):
            lacks = sa.keys() - sb.keys()
            unread = _never_read(a, lacks)
            sa = {k: v for k, v in sa.items() if k not in unread}
            if _plain_attrs_differ(sa, sb):
                return f"attributes of {name or 'the module'}: {sb} != {sa}"
    for kind, get in (("parameter", nn.Module.named_parameters), ("buffer", nn.Module.named_buffers)):
        sa = {k: (tuple(v.shape), v.dtype) for k, v in get(a)}
        sb = {k: (tuple(v.shape), v.dtype) for k, v in get(b)}
        if sa != sb:
            return f"{kind}s {sb} != {sa}"
    return None


def constructor(module: nn.Module, qualname: str, *, copier: SourceCopier | None = None, why: str = "",
                recorded: dict | None = None, records: dict[str, dict] | None = None) -> Constructor:
    """The constructor call that rebuilds ``module``, verified by rebuilding it.

    A class of the user's own code is copied into the output by ``copier`` (see sourcecopy.py)
    and called by its name; ``why`` says why the module is kept whole, for error messages;
    ``recorded`` are the arguments its constructor was called with, if aimgen saw the call, and
    ``records`` those of every module by qualified name (for its submodules). A submodule passed
    as an argument (``BasicBlock(64, 128, 2, downsample=nn.Sequential(...))``) and the items of
    a container are written as their own constructor calls."""
    cls = type(module)
    records = records or {}
    if cls in (nn.Sequential, nn.ModuleList) and module._modules and \
            list(module._modules) == [str(i) for i in range(len(module._modules))]:
        items = [constructor(child, f"{qualname}.{name}", copier=copier, why=why, records=records,
                             recorded=records.get(f"{qualname}.{name}"))
                 for name, child in module._modules.items()]
        args = [Arg("args", c, True) for c in items] if cls is nn.Sequential else [Arg("modules", items, True)]
        return Constructor(f"nn.{cls.__name__}", args, imports=set().union(*(c.imports for c in items)))
    if recorded is not None:
        calls = getattr(recorded, "arguments", {})
        recorded = {k: _as_call(v, module, qualname, copier, why, records, calls) for k, v in recorded.items()}
    where = f"layer {qualname} ({cls.__name__}{', ' + why if why else ''})"
    copied = None
    if copier is not None and is_user_object(cls):
        copied = copier.add(cls, f"layer {qualname} is kept whole")
    elif copier is not None and why and not cls.__module__.startswith("torch."):
        copied = copier.copy_library(cls, f"layer {qualname} is kept whole")  # standalone where possible
    found = ("", copied) if copied else public_path(cls)
    if found is None:
        raise RenderError(
            f"{where}: its class is not importable by name, so it cannot be written as a constructor call.",
            hint=f"Define {cls.__name__} at module level, or keep its parent traced (not a leaf).")
    import_mod, callee = found
    writer = ValueWriter(copier)
    namespace = {"torch": torch, "nn": nn, "F": nn.functional, "functools": functools}
    if not import_mod:
        namespace[callee] = cls
    elif import_mod != "torch":
        namespace[import_mod.split(".")[0]] = importlib.import_module(import_mod.split(".")[0])
    strict = not cls.__module__.startswith("torch.")
    attempts: list[tuple[str, Constructor]] = []
    if recorded is not None:
        rec = _from_recorded(cls, callee, recorded, writer)
        if rec is not None:
            attempts.append(("the recorded constructor call", rec))
            at_defaults = _at_defaults(cls, rec)
            if at_defaults is not None:   # (where the recorded call leaves weights uninitialised)
                attempts.append(("the recorded constructor call with its defaults", at_defaults))
    try:
        values = _read_back(module, cls, where)
    except RenderError as err:
        if not attempts:
            raise RenderError(f"{err.message}", hint="Convert with aimgen convert FILE.py (it records every "
                              "constructor call while it builds the model), or list its parent with leaf=.") from None
        values = None
    if values is not None:
        dtypes = {t.dtype for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()}
        sig = _signature(cls)
        extra = {"dtype": dtypes.pop()} if dtypes and dtypes != {torch.float32} and "dtype" in sig.parameters else {}
        for compact in (True, False):
            attempts.append(("its attributes", _assemble(sig, values, extra, callee, compact)))
    failed: list[str] = []   # why each attempt failed; the first (the recorded call) says most
    with_settings = None     # a call that rebuilds it once settings are set again: the last resort
    for how, ctor in attempts:
        ctor.imports = {import_mod} if import_mod not in ("torch", "") else set()
        try:
            src = ctor.source(lambda a: writer(a.value))
        except Unrenderable as err:
            failed.append(f"from {how}: an argument ({err}) cannot be written as source")
            continue
        for mod in writer.imports:
            namespace.setdefault(mod.split(".")[0], importlib.import_module(mod.split(".")[0]))
        try:
            with torch.random.fork_rng(devices=[]):
                rebuilt = eval(src, namespace)  # our own literals and import paths only
        except Exception as err:
            failed.append(f"rebuilding it from {how} failed: {err}")
            continue
        empty = _uninitialised(module, rebuilt)
        if empty:
            failed.append(f"{how} leaves {empty} uninitialised (the model's builder initialises it afterwards)")
            continue
        diff = _same(module, rebuilt, strict=strict)
        settings = set_after_building(module, rebuilt) if diff is not None else {}
        if settings:   # what a builder set after construction: set again, as the base model's was
            for name, values in settings.items():
                for attr, value in values.items():
                    setattr(rebuilt.get_submodule(name), attr, value)
            diff = _same(module, rebuilt, strict=strict)
        if diff is None and not settings:
            ctor.imports |= writer.imports
            return ctor
        if diff is None:
            ctor.settings = settings
            with_settings = with_settings or (ctor, set(writer.imports))
            continue
        failed.append(f"rebuilding it from {how} does not give the same module ({diff[:300]})")
    if with_settings is not None:
        ctor, imports = with_settings
        ctor.imports |= imports
        return ctor
    raise RenderError(f"{where}: {failed[0] if failed else 'no way to write it'}.",
                      hint="List its parent module with leaf=, or report this layer type.")


def _as_call(value, module: nn.Module, qualname: str, copier, why: str, records: dict, calls: dict):
    """A recorded argument that is a module: one of ``module``'s submodules, or one its
    constructor only used (nn.TransformerEncoder's ``encoder_layer``, which it copies), written
    as that module's constructor call (verified like any other; ``calls``: the recorded calls
    of such arguments, by id); anything else as it is."""
    if not isinstance(value, nn.Module):
        return value
    name = next((n for n, c in module._modules.items() if c is value), None)
    if name is None:
        if id(value) not in calls:
            return value   # not a submodule, and built before aimgen watched: left to fail where written
        return constructor(value, f"{qualname} (its argument {type(value).__name__})", copier=copier, why=why,
                           records={}, recorded=calls[id(value)])
    q = f"{qualname}.{name}"
    return constructor(value, q, copier=copier, why=why, records=records, recorded=records.get(q))


def _from_recorded(cls, callee: str, recorded: dict, writer: ValueWriter) -> Constructor | None:
    sig = _signature(cls)
    args: list[Arg] = []
    positional_ok = True
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_POSITIONAL:
            for v in recorded.get("*" + p.name, ()):
                args.append(Arg(p.name, v, True))
            positional_ok = False
            continue
        if p.kind is p.VAR_KEYWORD:
            for k, v in recorded.get("**" + p.name, {}).items():
                args.append(Arg(k, v, False))
            continue
        if p.name not in recorded:
            return None
        value = recorded[p.name]
        if p.default is not p.empty and _equal(value, p.default):
            positional_ok = False
            continue
        positional = positional_ok and p.default is p.empty and p.kind is not p.KEYWORD_ONLY
        if not positional:
            positional_ok = False
        args.append(Arg(p.name, value, positional))
    return Constructor(callee=callee, args=args, defaults=_defaults(sig, args), order=_order(sig))


def _at_defaults(cls, rec: Constructor) -> Constructor | None:
    """The recorded call with the arguments that have defaults left out; None if it has none
    (transformers builds MambaMixer with ``initialize_mixer_weights=False`` and initialises its
    weights from the model afterwards: rebuilt alone, the layer must initialise them itself)."""
    sig = _signature(cls)
    defaulted = {p.name for p in sig.parameters.values() if p.default is not p.empty}
    args = [a for a in rec.args if a.name not in defaulted]
    if len(args) == len(rec.args):
        return None
    return Constructor(callee=rec.callee, args=args, defaults=_defaults(sig, args), order=_order(sig))


def _uninitialised(module: nn.Module, rebuilt: nn.Module) -> str:
    """The first floating parameter the rebuilt module leaves as ``torch.empty`` left it (values
    not finite, or beyond 1e20) where the model's own is not, else ''."""
    own = dict(module.named_parameters())
    for name, p in rebuilt.named_parameters():
        if not p.is_floating_point() or name not in own:
            continue
        if _garbage(p) and not _garbage(own[name]):
            return name
    return ""


def _garbage(t: torch.Tensor) -> bool:
    t = t.detach()
    return bool(t.numel()) and (not bool(torch.isfinite(t).all()) or float(t.abs().max()) > 1e20)


def _order(sig: inspect.Signature) -> tuple[str, ...]:
    return tuple(p.name for p in sig.parameters.values() if p.name not in _SKIP_PARAMS
                 and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _defaults(sig: inspect.Signature, args: list[Arg]) -> dict:
    given = {a.name for a in args}
    return {p.name: p.default for p in sig.parameters.values()
            if p.default is not p.empty and p.name not in given and p.name not in _SKIP_PARAMS}


def _read_back(module: nn.Module, cls, where: str) -> dict:
    """Constructor arguments read back from the module's attributes (the torch.nn convention)."""
    sig = _signature(cls)
    values: dict[str, object] = dict(_BY_CLASS[cls](module)) if cls in _BY_CLASS else {}
    for p in sig.parameters.values():
        if p.name in values or p.name in _SKIP_PARAMS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in _DERIVED and (p.name != "elementwise_affine" or hasattr(module, "elementwise_affine")):
            try:
                values[p.name] = _DERIVED[p.name](module)
            except AttributeError:
                continue
        elif hasattr(module, p.name) and not isinstance(getattr(module, p.name), (torch.Tensor, nn.Module)):
            values[p.name] = getattr(module, p.name)
        elif p.default is p.empty:
            raise RenderError(
                f"{where}: constructor argument {p.name!r} is not stored on the module, so it "
                "cannot be read back.", hint="List its parent module with leaf=, or report it.")
    return values


_PLAIN = (bool, int, float, str, tuple, list, type(None), torch.dtype)


#: plain values a torch.nn layer keeps from its constructor that set afterwards change what it
#: computes, and nothing else: a model builder may set them after building its modules
#: (ultralytics sets every BatchNorm's eps and momentum)
_SETTABLE = (bool, int, float)


def set_after_building(module: nn.Module, rebuilt: nn.Module) -> dict[str, dict[str, object]]:
    """{submodule name: {attribute: the model's value}} for the torch.nn submodules of ``module``
    whose plain settings (eps, momentum, p, negative_slope, ...) differ from a rebuild's by its
    constructor: what the model's builder set after construction. Empty where the two differ in
    anything else (submodule names or types, a setting that only one of them has)."""
    theirs = dict(rebuilt.named_modules())
    out = {}
    for name, m in module.named_modules():
        r = theirs.get(name)
        if r is None or type(r) is not type(m):
            return {}
        if not type(m).__module__.startswith("torch.nn."):
            continue
        mine = {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"
                and type(v) in _SETTABLE}
        other = {k: v for k, v in vars(r).items() if k in mine}
        if other.keys() != mine.keys() or any(type(other[k]) is not type(v) for k, v in mine.items()):
            return {}
        differ = {k: v for k, v in mine.items() if other[k] != v}
        if differ:
            out[name] = differ
    return out


def _plain_attrs(m: nn.Module):
    """(name, {attribute: value}) of plain-valued attributes, for the module and its children."""
    for name, sub in m.named_modules():
        yield name, {k: v for k, v in vars(sub).items() if not k.startswith("_") and k != "training"
                     and isinstance(v, _PLAIN)}


def _never_read(module: nn.Module, names) -> set[str]:
    """Of plain attributes that a rebuilt module lacks, those that the code of no class in it
    names: set from outside, as a model builder tags its layers (ultralytics' ``m.i, m.f,
    m.type, m.np``), they cannot change what it computes."""
    codes = [_class_code(c) for c in {type(m) for m in module.modules()}]
    if None in codes:
        return set()
    code = "\n".join(codes)
    return {n for n in names if not re.search(rf"\.{re.escape(n)}\b|['\"]{re.escape(n)}['\"]", code)}


@functools.lru_cache(maxsize=None)
def _class_code(cls: type) -> str | None:
    """The source of the class and its bases outside torch (None where any cannot be read)."""
    parts = []
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith("torch."):
            continue
        try:
            parts.append(inspect.getsource(klass))
        except (OSError, TypeError):
            return None
    return "\n".join(parts)


def _plain_attrs_differ(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return True
    return any(not _equal(a[k], b[k]) and not (a[k] != a[k] and b[k] != b[k]) for k in a)


def _signature(cls) -> inspect.Signature:
    """The first constructor signature in the MRO that names its arguments (LSTM -> RNNBase)."""
    for klass in cls.__mro__:
        init = unwrapped_init(klass.__dict__.get("__init__"))
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return inspect.Signature()
        params = [p for p in sig.parameters.values() if p.name != "self"]
        if params and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            continue
        if klass is not cls and issubclass(cls, nn.RNNBase):
            params = [p for p in params if p.name != "mode"]  # fixed by LSTM/GRU/RNN themselves
        if cls is nn.RNN:
            params.append(inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY, default="tanh"))
        return sig.replace(parameters=[p for p in sig.parameters.values() if p.name == "self"] + params)
    return inspect.Signature()  # takes no arguments (nn.Identity and friends)


def _activation_name(fn) -> object:
    import torch.nn.functional as F
    return {F.relu: "relu", F.gelu: "gelu"}.get(fn, fn)


def _transformer_layer_args(m) -> dict:
    return {"d_model": m.self_attn.embed_dim, "nhead": m.self_attn.num_heads,
            "dim_feedforward": m.linear1.out_features, "dropout": m.dropout.p,
            "activation": _activation_name(m.activation), "layer_norm_eps": m.norm1.eps,
            "batch_first": m.self_attn.batch_first, "norm_first": m.norm_first,
            "bias": m.linear1.bias is not None}


# Composite torch.nn leaves whose arguments live on their children.
_BY_CLASS = {
    # kdim/vdim are stored as embed_dim when not given: written only where they differ
    nn.MultiheadAttention: lambda m: {d: getattr(m, d) if getattr(m, d) != m.embed_dim else None
                                      for d in ("kdim", "vdim")},
    nn.TransformerEncoderLayer: _transformer_layer_args,
    nn.TransformerDecoderLayer: _transformer_layer_args,
    nn.RNN: lambda m: {"nonlinearity": m.nonlinearity},
}


_SPATIAL_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_padding"}


def _assemble(sig, values, extra, callee, compact) -> Constructor:
    args: list[Arg] = []
    keywords = False
    for p in sig.parameters.values():
        if p.name not in values:
            continue
        value = values[p.name]
        if compact and p.name in _SPATIAL_ARGS and isinstance(value, tuple) and value and len(set(value)) == 1 \
                and isinstance(value[0], int):
            value = value[0]
        if p.default is not p.empty and _equal(value, p.default, loose=compact):
            continue
        positional = p.default is p.empty and p.kind != p.KEYWORD_ONLY and not keywords
        keywords = keywords or not positional
        args.append(Arg(p.name, value, positional))
    for k, v in extra.items():
        args.append(Arg(k, v, False))
    return Constructor(callee=callee, args=args, defaults=_defaults(sig, args), order=_order(sig))


def _equal(a, b, loose: bool = True) -> bool:
    """Whether ``a`` is the default ``b``; ``loose``: a tuple of the default int counts (torch's
    conv layers store padding=0 as (0, 0)), else not (MaxPool3d keeps (0, 0, 0) as given, and
    its repr shows which it was)."""
    if a is b:
        return True
    try:
        if loose and isinstance(a, tuple) and isinstance(b, int) and not isinstance(b, bool):
            return all(x == b for x in a)
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False
