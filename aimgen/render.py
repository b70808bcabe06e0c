"""Rendering a generated model through the Jinja templates, then parsing it with libcst."""
from __future__ import annotations

import pprint
import re
import sys
from pathlib import Path

import jinja2
import libcst

from .codegen import Line, Source
from .errors import RenderError
from .naming import comment

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


def _line(line: Line) -> str:
    if not line.comment:
        return line.code
    return f"{line.code}  # {comment(line.comment)}"


def example_input_exprs(shapes: list[tuple[int, ...]], dtypes: list[str], high: int) -> list[str]:
    """Source of each example input at ``batch``, drawn in order from one seeded generator (the
    same draws as aimgen.loader.example_inputs, so parity checks see the traced values)."""
    out = []
    for shape, dtype in zip(shapes, dtypes):
        dims = ", ".join(["batch", *map(str, shape[1:])])
        if dtype in ("float32", "float"):
            out.append(f"torch.randn({dims}, generator=g)")
        elif dtype in ("float64", "double", "float16", "half", "bfloat16"):
            out.append(f"torch.randn({dims}, generator=g).to(torch.{dtype})")
        elif dtype == "bool":
            out.append(f"torch.randint(0, 2, ({dims},), generator=g).bool()")
        else:
            cast = "" if dtype in ("int64", "long") else f".to(torch.{dtype})"
            out.append(f"torch.randint(0, {high}, ({dims},), generator=g){cast}")
    return out


def render_model(src: Source, *, title: str, header: list[str], shapes: list[tuple[int, ...]],
                 dtypes: list[str], metadata: dict, high: int = 2) -> str:
    stdlib = sorted(m for m in src.imports if m.split(".")[0] in sys.stdlib_module_names and m != "math")
    extra = sorted(m for m in src.imports if m.split(".")[0] not in sys.stdlib_module_names)
    text = _ENV.get_template("model.py.j2").render(
        title=comment(title),
        header=[comment(h) for h in header],
        stdlib_imports=stdlib,
        extra_imports=extra,
        example_shapes=repr([tuple(s) for s in shapes]),
        example_dtypes=repr(list(dtypes)),
        example_exprs=example_input_exprs(shapes, dtypes, high),
        example_note=(f" (integers below {high}: the smallest embedding table)"
                      if any(d not in ("float32", "float", "float64", "double", "float16", "half", "bfloat16", "bool")
                             for d in dtypes) else ""),
        metadata=pprint.pformat(metadata, sort_dicts=False, width=96),
        plain=src.plain,
        uses_grouped_fit=src.uses_grouped_fit,
        uses_feature_fit=src.uses_feature_fit,
        uses_group=src.uses_group,
        copied=src.copied,
        class_name=src.class_name,
        init_lines=[_line(x) for x in src.init_lines],
        forward_params=", ".join(src.forward_params),
        input_names=", ".join(src.input_names),
        body=[_line(x) for x in src.body],
        return_expr=src.return_expr,
        memory_attr=src.memory_attr,
        batch_expr=src.batch_expr,
    )
    text = re.sub(r"\n{4,}", "\n\n\n", text)  # at most two blank lines, whatever the template's branches
    check_source(text, "the generated source")
    return text


def check_source(text: str, what: str) -> libcst.Module:
    """Parse with libcst (and compile): the output must be valid Python before it is written."""
    try:
        module = libcst.parse_module(text)
        compile(text, what, "exec")
    except (libcst.ParserSyntaxError, SyntaxError) as err:
        raise RenderError(f"{what} does not parse: {err}.",
                          hint="This is a bug in aimgen: please report it with the model.") from None
    return module
