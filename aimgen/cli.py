"""The command line: a thin layer over aimgen.api, aimgen.validate and aimgen.export.

Every failure prints one paragraph (what, where, what to do) and exits non-zero; tracebacks
only with --debug.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import AimgenError

EXIT_USER, EXIT_INTERNAL = 2, 3


def _options_args(p: argparse.ArgumentParser) -> None:
    from .options import Options

    Options.add_arguments(p, "transform options (defaults: see README)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimgen", description="Give memory to a whole neural network: write the AiM version of a "
        "PyTorch model as standalone source, validate it and export it to ONNX. Converting a model runs "
        "its file as Python does: convert only code you trust.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("convert", help="write the AiM source of a model")
    c.add_argument("target", metavar="FILE.py[:NAME]")
    c.add_argument("--input-shape", action="append", default=[], metavar="SHAPE",
                   help="example input shape, batch first: 1,3,224,224 (repeat per input; 1,16:int64 for ids)")
    c.add_argument("-o", "--output", required=True, metavar="OUT.py")
    c.add_argument("--weights", metavar="BASE.pt", help="base state_dict: copied in, new memory weights start at "
                   "zero; the AiM state_dict is written as OUT.pt")
    c.add_argument("--report-json", metavar="R.json", help="also write the report as JSON")
    c.add_argument("--plain", action="store_true", help="write the unmodified model through the same templates")
    c.add_argument("--no-validate", action="store_true", help="skip validation (not recommended)")
    c.add_argument("--no-onnx", action="store_true", help="skip the ONNX part of validation")
    c.add_argument("--force", action="store_true", help="overwrite existing output files")
    c.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    c.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    _options_args(c)

    v = sub.add_parser("validate", help="check a generated file (import, params, train step, ONNX parity)")
    v.add_argument("file", metavar="OUT.py")
    v.add_argument("--weights", metavar="W.pt")
    v.add_argument("--no-onnx", action="store_true", help="skip the ONNX checks")
    v.add_argument("--opset", type=int)
    v.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    e = sub.add_parser("export", help="export a generated model to ONNX")
    e.add_argument("file", metavar="OUT.py")
    e.add_argument("-o", "--output", required=True, metavar="MODEL.onnx")
    e.add_argument("--weights", metavar="W.pt")
    e.add_argument("--stateful", action="store_true", help="memory as an explicit graph input and output")
    e.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    e.add_argument("--force", action="store_true", help="overwrite an existing output file")
    e.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    d = sub.add_parser("diff", help="unified diff between the plain and the AiM rendering of a model")
    d.add_argument("target", metavar="FILE.py[:NAME]")
    d.add_argument("--input-shape", action="append", default=[], metavar="SHAPE")
    d.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    d.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    _options_args(d)

    from . import experiment  # its own sub-command: aimgen experiment (see aimgen/experiment.py)

    experiment.add_parser(sub)
    return parser


def _options(args):
    from .options import Options

    return Options.from_args(args)


def _load(args):
    from .loader import InputSpec, load_model

    if not args.input_shape:
        raise AimgenError(
            f"{args.target}: no --input-shape given; aimgen traces the model at an example input.",
            hint="Add --input-shape 1,3,224,224 (batch first; repeat once per model input; 1,16:int64 "
            "for integer inputs such as token ids).")
    specs = [InputSpec.parse(s) for s in args.input_shape]
    loaded = load_model(args.target)
    return loaded, specs


def cmd_convert(args) -> int:
    from . import api
    from .files import check_targets

    out = Path(args.output)
    targets = [out] + ([out.with_suffix(".pt")] if args.weights else []) + \
        ([Path(args.report_json)] if args.report_json else [])
    if out.suffix != ".py":
        raise AimgenError(f"-o {out}: the output is Python source; give a .py file name.")
    check_targets(targets, args.force)  # refuse early, before any work
    loaded, specs = _load(args)
    result = api.convert(loaded.model, specs, plain=args.plain, options=_options(args),
                         source_name=f"{loaded.path.name}:{loaded.name}", base_weights=args.weights,
                         constructor_args=loaded.constructor_args)
    result.write(out, force=args.force, report_json=args.report_json, validate=not args.no_validate,
                 onnx=not args.no_onnx and not args.plain)
    if not args.quiet:
        print(result.report, end="")
        if result.weights_report:
            w = result.weights_report
            print(f"weights: {w['copied']} tensors copied, {w['widened']} widened (new slots zero), "
                  f"{w['created']} created -> {out.with_suffix('.pt')}")
        for check in getattr(result, "validation", []):
            print(check.line())
    elif result.plan is not None:
        print(result.plan.summary())
    print(f"wrote {', '.join(str(t) for t in targets)}")
    return 0


def cmd_validate(args) -> int:
    from .validate import validate_file

    checks = validate_file(args.file, weights=args.weights, onnx=not args.no_onnx, opset=args.opset)
    for check in checks:
        print(check.line())
    print(f"{args.file}: valid ({len(checks)} checks)")
    return 0


def cmd_export(args) -> int:
    from .export import export_file

    result = export_file(args.file, args.output, weights=args.weights, stateful=args.stateful,
                         opset=args.opset, force=args.force)
    print(result.summary())
    return 0


def cmd_diff(args) -> int:
    from .diffing import diff_text

    loaded, specs = _load(args)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    sys.stdout.write(diff_text(loaded.model, specs, options=_options(args),
                               source_name=f"{loaded.path.name}:{loaded.name}", color=color,
                               constructor_args=loaded.constructor_args))
    return 0


def cmd_experiment(args) -> int:
    from . import experiment

    return experiment.run(args)


COMMANDS = {"convert": cmd_convert, "validate": cmd_validate, "export": cmd_export, "diff": cmd_diff,
            "experiment": cmd_experiment}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.debug = "--debug" in argv  # accepted before or after the sub-command
    if not args.command:
        parser.print_help()
        return EXIT_USER
    try:
        return COMMANDS[args.command](args)
    except AimgenError as err:
        if args.debug:
            raise
        print(f"aimgen {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("aimgen: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in aimgen, or in the user's model code
        if args.debug:
            raise
        print(f"aimgen {args.command}: internal error: {type(err).__name__}: {err}. Nothing was written. "
              "Run again with --debug for the traceback, and please report it.", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
