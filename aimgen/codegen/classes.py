"""One class per distinct block: instances with the same forward and the same members share a
class, and what differs between them becomes ``__init__`` parameters.

Instances are compared member by member, argument by argument (``Constructor`` values, with
left-out arguments at their signature defaults). An argument equal in every instance stays a
literal; one that differs becomes a parameter, named after the user's own constructor argument
when its values are exactly that argument's (``planes``), written as a multiple of one when they
are (``planes * 4``), and otherwise after the argument it fills (``stride``). Tuples that differ
are compared element by element (``(dim, 1, 1)``).
"""
from __future__ import annotations

import ast
import functools
import io
import tokenize
from dataclasses import dataclass, field

from ..literals import Unrenderable, python_literal
from ..modules import ValueWriter
from ..naming import Namespace, comment as comment_text, sanitize
from ..taps import Arg, Constructor
from .members import Member, Raw, has_constructor, lines

_PLAIN = (int, float, bool, str, type(None))


@dataclass
class BlockRef:
    """An instance of an outlined block, inside its parent's members: resolved to a
    constructor call of its class once that class's parameters are known."""

    scope: object
    key: object = None


@dataclass
class Instance:
    scope: object
    members: list[Member]
    records: dict | None            # the user's recorded constructor arguments of this module


@dataclass
class BlockClass:
    name: str
    base: str
    instances: list[Instance]
    text: str = ""                 # the forward's body, as written
    signature: str = ""            # the forward's parameter list
    key: tuple = ()
    params: list[str] = field(default_factory=list)
    slots: dict = field(default_factory=dict)   # slot path -> source (parameter expression)
    args: list[list] = field(default_factory=list)  # per instance, the parameter values in order
    optional: str = ""             # a member some instances have and others leave None
    optional_index: int = 0
    optional_values: dict = field(default_factory=dict)
    variant_of: str = ""
    variant_base: "BlockClass | None" = None   # the earlier variant its docstring compares it with
    flag: str = ""                 # a bool attribute of the user's modules the forward branches on
    flag_on: bool = True           # the flag's value where the forward runs its lines
    core: str = ""                 # the forward's text without its optional or flagged lines
    extra_statements: int = 0      # how many statements of the first instance's forward the optional part is
    constant_skip: list[bool] | None = None   # per constant of the text: in the optional or flagged part
    vectors: list[tuple] | None = None   # per constant, its value per instance, where merging computed them
    labels: list[str] | None = None      # per constant, the argument it fills, likewise
    constants: list[str] = field(default_factory=list)    # each constant of the forward, as written
    attributes: list[str] = field(default_factory=list)   # parameters the forward reads as self.<name>

    @property
    def text_signature(self) -> str:
        return self.signature


def structure(value, key_of) -> object:
    """What two instances must share to share a class: everything but plain argument values."""
    if isinstance(value, Raw):   # (its numbers are values: see raw_numbers)
        return ("raw", _masked(value.code))
    if isinstance(value, BlockRef):
        return ("block", key_of(value.scope))
    if isinstance(value, Constructor):
        return (value.callee, tuple((a.name, a.positional, a.widen, structure(a.value, key_of))
                                    for a, _ in value.full_args()))
    if isinstance(value, list):
        return ("list", tuple(structure(v, key_of) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, structure(v, key_of)) for k, v in value.items()))
    if isinstance(value, tuple):
        return ("tuple", len(value))
    return "value"


