"""A function of the generated source (a forward), as statements; and naming its locals.

Statements refer to graph values by markers (expressions.ref). Once all statements of a
function are known, each value gets a local name: the name the user's own forward gave it
where the node's source line assigns one (``out = self.bn1(out)``), else the graph's name, and
a name is reused as soon as the value it held is dead, so a chain reads
``out = self.conv1(x); out = self.bn1(out)`` and nothing dead is kept alive.
"""
from __future__ import annotations

import ast
import functools
import operator
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.fx as fx

from ..errors import InternalError
from ..naming import WIDTH, Namespace, comment, sanitize
from .expressions import CONST, MARK

_MARKER = re.compile(f"{MARK}([^{MARK}]+){MARK}")
_TORCH_DIR = str(Path(torch.__file__).resolve().parent) + "/"
_AIMGEN_DIR = str(Path(__file__).resolve().parent.parent) + "/"
#: aimgen's files of forwards it traces in place of a library's (their lines name values as a
#: model's own lines do)
_FORWARD_FILES = tuple(_AIMGEN_DIR + f for f in ("nn_forwards.py", "library_forwards.py"))


@dataclass
class Stmt:
    targets: list[fx.Node]            # the values it defines
    code: str                         # the right-hand side (or the whole line when ``targets`` is empty)
    comment: str = ""
    memory_out: bool = False          # it also rebinds ``memory`` (``y, memory = block(x, memory)``)
    indent: int = 0                   # levels inside an ``if``
    origin: object = None             # the item of the class's own forward that wrote it
    #: (left operand, operator, right operand as code): written ``out += identity`` where the
    #: left operand's local is the one the value takes (see Generator._in_place)
    augmented: tuple[fx.Node, str, str] | None = None
    #: the value whose local its target takes: a loop's ``x, memory = block(x, memory)``
    carries: fx.Node | None = None
    #: its targets as the items of the value it unpacks, None for an item nothing reads
    #: (``_, h, w, _ = x.shape``; see unpack)
    slots: list[fx.Node | None] | None = None

    def uses(self) -> list[str]:
        return refs_in(self.code)


def refs_in(code: str) -> list[str]:
    """The names of the graph values a statement's code (with markers) refers to, in order."""
    return _MARKER.findall(code)


@dataclass
class Function:
    name: str
    params: list[fx.Node]             # value parameters, in order
    memory: bool                      # takes (and returns) ``memory`` after them
    body: list[Stmt] = field(default_factory=list)
    returns: str = ""                 # return expression (markers allowed), without the memory
    doc: str = ""
    prologue: list[str] = field(default_factory=list)   # plain lines before the body
    return_memory: str = "memory"     # how the memory is returned ("memory", "memory.final()")
    names_taken: set[str] = field(default_factory=set)   # names its code uses besides its values'
    packed: bool = False              # takes its value parameters as one list (Generator._packed)


def unpack(fn: Function) -> None:
    """Write a value that is only ever taken apart item by item as one unpacking, as a person
    does: ``shape = x.shape; b = shape[0]; n = shape[1]`` -> ``b, n, _ = x.shape``, and
    ``unbind = qkv.unbind(0); q = unbind[0]; ...`` -> ``q, k, v = qkv.unbind(0)``. Only where
    the number of items is sure at every input size (see _length), the items are taken right
    after the value, each once, and nothing else reads it."""
    read = _reads(fn)
    body, i = [], 0
    while i < len(fn.body):
        st = fn.body[i]
        items = _items_after(fn.body, i)
        value = st.targets[0] if items else None
        length = _length(value, items) if items and read.get(value.name) == len(items) else None
        if length is None:
            body.append(st)
            i += 1
            continue
        slots: list[fx.Node | None] = [None] * length
        for item in items:
            slots[item.targets[0].args[1] % length] = item.targets[0]
        body.append(Stmt([n for n in slots if n is not None], st.code, st.comment, indent=st.indent,
                         origin=st.origin, slots=slots))
        i += 1 + len(items)
    fn.body = body


