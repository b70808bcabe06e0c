"""Writing a leaf module as an explicit constructor call, checked against the original.

Any ``torch.nn`` leaf module works, not a fixed list: the constructor's arguments are read back
from the module's attributes (PyTorch stores them under the same names), the module is rebuilt
from them, and the rebuilt module must have the same ``repr`` and the same parameter and buffer
names, shapes and dtypes as the original. Otherwise the layer is refused, by name.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import RenderError
from .literals import Unrenderable, _lit
from .sourcecopy import SourceCopier, is_user_object

_SKIP_PARAMS = {"self", "device", "dtype", "_weight", "_freeze"}
# Constructor arguments that are stored as something else than their own name.
_DERIVED = {
    "bias": lambda m: getattr(m, "bias", None) is not None if not isinstance(m, nn.MultiheadAttention)
    else m.in_proj_bias is not None,
    "add_bias_kv": lambda m: m.bias_k is not None,
    "elementwise_affine": lambda m: getattr(m, "elementwise_affine", getattr(m, "weight", None) is not None),
}


@dataclass
class Constructor:
    """``callee(*args, **kwargs)`` as source pieces; ``overrides`` replace arguments by source."""

    callee: str
    args: list[str]
    kwargs: dict[str, str]
    imports: set[str] = field(default_factory=set)

    def source(self) -> str:
        parts = list(self.args) + [f"{k}={v}" for k, v in self.kwargs.items()]
        return f"{self.callee}({', '.join(parts)})"


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
    parts = mod.split(".")
    for i in range(1, len(parts) + 1):
        path = ".".join(parts[:i])
        try:
            module = importlib.import_module(path)
        except Exception:
            continue
        if getattr(module, name, None) is obj:
            return path, f"{path}.{name}"
    return None


def _same(a: nn.Module, b: nn.Module, strict: bool = False) -> str | None:
    """None if ``b`` rebuilds ``a``; else what differs. ``strict`` (classes outside torch, whose
    constructor arguments may be stored under other names): plain attributes must match too."""
    if repr(a) != repr(b):
        return f"repr {repr(b)!r} != {repr(a)!r}"
    if strict:
        for (name, sa), (_, sb) in zip(_plain_attrs(a), _plain_attrs(b)):
            if _plain_attrs_differ(sa, sb):
                return f"attributes of {name or 'the module'}: {sb} != {sa}"
    for kind, get in (("parameter", nn.Module.named_parameters), ("buffer", nn.Module.named_buffers)):
        sa = {k: (tuple(v.shape), v.dtype) for k, v in get(a)}
        sb = {k: (tuple(v.shape), v.dtype) for k, v in get(b)}
        if sa != sb:
            return f"{kind}s {sb} != {sa}"
    return None


def constructor(module: nn.Module, qualname: str, overrides: dict[str, str] | None = None,
                deps_ok: bool = True, copier: SourceCopier | None = None, why: str = "") -> Constructor:
    """The constructor call that rebuilds ``module``; ``overrides`` widen arguments by source.

    A class of the user's own code is copied into the output by ``copier`` (see sourcecopy.py)
    and called by its name; ``why`` says why the module is kept whole, for error messages."""
    cls = type(module)
    where = f"layer {qualname} ({cls.__name__}{', ' + why if why else ''})"
    if copier is not None and is_user_object(cls):
        found = ("", copier.add(cls, f"layer {qualname} is kept whole"))
    else:
        found = public_path(cls)
    if found is None:
        raise RenderError(
            f"{where}: its class is not importable by name, so it cannot be written as a constructor call.",
            hint=f"Define {cls.__name__} at module level, or keep its parent traced (not a leaf).")
    import_mod, callee = found
    sig = _signature(cls)
    values: dict[str, object] = dict(_BY_CLASS[cls](module)) if cls in _BY_CLASS else {}
    if cls is nn.RNN:
        sig = sig.replace(parameters=list(sig.parameters.values()) + [
            inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY, default="tanh")])
    for p in sig.parameters.values():
        if p.name in values:
            continue
        if p.name in _SKIP_PARAMS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
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
                "cannot be read back.", hint="List its parent module with --leaf, or report it.")
    dtypes = {t.dtype for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()}
    extra = {"dtype": dtypes.pop()} if dtypes and dtypes != {torch.float32} and "dtype" in sig.parameters else {}
    imports = {import_mod} if import_mod not in ("torch", "") else set()
    namespace = {"torch": torch, "nn": nn, callee: cls} if not import_mod else {"torch": torch, "nn": nn}
    if import_mod not in ("torch", ""):
        namespace[import_mod.split(".")[0]] = importlib.import_module(import_mod.split(".")[0])
    last = None
    for compact in (True, False):
        try:
            ctor = _assemble(sig, values, extra, callee, compact)
        except Unrenderable as err:
            raise RenderError(f"{where}: an argument ({err}) cannot be written as source.") from None
        ctor.imports = imports
        try:
            rebuilt = eval(ctor.source(), namespace)  # our own literals only: see literals.py
        except Exception as err:
            last = f"rebuilding it failed: {err}"
            continue
        last = _same(module, rebuilt, strict=not cls.__module__.startswith("torch."))
        if last is None:
            if overrides:
                _override(ctor, sig, overrides)
            return ctor
    raise RenderError(
        f"{where}: rebuilding it from its stored attributes does not give the same module ({last[:200]}).",
        hint="List its parent module with --leaf, or report this layer type.")


_PLAIN = (bool, int, float, str, tuple, list, type(None), torch.dtype)


def _plain_attrs(m: nn.Module):
    """(name, {attribute: value}) of plain-valued attributes, for the module and its children."""
    for name, sub in m.named_modules():
        yield name, {k: v for k, v in vars(sub).items() if not k.startswith("_") and k != "training"
                     and isinstance(v, _PLAIN)}


def _plain_attrs_differ(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return True
    return any(not _equal(a[k], b[k]) and not (a[k] != a[k] and b[k] != b[k]) for k in a)


def _signature(cls) -> inspect.Signature | None:
    """The first constructor signature in the MRO that names its arguments (LSTM -> RNNBase)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return None
        params = [p for p in sig.parameters.values() if p.name != "self"]
        if params and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            continue
        if klass is not cls and issubclass(cls, nn.RNNBase):
            params = [p for p in params if p.name != "mode"]  # fixed by LSTM/GRU/RNN themselves
        return sig.replace(parameters=[p for p in sig.parameters.values() if p.name == "self"] + params)
    return inspect.Signature()  # takes no arguments (nn.Identity and friends)


