"""The command line: a thin layer over aimgen.api, aimgen.validate and aimgen.export, one module
per sub-command (``convert``, ``validate``, ``export``, ``diff``; ``experiment`` lives in
aimgen.experiment). Shared parts are in ``common``.

Paths and arguments are checked before torch is imported, so a typo is reported at once.
Every failure prints one paragraph (what, where, what to do; API argument names become flags)
and exits 2 (3 for a bug in aimgen); tracebacks only with --debug.
"""
from __future__ import annotations

import gc
import sys

from .. import __version__
from ..errors import AimgenError, ConversionInvalid
from ..options import Options
from . import convert, diff, export, validate
from .common import Parser, cli_text

EXIT_USER, EXIT_INTERNAL = 2, 3
COMMANDS = {"convert": convert, "validate": validate, "export": export, "diff": diff}


def build_parser(argv: list[str] | None = None) -> Parser:
    """The parser. ``argv``: when it names one of aimgen's own commands, ``experiment`` (which
    imports torch to build its parser) is left out, so that command starts fast."""
    parser = Parser(prog="aimgen", description="Give memory to a whole neural network: write the AiM version of a "
                    "PyTorch model as standalone source, validate it and export it to ONNX. Converting a model runs "
                    "its file as Python does: convert only code you trust.")
    parser.add_argument("--version", action="version", version=f"aimgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (default: off)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    command = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    if command not in COMMANDS and not (argv is not None and command is None and "--version" in argv):
        from .. import experiment  # its own sub-command: aimgen experiment (see aimgen/experiment.py)

        experiment.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    debug = "--debug" in argv  # accepted before or after the sub-command
    if not args.command:
        parser.print_help()
        return EXIT_USER
    try:
        if args.command == "experiment":
            from .. import experiment

            return experiment.run(args)
        return COMMANDS[args.command].run(args)
    except AimgenError as err:
        if debug:
            raise
        # a converted file that failed its checks: the message and hint say whose doing it may be
        internal = err.exit_code == EXIT_INTERNAL and not isinstance(err, ConversionInvalid)
        what = "internal error (a bug in aimgen)" if internal else "error"
        print(f"aimgen {args.command}: {what}: {cli_text(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("aimgen: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in aimgen, or in the user's model code
        if debug:
            raise
        print(f"aimgen {args.command}: internal error: {type(err).__name__}: {err}. Nothing was written. "
              "Run again with --debug for the traceback, and please report it.", file=sys.stderr)
        return EXIT_INTERNAL


def command() -> int:
    """The ``aimgen`` console script and ``python -m aimgen``: ``main`` on this process's command
    line. Then what the command made is left out of the interpreter's last garbage collection
    (``gc.freeze``), which otherwise walks every object at exit: 0.6 s after converting resnet50,
    for memory the operating system takes back anyway. Files are closed and temporary folders
    removed by then; atexit handlers and the flushing of stdout and stderr run as usual."""
    code = main()
    gc.freeze()
    return code


# aimgen/experiment.py (turned into a package in another branch) still imports these two.
def _options_args(parser) -> None:
    Options.add_arguments(parser, "transform options")


def _options(args) -> Options:
    return Options.from_args(args)


if __name__ == "__main__":
    sys.exit(main())