def _reads(fn: Function) -> Counter:
    """How often each value is read in the function: statements (code, comment, an in-place
    sum's operand) and the return."""
    read: Counter = Counter(refs_in(fn.returns))
    for st in fn.body:
        read.update(refs_in(st.code) + refs_in(st.comment) + (refs_in(st.augmented[2]) if st.augmented else []))
    return read


def _items_after(body: list[Stmt], i: int) -> list[Stmt]:
    """The statements right after ``body[i]`` that each take one item of its one value
    (``b = shape[0]``), at the same depth and from the same part of the forward; [] for fewer
    than two (``c = x.shape[-1]`` reads better as it is), unless the user's own line unpacks
    it (``x, _ = self.attn(x, x, x)``)."""
    st = body[i]
    if len(st.targets) != 1 or st.memory_out or st.augmented or st.carries is not None or st.slots:
        return []
    value, items = st.targets[0], []
    for later in body[i + 1:]:
        node = later.targets[0] if len(later.targets) == 1 else None
        if node is None or later.memory_out or later.indent != st.indent or not _same_part(later, st) \
                or node.op != "call_function" or node.target is not operator.getitem \
                or node.args[0] is not value or not isinstance(node.args[1], int):
            break
        items.append(later)
    return items if len(items) >= 2 or items and isinstance(_target_of(value), ast.Tuple) else []


def _same_part(a: Stmt, b: Stmt) -> bool:
    """Whether two statements came from one part of the class's forward (the class merges take
    a child block's or an update's statements out by their origin), or from two of its own
    operations."""
    return a.origin is b.origin or isinstance(a.origin, fx.Node) and isinstance(b.origin, fx.Node)


def _length(value: fx.Node, items: list[Stmt]) -> int | None:
    """How many items ``value`` has at every input size, where its items can be unpacked: a
    tensor's shape has its rank; anything else as many as the line of the user's code that
    made it unpacks it into (``q, k, v = qkv.unbind(0)``). None where that is not known, an
    item is out of range or taken twice."""
    length = None
    if value.op == "call_function" and value.target is getattr and value.args[1] == "shape" or \
            value.op == "call_method" and value.target == "size" and len(value.args) == 1 and not value.kwargs:
        meta = value.args[0].meta.get("tensor_meta") if isinstance(value.args[0], fx.Node) else None
        length = len(meta.shape) if meta is not None and hasattr(meta, "shape") else None
    elif all(source_frame(it.targets[0]) == source_frame(value) for it in items):
        target = _target_of(value)   # as many as the user's line unpacks it into
        if isinstance(target, ast.Tuple) and not any(isinstance(e, ast.Starred) for e in target.elts):
            length = len(target.elts)
    if length is None:
        return None
    at = [it.targets[0].args[1] for it in items]
    if any(not -length <= k < length for k in at) or len({k % length for k in at}) != len(at):
        return None
    return length


def source_frame(node: fx.Node, within: tuple[str, int, int] | None = None,
                 strict: bool = False) -> tuple[str, int, str] | None:
    """(file, line, code) of the line of model code that made this node's value: the innermost
    frame of model code in its recorded stack trace (torch's own frames, e.g. nn.Sequential's
    loop, name nothing). ``within`` (file, first line, last line) of a class: the innermost
    frame inside that class, i.e. the line of the forward being written that made the value
    (``x = self.layer1(x)`` for everything ``layer1`` computes); ``strict``: None where no frame
    is inside it (else the innermost of all)."""
    frames = _model_frames(node.meta.get("stack_trace") or "")
    if within is not None:
        inside = [f for f in frames if _resolved(f[0]) == within[0] and within[1] <= f[1] <= within[2]]
        frames = inside if inside or strict else frames
    return frames[-1] if frames and frames[-1][2] else None