def _slots(value, path: tuple, out: dict) -> None:
    """Every plain value position in a member tree (tuples element by element), with a
    label for naming: {path: (arg name, value, given explicitly)}."""
    if isinstance(value, Constructor):
        for a, given in value.full_args():
            _slot_value(a.value, path + (a.name,), a.name, given, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _slot_value(v, path + (i,), "", True, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            _slot_value(v, path + (k,), "", True, out)


@functools.lru_cache(maxsize=4096)
def raw_numbers(code: str) -> tuple[tuple[int, int, int | float], ...]:
    """(start, end, value) of each number written in a member's source (``torch.empty(169,
    6)``): values like an argument's, that instances of one class may differ by (the 6 is
    Swin's num_heads). Empty where the code does not tokenize."""
    offsets = [0]
    for line in code.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.NUMBER and not tok.string.lower().endswith("j"):
                start = offsets[tok.start[0] - 1] + tok.start[1]
                out.append((start, offsets[tok.end[0] - 1] + tok.end[1], ast.literal_eval(tok.string)))
    except (tokenize.TokenError, SyntaxError, ValueError, IndentationError):
        return ()
    return tuple(out)   # (cached: every class key and member line asks again)


def _masked(code: str) -> str:
    for start, end, _ in reversed(raw_numbers(code)):
        code = code[:start] + "#" + code[end:]
    return code


def _filled(code: str, path: tuple, slots: dict) -> str:
    """A member's source with the numbers that became parameters written as them."""
    for i, (start, end, _) in reversed(list(enumerate(raw_numbers(code)))):
        expr = slots.get(path + ("#", i))
        if expr is not None:
            code = code[:start] + (expr if expr.isidentifier() else f"({expr})") + code[end:]
    return code


def _slot_value(v, path, label, given, out):
    if isinstance(v, Constructor) or (isinstance(v, (list, dict)) and has_constructor(v)):
        _slots(v, path, out)
    elif isinstance(v, Raw):
        for i, (_, _, number) in enumerate(raw_numbers(v.code)):
            out[path + ("#", i)] = (label, number, True)
    elif isinstance(v, BlockRef):
        pass
    else:
        out[path] = (label, v, given)


def parameterise(cls: BlockClass, ns_reserved: set[str], constants: list[tuple] = (),
                 labels: list[str] = ()) -> None:
    """Find the slots that differ between the instances and make them parameters. ``constants``:
    per position of a constant in the forward, its value in each instance; one that differs
    becomes a parameter kept as an attribute (``self.stochastic_depth_prob``), named after the
    argument it fills where ``labels`` knows it (``self.stride``)."""
    per_instance = []
    for inst in cls.instances:
        slots: dict = {}
        for m in inst.members:
            _slot_value(m.value, (m.name,), m.name, True, slots)
        per_instance.append(slots)
    paths = list(per_instance[0])
    records = [inst.records or {} for inst in cls.instances]
    named: dict[str, tuple] = {}   # recorded argument -> its values across instances
    if all(records):
        for name in records[0]:
            if name.startswith("*"):
                continue
            vec = tuple(r.get(name) for r in records)
            if all(isinstance(v, _PLAIN) and not isinstance(v, bool) for v in vec) and len(set(vec)) > 1:
                named[name] = vec
    ns = Namespace(set(ns_reserved) | {"self"})
    params: dict[tuple, str] = {}   # value vector -> parameter name
    order: list[str] = []
    exprs: dict[tuple, str] = {}

    members = {m.name for inst in cls.instances for m in inst.members}

    def fresh(label: str, avoid: set[str]) -> str:
        name = ns.create(sanitize(label, "value"))
        while name in avoid:
            name = ns.create(sanitize(label, "value"))
        return name

    def param_for(vec: tuple, label: str, avoid: set[str] = frozenset(), multiples: bool = True) -> str:
        vec = _freeze(vec)
        if vec in params:
            return params[vec]
        for name, rec in named.items():
            if _freeze(rec) == vec:
                params[vec] = ns.create(name)
                order.append(params[vec])
                return params[vec]
        for known, name in list(params.items()) if multiples else []:  # a multiple of a known parameter
            if all(isinstance(v, int) and not isinstance(v, bool) for v in vec + known) and all(known):
                for op, f in (("*", lambda a, b: a * b), ("//", lambda a, b: a // b)):
                    for c in (2, 3, 4, 6, 8):
                        if tuple(f(k, c) for k in known) == vec and (op == "*" or all(k % c == 0 for k in known)):
                            return f"{name} {op} {c}"
        params[vec] = fresh(label or "value", avoid)
        order.append(params[vec])
        return params[vec]

    # recorded names first, in the user's signature order, so the class reads like theirs
    # a constant an instance's forward never reads (a line of another instance: ANY) takes the
    # value of the user's argument it matches, or of the other instances
    named_values = list(named.values())
    constants = [_settled(vec, named_values) for vec in constants]
    found = list(constants)
    for p in paths:
        vec = tuple(inst[p][1] for inst in per_instance)
        found.append(vec)
        if all(isinstance(v, tuple) for v in vec) and len({len(v) for v in vec}) == 1:
            found += [tuple(v[i] for v in vec) for i in range(len(vec[0]))]   # (planes, in_channels, 3, 3)
    for name, vec in named.items():
        if vec in found:
            param_for(vec, name)
    for p in paths:
        vec = tuple(inst[p][1] for inst in per_instance)
        if len(set(map(_key, vec))) == 1:
            continue
        if all(isinstance(v, tuple) for v in vec) and len({len(v) for v in vec}) == 1:
            parts = []
            for i in range(len(vec[0])):
                sub = tuple(v[i] for v in vec)
                parts.append(python_literal(sub[0]) if len(set(map(_key, sub))) == 1 else param_for(sub, per_instance[0][p][0]))
            exprs[p] = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        else:
            exprs[p] = param_for(vec, per_instance[0][p][0])
    cls.constants = []
    for i, vec in enumerate(constants):
        if len(set(map(_key, vec))) == 1:
            cls.constants.append(python_literal(vec[0]))
        else:
            label = labels[i] if i < len(labels) and labels[i] else "value"
            # an argument of its own (stride) is not a multiple of another one by coincidence
            name = param_for(vec, label, avoid=members, multiples=label == "value")
            base = name.split()[0]   # "planes * 4" reads self.planes
            if base in members:      # a parameter named like a layer of the block (MobileViT's
                key = (_ATTRIBUTE, _freeze(vec))   # `value`): self.value stays the layer
                if key not in params:
                    params[key] = fresh("value", members)
                    order.append(params[key])
                name = base = params[key]
            if base not in cls.attributes:
                cls.attributes.append(base)
            cls.constants.append(f"self.{name}")
    cls.params = order
    cls.slots = exprs
    by_name = {name: vec[1] if vec[:1] == (_ATTRIBUTE,) else vec for vec, name in params.items()}
    cls.args = [[_thaw(by_name[n][i], per_instance, i) for n in order] for i in range(len(cls.instances))]


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: in a constant's values across instances: an instance whose forward does not have the line
ANY = _Any()


def _settled(vec: tuple, named: list[tuple]) -> tuple:
    if not any(v is ANY for v in vec):
        return vec
    for rec in named:
        if len(rec) == len(vec) and all(v is ANY or _key(v) == _key(r) for v, r in zip(vec, rec)):
            return tuple(rec)
    known = next(v for v in vec if v is not ANY)
    return tuple(known if v is ANY else v for v in vec)


def _thaw(value, per_instance, i):
    """The instance's own value for a frozen one (a list stays a list in the call)."""
    for path, (_, v, _) in per_instance[i].items():
        if _freeze(v) == value:
            return v
    return _unfreeze(value)


_ATTRIBUTE = object()   # keys a constant's own parameter when its shared name is a member's


@dataclass(frozen=True)
class _Exact:
    """A frozen bool or float with its type: ``False == 0 == 0.0`` and their hashes agree in
    Python, so a value kept as itself would stand for the equal value of another slot
    (Inception's ``padding=(0, 3)`` written as ``(False, 3)``, a conv's ``padding=0`` as the
    ``0.0`` of a dropout)."""

    kind: type
    value: object


def _freeze(v):
    """A value as a hashable key (lists and dicts inside become tuples, bools and floats keep
    their type)."""
    if isinstance(v, (bool, float)):
        return _Exact(type(v), v)
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple((k, _freeze(x)) for k, x in v.items())
    return v


def _unfreeze(v):
    if isinstance(v, _Exact):
        return v.value
    if isinstance(v, tuple):
        return tuple(_unfreeze(x) for x in v)
    return v


def _key(v):
    try:
        hash(v)
        return (type(v), v)
    except TypeError:
        return repr(v)


def member_lines(members: list[Member], writer: ValueWriter, slots: dict | None = None) -> list[str]:
    """``self.name = ...`` lines of a class's __init__; ``slots`` replace values by parameter
    expressions (a class shared by several instances)."""
    slots = slots or {}
    out = []
    for m in members:
        def render(path, arg, value, _m=m):
            full = (_m.name,) + path
            if full in slots:
                return slots[full]
            return writer(value)

        body = lines(_as_written(m.value, (m.name,), slots), render)
        target = f"self.{m.name}" if _safe(m.name) else None
        comment = f"  # {comment_text(m.comment)}" if m.comment else ""
        if target:
            out.append(f"{target} = {body[0]}" + (comment if len(body) == 1 else ""))
            out += body[1:]
            if len(body) > 1 and comment:
                out[-1] += comment
        else:
            out.append(f"setattr(self, {m.name!r}, {body[0]}" + ("" if len(body) > 1 else ")") + comment)
            if len(body) > 1:
                out += body[1:]
                out[-1] += ")"
    return out


def _as_written(value, path: tuple, slots: dict):
    """The constructor with its arguments as written: the ones given, and any that became a
    parameter; arguments at their default are left out (later positional ones then become
    keywords)."""
    if isinstance(value, Constructor):
        args = []
        positional = True
        for a, given in value.full_args():
            p = path + (a.name,)
            if not given and not any(s[:len(p)] == p for s in slots):
                positional = False
                continue
            positional = positional and a.positional
            args.append(Arg(a.name, _as_written(a.value, p, slots), positional, a.widen))
        return Constructor(value.callee, args)
    if isinstance(value, list):
        return [_as_written(v, path + (i,), slots) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _as_written(v, path + (k,), slots) for k, v in value.items()}
    if isinstance(value, Raw) and any(s[:len(path) + 1] == path + ("#",) for s in slots):
        return Raw(_filled(value.code, path, slots))
    return value


def _safe(name: str) -> bool:
    from ..naming import is_safe_identifier
    return is_safe_identifier(name)


def literal_or_none(value) -> str | None:
    try:
        return python_literal(value)
    except Unrenderable:
        return None