def _activation_name(fn) -> object:
    import torch.nn.functional as F
    return {F.relu: "relu", F.gelu: "gelu"}.get(fn, fn)


# Composite torch.nn leaves whose arguments live on their children.
_BY_CLASS = {
    nn.TransformerEncoderLayer: lambda m: {
        "d_model": m.self_attn.embed_dim, "nhead": m.self_attn.num_heads,
        "dim_feedforward": m.linear1.out_features, "dropout": m.dropout.p,
        "activation": _activation_name(m.activation), "layer_norm_eps": m.norm1.eps,
        "batch_first": m.self_attn.batch_first, "norm_first": m.norm_first,
        "bias": m.linear1.bias is not None},
    nn.TransformerDecoderLayer: lambda m: {
        "d_model": m.self_attn.embed_dim, "nhead": m.self_attn.num_heads,
        "dim_feedforward": m.linear1.out_features, "dropout": m.dropout.p,
        "activation": _activation_name(m.activation), "layer_norm_eps": m.norm1.eps,
        "batch_first": m.self_attn.batch_first, "norm_first": m.norm_first,
        "bias": m.linear1.bias is not None},
    nn.RNN: lambda m: {"nonlinearity": m.nonlinearity},
}


_SPATIAL_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_padding"}


def _assemble(sig, values, extra, callee, compact) -> Constructor:
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.name not in values:
            continue
        value = values[p.name]
        if compact and p.name in _SPATIAL_ARGS and isinstance(value, tuple) and value and len(set(value)) == 1 \
                and isinstance(value[0], int):
            value = value[0]
        if p.default is not p.empty and _equal(value, p.default):
            continue
        src = _lit(value)
        if p.default is p.empty and p.kind != p.KEYWORD_ONLY and not kwargs:
            args.append(src)
        else:
            kwargs[p.name] = src
    for k, v in extra.items():
        kwargs[k] = _lit(v)
    return Constructor(callee=callee, args=args, kwargs=kwargs)


def _override(ctor: Constructor, sig, overrides: dict[str, str]) -> None:
    names = [p.name for p in sig.parameters.values() if p.name not in _SKIP_PARAMS]
    for name, src in overrides.items():
        if name in ctor.kwargs:
            ctor.kwargs[name] = src
        else:
            positional = [n for n in names][: len(ctor.args)]
            ctor.args[positional.index(name)] = src


def _equal(a, b) -> bool:
    if a is b:
        return True
    try:
        if isinstance(a, tuple) and isinstance(b, int) and not isinstance(b, bool):
            return all(x == b for x in a)
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False