@functools.lru_cache(maxsize=4096)
def _model_frames(stack_trace: str) -> list[tuple[str, int, str]]:
    """(file, line, code) of each frame of model code in a recorded stack trace, outermost
    first. Cached: every value of a line shares its trace, and naming asks for it many times."""
    lines = stack_trace.splitlines()
    frames = []
    for i, line in enumerate(lines):
        m = re.match(r'\s*File "(.+)", line (\d+), in ', line)
        if m:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            frames.append((m.group(1), int(m.group(2)), "" if re.match(r'\s*File "', nxt) else nxt.strip()))
    return [f for f in frames if not _resolved(f[0]).startswith((_TORCH_DIR, _AIMGEN_DIR))
            or _resolved(f[0]) in _FORWARD_FILES]


def source_statement(node: fx.Node, within: tuple[str, int, int] | None = None) -> ast.stmt | None:
    """The one statement on the line that made this node's value (see source_frame), parsed;
    one that goes on over more lines (``out = self.encoder(\\n x, ...)``) read whole from its file."""
    frame = source_frame(node, within)
    try:
        body = ast.parse(frame[2]).body if frame else []
    except SyntaxError:   # a line of a longer statement (its first, or one inside it)
        path = _resolved(frame[0])
        span = _spans(path).get(frame[1]) if not path.startswith("<") else None
        return _statement_at(path, span[0] if span else frame[1])
    return body[0] if len(body) == 1 else None


@functools.lru_cache(maxsize=64)
def _statements(path: str) -> dict[int, ast.stmt]:
    """First line -> the innermost simple statement that starts there, for a source file."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    out = {}
    for n in ast.walk(tree):
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Expr)):
            out[n.lineno] = n
    return out


def _statement_at(path: str, line: int) -> ast.stmt | None:
    return _statements(path).get(line) if not path.startswith("<") else None


@functools.lru_cache(maxsize=64)
def _spans(path: str) -> dict[int, tuple[int, str]]:
    """Each line of a source file -> (first line, text) of the innermost simple statement it is
    part of: a statement over several lines (``bias = self.table[\n self.index.view(-1)]``) is
    one, whichever of its lines a value's stack trace names."""
    statements = sorted(_statements(path).values(), key=lambda n: (n.end_lineno or n.lineno) - n.lineno,
                        reverse=True)
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    out = {}
    for n in statements:   # the largest first, so an inner statement's lines end up its own
        text = " ".join(line.strip() for line in lines[n.lineno - 1:n.end_lineno or n.lineno])
        for line in range(n.lineno, (n.end_lineno or n.lineno) + 1):
            out[line] = (n.lineno, text)
    return out


def _line_of(node: fx.Node) -> tuple[str, int, str] | None:
    """(file, first line, text) of the statement of the user's code that made this value (see
    source_frame), over all its lines."""
    frame = source_frame(node)
    if frame is None:
        return None
    span = _spans(_resolved(frame[0])).get(frame[1]) if not frame[0].startswith("<") else None
    return (frame[0], *span) if span else frame


def source_name(node: fx.Node, within: tuple[str, int, int] | None = None) -> str | None:
    """The variable the user's forward assigned this node's value to, read from its source line
    (see source_frame): ``x = ...``, ``x += ...``, ``self.anchors = ...`` (``anchors``), and
    ``h, w = ...`` for the items of the value that line unpacks."""
    target = _target_of(node, within)
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return target.attr
    return target.id if isinstance(target, ast.Name) and target.id != "_" else None


def _target_of(node: fx.Node, within: tuple[str, int, int] | None = None) -> ast.expr | None:
    """The part of the assignment target of the line that made this value that receives it: the
    whole target, or where the value is an item of a value the same line made, the element for
    it (``q`` of ``q, k, v = ...``, ``b`` of ``(a, b), c = ...``); None where there is none."""
    stmt = source_statement(node, within)
    target = None
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
    elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
        target = stmt.target
    path, value = [], node
    while value.op == "call_function" and value.target is operator.getitem and isinstance(value.args[1], int) \
            and isinstance(value.args[0], fx.Node) and source_frame(value.args[0], within) == source_frame(value, within):
        path.insert(0, value.args[1])   # an item of a value this line made, unpacked
        value = value.args[0]
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(getattr(stmt, "value", None), (ast.Tuple, ast.List)):
        return None   # q, k, v = (self.to_q(x), *kv.chunk(2)): a value's items are not the target's
    for index in path:
        if not isinstance(target, ast.Tuple):
            break   # the rest taken by the line's own indexing (``c = x.shape[-1]``)
        if any(isinstance(e, ast.Starred) for e in target.elts) or not -len(target.elts) <= index < len(target.elts):
            return None
        target = target.elts[index]
    return target


