"""``aimgen diff``: the unified diff between the plain and the AiM rendering of a model."""
from __future__ import annotations

import sys

from ..files import check_source
from ..options import Options
from .common import add_debug
from .convert import add_input_shape, check_shapes


def add_parser(sub) -> None:
    d = sub.add_parser("diff", help="unified diff between the plain and the AiM rendering of a model",
                       description="Show what the transform adds: the plain rendering against the AiM one.")
    add_input_shape(d)
    d.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the diff: auto colours on a terminal only (default: auto)")
    add_debug(d)
    Options.add_arguments(d, "transform options")


def run(args) -> int:
    check_source(args.target)
    check_shapes(args)
    options = Options.from_args(args)
    options.check()
    from ..diffing import diff_text
    from ..loader import InputSpec, load_model

    specs = [InputSpec.parse(s) for s in args.input_shape]
    loaded = load_model(args.target)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    sys.stdout.write(diff_text(loaded.model, specs, options=options,
                               source_name=f"{loaded.path.name}:{loaded.name}", color=color,
                               constructor_args=loaded.constructor_args))
    return 0
