"""Rendering a generated model through the Jinja templates, then parsing it with libcst."""
from __future__ import annotations

import io
import keyword
import re
import sys
import tokenize
from pathlib import Path

import jinja2
import libcst

from .codegen import Source
from .errors import InternalError
from .naming import WIDTH, comment, comment_lines, wrapped_comment

FORMAT_VERSION = 1


def templates_dir() -> Path:
    """The templates shipped with the package (``aimgen.templates``), or the repo's templates/."""
    try:
        import aimgen.templates as shipped

        folder = Path(next(iter(shipped.__path__)))
        if (folder / "model.py.j2").exists():
            return folder
    except ImportError:
        pass
    return Path(__file__).resolve().parent.parent / "templates"


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(templates_dir())),
    autoescape=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


_FLOATS = ("float32", "float", "float64", "double", "float16", "half", "bfloat16")


def example_input_exprs(shapes: list[tuple[int, ...]], dtypes: list[str], high: int) -> list[str]:
    """Source of each example input at ``batch``, drawn in order from one seeded generator (the
    same draws as aimgen.loader.example_inputs, so parity checks see the traced values)."""
    out = []
    for shape, dtype in zip(shapes, dtypes):
        dims = ", ".join(["batch", *map(str, shape[1:])])
        shape_tuple = f"({dims},)" if len(shape) == 1 else f"({dims})"
        if dtype in ("float32", "float"):
            out.append(f"torch.randn({dims}, generator=g)")
        elif dtype in ("float64", "double", "float16", "half", "bfloat16"):
            out.append(f"torch.randn({dims}, generator=g).to(torch.{dtype})")
        elif dtype == "bool":
            out.append(f"torch.randint(0, 2, {shape_tuple}, generator=g).bool()")
        else:
            cast = "" if dtype in ("int64", "long") else f".to(torch.{dtype})"
            out.append(f"torch.randint(0, {high}, {shape_tuple}, generator=g){cast}")
    return out


def render_model(src: Source, *, title: str, header: list[str], shapes: list[tuple[int, ...]],
                 dtypes: list[str], metadata: dict, high: int = 2) -> str:
    stdlib = sorted(m for m in src.imports if m.split(".")[0] in sys.stdlib_module_names and m != "math")
    extra = sorted(m for m in src.imports if m.split(".")[0] not in sys.stdlib_module_names)
    exprs = example_input_exprs(shapes, dtypes, high)
    text = _ENV.get_template("model.py.j2").render(
        title=comment(title),
        header=[line for h in header for line in wrapped_comment(comment(h), WIDTH - 2)],
        stdlib_imports=stdlib,
        extra_imports=extra,
        example_shapes=repr([tuple(s) for s in shapes]),
        example_dtypes=repr(list(dtypes)),
        example_exprs=exprs,
        example_line=f"({exprs[0]},)" if len(exprs) == 1 and len(f"    return ({exprs[0]},)") <= WIDTH else "",
        example_note=(f"(integers below {high}: the smallest embedding table)"
                      if any(d not in _FLOATS + ("bool",) for d in dtypes) else ""),
        metadata=dict_literal(metadata),
        runtime=src.runtime,
        uses_group=src.uses_group,
        copied=src.copied,
        classes=[wrap_long_lines(c) for c in src.classes],
        class_name=src.class_name,
    )
    text = re.sub(r"\n{4,}", "\n\n\n", text)  # at most two blank lines, whatever the template's branches
    check_source(text, "the generated source")
    return text


def dict_literal(data: dict, width: int = WIDTH, indent: str = "") -> str:
    """A dict as source, its items filled onto lines of at most ``width`` characters; an item
    too long for a line of its own goes over several: a dict value item by item, a string
    value as adjacent literals in parentheses (why a module is kept whole, with its path)."""
    items = [f"{k!r}: {v!r}" for k, v in data.items()]
    one = "{" + ", ".join(items) + "}"
    if len(indent + one) + 10 <= width:
        return one
    pad = indent + "    "
    lines, cur = [], pad[:-1]
    for (key, value), item in zip(data.items(), items):
        if len(pad + item) + 1 > width and isinstance(value, (dict, str)) and value:
            if cur.strip():
                lines.append(cur.rstrip())
            cur = pad[:-1]
            if isinstance(value, dict):
                lines.append(f"{pad}{key!r}: {dict_literal(value, width, pad)},")
            else:
                pieces = _string_pieces(value, width - len(pad) - 4)
                lines += [f"{pad}{key!r}: ("] + [f"{pad}    {x!r}" for x in pieces] + [f"{pad}),"]
            continue
        if len(cur) + len(item) + 2 > width and cur.strip():
            lines.append(cur.rstrip())
            cur = pad[:-1]
        cur += f" {item},"
    if cur.strip():
        lines.append(cur.rstrip())
    return "{\n" + "\n".join(lines) + "\n" + indent + "}"