def _resolved(path: str) -> str:
    return path if path.startswith("<") else str(Path(path).resolve())


def on_return_line(node: fx.Node, within: tuple[str, int, int] | None = None) -> bool:
    """Whether the line of model code that made this value is a ``return`` statement."""
    return isinstance(source_statement(node, within), ast.Return)


class Naming:
    """Assigns local names to the values of one function, reusing names of dead values."""

    def __init__(self, reserved: set[str], wanted, inherits=None, returned=None):
        self.reserved = set(reserved) | {"self", "memory"}
        self.wanted = wanted                  # node -> preferred name, or None
        #: node -> the attribute of the block called from this function that returns it, or None
        #: (the layer inside the block that made it names nothing here: ``attn``, not ``proj_drop``)
        self.returned = returned or (lambda node: None)
        #: node -> whether a value without a wanted name takes the name of its first input where
        #: that input dies with it (``return F.relu(out)`` is written ``out = F.relu(out)``)
        self.inherits = inherits or (lambda node: False)

    def assign(self, fn: Function, param_names: dict[str, str]) -> dict[str, str]:
        uses: dict[str, int] = {}
        for i, stmt in enumerate(fn.body):
            for name in stmt.uses():
                uses[name] = i
        for name in _MARKER.findall(fn.returns):
            uses[name] = len(fn.body)
        names: dict[str, str] = dict(param_names)
        sourced = set(param_names)            # values named by the user's code
        holder: dict[str, str] = {v: k for k, v in param_names.items()}   # local name -> value
        reserved = self.reserved | fn.names_taken
        spare = Namespace(reserved | set(param_names.values()))
        for i, stmt in enumerate(fn.body):
            for node in stmt.targets:
                if node.name in names:  # defined again (an optional block's output): same name
                    continue
                if stmt.carries is not None:   # a loop's value: one local through the loop
                    names[node.name] = holder_name = names[stmt.carries.name]
                    holder[holder_name] = node.name
                    if stmt.carries.name in sourced:
                        sourced.add(node.name)
                    continue
                chosen = None
                wanted = self.wanted(node)
                returned = self.returned(node)
                cands = own = self._candidates(node, wanted, returned)
                first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
                if first is not None and first.name in sourced and not wanted and self.inherits(node):
                    cands = [names[first.name]] + cands   # a name from the user's code, not torch.fx's
                    wanted = cands[0]
                # a name the user's code gives an item it unpacks, or a block's result (or the
                # block's name), is kept with a suffix (``h_1``) where a live value holds it, not
                # given up for torch.fx's
                suffixed = returned or wanted and node.op == "call_function" and node.target is operator.getitem
                for cand in cands[:-1] if suffixed and len(cands) > 1 else cands:
                    if cand in reserved:
                        continue
                    current = holder.get(cand)
                    if current is None or (uses.get(current, -1) <= i and current not in
                                           {t.name for t in stmt.targets}):
                        chosen = cand
                        break
                if chosen is None:
                    chosen = spare.create(own[0])
                spare.reserve(chosen)
                holder[chosen] = node.name
                names[node.name] = chosen
                if wanted and chosen == cands[0]:
                    sourced.add(node.name)
        return names

    def _candidates(self, node: fx.Node, wanted: str | None, returned: str | None = None) -> list[str]:
        out = []
        if wanted:
            out.append(sanitize(wanted, "x"))
        if returned:   # what a block returns: after the block (attn, mlp)
            out.append(sanitize(returned, "x"))
        elif node.op == "call_module":  # layer1.0.downsample.0 -> downsample
            parts = [p for p in str(node.target).split(".") if not p.isdigit()]
            if parts:
                out.append(sanitize(parts[-1], "x"))
        if node.op == "call_function" and node.target is getattr and isinstance(node.args[1], str):
            out.append(sanitize(node.args[1], "x"))   # x.shape -> shape
        out.append(sanitize(re.sub(r"_\d+$", "", node.name), "x"))  # relu_2 -> relu
        return out


def render(fn: Function, names: dict[str, str], resolve, indent: str = "        ",
           constants: dict[str, object] | None = None) -> list[str]:
    """Source lines of the function's body (statements and return), markers resolved by
    ``names`` (locals and parameters) or ``resolve`` (e.g. ``self.weight`` for attributes).
    ``constants`` (Expressions.constants) give the width of the numbers a line will hold."""
    constants = constants or {}

    def width(line: str) -> int:
        return len(re.sub(f"{CONST}([^{CONST}]*){CONST}", lambda m: repr(constants.get(m.group(1), 0)), line))

    def sub(code: str) -> str:
        def one(m):
            key = m.group(1)
            if key in names:
                return names[key]
            found = resolve(key)
            if found is None:
                raise InternalError(f"the value {key} is used in {fn.name} but is not defined there.")
            return found
        return _MARKER.sub(one, code)

    def line_of(stmt: Stmt, code: str) -> str:
        if stmt.augmented and len(stmt.targets) == 1 and names[stmt.targets[0].name] == names.get(stmt.augmented[0].name):
            line = f"{names[stmt.targets[0].name]} {stmt.augmented[1]}= {sub(stmt.augmented[2])}"
        elif stmt.targets:
            targets = [names[t.name] if t is not None else "_" for t in stmt.slots or stmt.targets] + \
                (["memory"] if stmt.memory_out else [])
            line = f"{', '.join(targets)} = {code}"
        elif stmt.memory_out:
            line = f"memory = {code}"
        else:
            line = code
        note = f"  # {comment(sub(stmt.comment))}" if stmt.comment else ""
        return indent + "    " * stmt.indent + line + note

    lines = [indent + p for p in fn.prologue]
    into = _inlined(fn)
    pending: list[tuple[int, str, str, str]] = []   # (reader's index, value, its code, its line), in order
    for j, stmt in enumerate(fn.body):
        code = sub(stmt.code)
        text = line_of(stmt, code)
        used = {key: value_code for at, key, value_code, _ in pending if at == j}
        if used:
            joined = sub(_MARKER.sub(lambda m: _operand(used[m.group(1)], stmt.code, m.group(1))
                                     if m.group(1) in used else m.group(0), stmt.code))
            if width(line_of(stmt, joined)) <= WIDTH:
                code, text = joined, line_of(stmt, joined)
                pending = [p for p in pending if p[0] != j]
        if id(stmt) not in into or any(p[0] == j for p in pending):
            lines.extend(p[3] for p in pending)   # (too long as one line: each keeps its own)
            pending = []
        if id(stmt) in into:
            pending.append((into[id(stmt)], stmt.targets[0].name, code, text))
            continue
        lines.append(text)
    returned = sub(fn.returns) if fn.returns else ""
    used = {key: value_code for at, key, value_code, _ in pending if at == len(fn.body)}
    if used:
        joined = sub(_MARKER.sub(lambda m: _operand(used[m.group(1)], fn.returns, m.group(1))
                                 if m.group(1) in used else m.group(0), fn.returns))
        if width(indent + return_line(fn, joined)) <= WIDTH:
            returned = joined
            pending = [p for p in pending if p[0] != len(fn.body)]
    lines.extend(p[3] for p in pending)
    ret = return_line(fn, returned)
    if ret:
        lines.append(indent + ret)
    return lines