def _string_pieces(text: str, width: int) -> list[str]:
    """``text`` cut after spaces into pieces whose literals fit ``width`` (a longer word stays
    whole); joined, they are ``text``."""
    pieces, cur = [], ""
    for word in re.findall(r"\S*\s*", text):
        if cur and len(repr(cur + word)) > width:
            pieces.append(cur)
            cur = ""
        cur += word
    return pieces + ([cur] if cur else [])


def check_source(text: str, what: str) -> libcst.Module:
    """Parse with libcst (and compile): the output must be valid Python before it is written."""
    try:
        module = libcst.parse_module(text)
        compile(text, what, "exec")
    except (libcst.ParserSyntaxError, SyntaxError) as err:
        raise InternalError(f"{what} does not parse: {err}.",
                            hint="This is a bug in aimgen: please report it with the model.") from None
    return module



def wrap_long_lines(text: str, width: int = WIDTH) -> str:
    """Lines over ``width`` characters, split the way a person would: a trailing comment moves
    above its line; a call's arguments go one per line."""
    out: list[str] = []
    for line in text.split("\n"):
        out += _wrap(line, width)
    return "\n".join(out)


def _wrap(line: str, width: int) -> list[str]:
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    code, note = _split_comment(line)
    if note and len(code.rstrip()) <= width:
        return comment_lines(indent, note, width) + _wrap(code.rstrip(), width)
    items = _returned_items(code.rstrip())
    if items is not None:   # return a, b: one item a line, inside parentheses
        lines = [f"{indent}return ("] + [x for a in items for x in _wrap(f"{indent}    {a},", width)] + [f"{indent})"]
        return (comment_lines(indent, note, width) if note else []) + lines
    split = _split_call(code.rstrip())
    if split is None:
        return [line]
    head, args, tail = split
    if len(args) == 1 and " for " in args[0]:  # a comprehension: its expression, then its loop
        expr, loop = args[0].rsplit(" for ", 1)
        return [head] + _wrap(f"{indent}    {expr}", width) + [f"{indent}    for {loop}", f"{indent}{tail}"]
    if len(head) > width and (terms := _split_sum(code.rstrip())) is not None:
        target, operands = terms   # x = a(...) + b(...): one term a line, inside parentheses
        lines = [f"{target}("] + _wrap(f"{indent}    {operands[0]}", width)
        for o in operands[1:]:
            lines += _wrap(f"{indent}    + {o}", width)
        lines.append(f"{indent})")
        return (comment_lines(indent, note, width) if note else []) + lines
    lines = _fill(head, args, tail, " " * len(head), width) or \
        _fill(head, args, tail, indent + "    ", width, hanging=True)
    if lines is None:
        lines = [head] + [x for a in args for x in _wrap(f"{indent}    {a},", width)] + [f"{indent}{tail}"]
    if note:
        lines[:0] = comment_lines(indent, note, width)
    return lines


def _fill(head: str, args: list[str], tail: str, pad: str, width: int, hanging: bool = False) -> list[str] | None:
    """Arguments filled onto lines (aligned after the bracket, or on hanging lines)."""
    lines, cur = ([head], pad) if hanging else ([], head)
    for i, a in enumerate(args):
        piece = a + ("," if i < len(args) - 1 or hanging else "")
        if cur.strip() and not cur.endswith(("(", "[", "{")) and len(cur) + 1 + len(piece) > width:
            lines.append(cur.rstrip())
            cur = pad + piece
        else:
            cur = cur + ("" if cur.endswith(("(", "[", "{")) or not cur.strip() else " ") + piece
    if hanging:
        lines += [cur.rstrip(), pad[:-4] + tail]
    else:
        lines.append(cur + tail)
    return lines if all(len(x) <= width for x in lines) else None