def _inlined(fn: Function) -> dict[int, int]:
    """The statements (by id) whose value is written into a later statement (by index), as the
    user's own line wrote it: ``attn = (q @ k.transpose(-2, -1)) * scale``, not a local per
    operation. Where the value is read once, by that statement, both made by one line of the
    user's code, at one depth (render time: the class merges have cut their parts); neither a memory read or update
    (their comment and memory stay on their own line), an in-place sum, a loop's value nor an
    unpacking. Into the next statement, that reads values and constants only, nothing is
    reordered; into a later one, only where every statement between goes into it too and all
    of them are free of side effects (no layer call, in-place or random operation), so their
    order does not matter and no local is rebound meanwhile."""
    read = _reads(fn)
    made = Counter(t.name for st in fn.body for t in st.targets)
    reader = {name: j for j, st in enumerate(fn.body) for name in refs_in(st.code)}
    reader.update({name: len(fn.body) for name in refs_in(fn.returns)})   # the return line
    into: dict[int, int] = {}
    for i in reversed(range(len(fn.body))):
        st = fn.body[i]
        if len(st.targets) != 1 or st.slots or st.comment or st.memory_out or st.augmented or st.carries:
            continue
        value = st.targets[0]
        j = reader.get(value.name)
        if j is None or j <= i or read.get(value.name) != 1 or made[value.name] != 1:
            continue
        frame = _line_of(value)
        if frame is None or not _visible(st, frame[2]):
            continue
        if j == len(fn.body):   # what the user's return line computes, returned as it is written
            if st.indent or not isinstance(source_statement(value), ast.Return):
                continue
        else:
            nxt = fn.body[j]
            if nxt.memory_out or nxt.augmented or nxt.carries or not nxt.targets or nxt.comment \
                    or st.indent != nxt.indent:
                continue
            made_by = nxt.slots[next(k for k, n in enumerate(nxt.slots) if n is not None)].args[0] \
                if nxt.slots else nxt.targets[0]
            if frame != _line_of(made_by) or not _visible(nxt, frame[2]):
                continue
        between = range(i + 1, j)
        if all(id(fn.body[k]) in into and into[id(fn.body[k])] <= j and _pure(fn.body[k].targets[0])
               for k in between) and (not between or _pure(value)):
            into[id(st)] = j
    return into


_RANDOM = ("dropout", "rand", "bernoulli", "multinomial", "normal", "poisson", "rrelu", "gumbel")


def _pure(node: fx.Node) -> bool:
    """Whether an operation has no effect but its value (no layer's state, no in-place change,
    no random draw), so it may be computed later than the graph computes it."""
    if node.op == "call_method":
        return not node.target.endswith("_") and not node.target.startswith(_RANDOM)
    if node.op != "call_function" or node.kwargs.get("inplace"):
        return False
    if isinstance(node.target, torch._ops.OpOverload):   # (a graph torch.export captured)
        return not node.target._schema.is_mutable and torch.Tag.nondeterministic_seeded not in node.target.tags
    name = getattr(node.target, "__name__", "")
    return not (name.startswith(("i", "set")) and node.target.__module__ in ("_operator", "operator")) \
        and not name.startswith(_RANDOM) and not name.endswith("_")


_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Pow: "**",
            ast.MatMult: "@", ast.Mod: "%", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
            ast.RShift: ">>", ast.USub: "-", ast.UAdd: "+", ast.Invert: "~", ast.Not: "not", ast.Eq: "==",
            ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Is: "is", ast.In: "in"}


def _visible(stmt: Stmt, line: str) -> bool:
    """Whether the user's line itself writes the operation of ``stmt`` (``.reshape(``, ``@``,
    ``self.fc1(``, ``x.shape``), not a layer a container it calls runs (``self.classifier(x)``
    runs ``self.classifier[1]``) or torch code below it. Read from the statement's own code, so
    a graph torch.export captured (``aten.view``, written ``.view(``) reads the same."""
    tree = _parsed(stmt.code)
    if isinstance(tree, ast.Call):
        func = tree.func
        if isinstance(func, ast.Attribute):
            return re.search(rf"\b{re.escape(func.attr)}\s*\(", line) is not None or \
                isinstance(func.value, ast.Name) and func.value.id == "self" and \
                re.search(rf"\bself\.{re.escape(func.attr)}\b", line) is not None
        return isinstance(func, ast.Name) and re.search(rf"\b{re.escape(func.id)}\s*\(", line) is not None
    if isinstance(tree, (ast.BinOp, ast.UnaryOp)):
        return _SYMBOLS.get(type(tree.op), "\0") in line
    if isinstance(tree, ast.Compare):
        return all(_SYMBOLS.get(type(op), "\0") in line for op in tree.ops)
    if isinstance(tree, ast.Subscript):
        return "[" in line
    if isinstance(tree, ast.Attribute):
        return f".{tree.attr}" in line
    return False


_PRECEDENCE = {ast.Or: 1, ast.And: 2, ast.Not: 3, ast.BitOr: 5, ast.BitXor: 6, ast.BitAnd: 7, ast.LShift: 8,
               ast.RShift: 8, ast.Add: 9, ast.Sub: 9, ast.Mult: 10, ast.MatMult: 10, ast.Div: 10, ast.FloorDiv: 10,
               ast.Mod: 10, ast.UAdd: 11, ast.USub: 11, ast.Invert: 11, ast.Pow: 12}
_HOLE = "_aimgen_operand_"


def _precedence(node: ast.expr) -> int:
    if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp)):
        return _PRECEDENCE[type(node.op)]
    if isinstance(node, ast.Compare):
        return 4
    if isinstance(node, (ast.IfExp, ast.Lambda, ast.NamedExpr)):
        return 0
    return 13   # a primary: a name, call, attribute, item, literal


def _parsed(code: str, hole: str | None = None) -> ast.expr | None:
    """``code`` (markers and constants as placeholders; the value ``hole`` as _HOLE) parsed."""
    def name(m):
        return _HOLE if m.group(1) == hole else "v"
    text = re.sub(f"{CONST}[^{CONST}]*{CONST}", "0", _MARKER.sub(name, code))
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        return None


def _operand(code: str, outer: str, key: str) -> str:
    """``code``, the value ``key`` reads in ``outer`` (code with markers), written in its place:
    in parentheses only where Python's precedence needs them, or where two different operators
    of one precedence meet (``(q @ k) * scale``, as people write it)."""
    inner, tree = _parsed(code), _parsed(outer, key)
    if inner is None or tree is None:
        return f"({code})"
    parent = next((p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)
                   if isinstance(c, ast.Name) and c.id == _HOLE), None)
    mine = _precedence(inner)
    hole = next((c for c in ast.iter_child_nodes(parent) if isinstance(c, ast.Name) and c.id == _HOLE), None) \
        if parent is not None else None
    if isinstance(parent, ast.BinOp):
        theirs = _PRECEDENCE[type(parent.op)]
        right = parent.right is hole
        if isinstance(parent.op, ast.Pow):   # right-associative; its right side may be -x
            needs = mine <= theirs if not right else mine < 11
        else:
            needs = mine < theirs or (mine == theirs and (right or type(inner.op) is not type(parent.op)))
    elif isinstance(parent, ast.UnaryOp):
        needs = mine < _PRECEDENCE[type(parent.op)]
    elif isinstance(parent, (ast.Compare, ast.BoolOp)):
        needs = mine <= _precedence(parent)
    elif isinstance(parent, (ast.Attribute, ast.Subscript, ast.Call)) and \
            getattr(parent, "value", getattr(parent, "func", None)) is hole:
        needs = mine < 13   # the object of .attr, [item] or (call)
    else:
        needs = mine == 0   # an argument, item or whole right-hand side
    return f"({code})" if needs else code


def return_line(fn: Function, value: str) -> str:
    """``return value, memory`` (the memory as ``fn`` returns it), or ``return value``; '' for
    a function without memory that returns nothing."""
    if fn.memory:
        return f"return {value + ', ' if value else ''}{fn.return_memory}"
    return f"return {value}" if value else ""