def _tokens(code: str):
    try:
        return list(tokenize.generate_tokens(io.StringIO(code.strip() + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _split_comment(line: str) -> tuple[str, str]:
    toks = _tokens(line)
    if toks is None:
        return line, ""
    offset = len(line) - len(line.lstrip())
    for t in toks:
        if t.type == tokenize.COMMENT:
            col = t.start[1] + offset
            return line[:col], line[col:].lstrip("#").strip()
    return line, ""


def _returned_items(code: str) -> list[str] | None:
    """The items of ``return a, b, ...`` (two or more, at the top level); None for any other line."""
    body = code.lstrip()
    if not body.startswith("return "):
        return None
    items = _top_level_split(body[len("return "):])
    return items if items and len(items) > 1 else None


def _split_call(code: str):
    """(head ending with the opening bracket, top-level arguments, closing tail) of the last
    bracket that opens at depth 0 and closes at the end of the line."""
    toks = _tokens(code)
    if toks is None:
        return None
    offset = len(code) - len(code.lstrip())
    stripped = code.rstrip()
    depth, opener, previous = 0, None, None
    candidates = []
    for t in toks:
        if t.type == tokenize.OP and t.string in "([{":
            if depth == 0:
                # x[i]: a subscript, whose one index must not become the tuple (i,)
                index = t.string == "[" and previous is not None and (
                    previous.type in (tokenize.NAME, tokenize.STRING) or previous.string in ")]")
                # a * (b + c): parentheses around one expression, which a trailing comma would
                # make a tuple (not a call: no name or bracket before them, or a keyword)
                called = previous is not None and (previous.string in ")]" or previous.type == tokenize.STRING or (
                    previous.type == tokenize.NAME and not keyword.iskeyword(previous.string)))
                opener = (t, index or (t.string == "(" and not called))
            depth += 1
        elif t.type == tokenize.OP and t.string in ")]}":
            depth -= 1
            if depth == 0 and opener is not None:
                candidates.append((*opener, t))
        if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            previous = t
    for opener, index, closer in reversed(candidates):
        open_col, close_col = opener.start[1] + offset, closer.start[1] + offset
        if not re.fullmatch(r"(\[[^\[\](){}]*\])*[,:]?", stripped[close_col + 1:]):
            continue   # only a call at the end of the line, or followed by a plain subscript: f(...)[0]
        inner = stripped[open_col + 1:close_col]
        args = _top_level_split(inner)
        if index and len(args) < 2:
            continue
        if len(args) < 2 and len(stripped) <= 99:
            return None
        if not args:
            return None
        return stripped[:open_col + 1], args, stripped[close_col:]
    return None


def _outside_brackets(toks):
    """The operator tokens that stand outside every bracket (the brackets themselves excluded)."""
    depth = 0
    for t in toks:
        if t.type != tokenize.OP:
            continue
        if t.string in "([{":
            depth += 1
        elif t.string in ")]}":
            depth -= 1
        elif depth == 0:
            yield t


def _split_sum(code: str) -> tuple[str, list[str]] | None:
    """(``target = ``, the terms) of an assignment whose value is a sum at the top level."""
    toks = _tokens(code)
    if toks is None:
        return None
    offset = len(code) - len(code.lstrip())
    start, cuts = None, []
    for t in _outside_brackets(toks):
        if t.string == "=" and start is None:
            start = t.end[1] + offset
        elif t.string == "+" and start is not None:
            cuts.append(t.start[1] + offset)
    if start is None or not cuts:
        return None
    bounds = [start] + cuts + [len(code)]
    terms = [code[a:b].strip().lstrip("+").strip() for a, b in zip(bounds, bounds[1:])]
    return code[:start] + " ", terms


def _top_level_split(inner: str) -> list[str]:
    inner = inner.strip()
    toks = _tokens(inner)
    if toks is None:
        return []
    parts, last = [], 0
    for t in _outside_brackets(toks):
        if t.string == ",":
            parts.append(inner[last:t.start[1]].strip())
            last = t.end[1]
    tail = inner[last:].strip()
    if tail:
        parts.append(tail)
    return parts
