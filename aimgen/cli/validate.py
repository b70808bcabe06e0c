"""``aimgen validate``: check a generated file (import, parameters, train step, ONNX parity)."""
from __future__ import annotations

import argparse

from ..files import check_input
from .common import add_debug, cli_words, progress_display, say

FILE_HELP = "a file written by `aimgen convert`"
WEIGHTS_HELP = ("the state_dict to load (default: OUT.pt or OUT.safetensors beside the file, as `aimgen convert "
                "--weights` writes it, else random initialisation)")
RANDOM_HELP = "use random initialisation (seeded) even if a weights file lies beside the file (default: off)"
OPSET_HELP = "ONNX opset of the export, 18 or newer (default: the exporter's own)"


def generated_file_parser(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """The parser of a command on a generated file: the file, then which weights to load."""
    parser = sub.add_parser(name, help=help, description=description)
    parser.add_argument("file", metavar="OUT.py", help=FILE_HELP)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--weights", metavar="W.pt", help=WEIGHTS_HELP)
    group.add_argument("--random-weights", action="store_true", help=RANDOM_HELP)
    return parser


def add_opset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, metavar="N", help=OPSET_HELP)


def add_parser(sub) -> None:
    v = generated_file_parser(
        sub, "validate", help="check a generated file (import, parameters, train step, ONNX parity)",
        description="Run every check of a generated file: static imports; a fresh process that builds it, "
        "counts its parameters and trains one step; ONNX export and onnxruntime parity (the long part).")
    v.add_argument("--no-onnx", action="store_true", help="skip the ONNX checks, the long part (default: run them)")
    add_opset(v)
    add_debug(v)


def weights_line(file, args) -> str:
    """Which weights a command on a generated file uses (aimgen.readback's choice), as a CLI line."""
    from ..readback import choose_weights

    return cli_words(choose_weights(file, args.weights, args.random_weights).line())


def run(args) -> int:
    file = check_input(args.file, "generated file", FILE_HELP[0].upper() + FILE_HELP[1:] + ".")
    if args.weights:
        check_input(args.weights, "weights file", "Give the path of a saved state_dict.")
    from ..readback import read_metadata
    from ..validate import validate_file

    read_metadata(file)  # an aimgen output, before anything is said about it
    say(weights_line(file, args))
    if not args.no_onnx:
        say(f"validating {file}: a fresh process beside the ONNX export and onnxruntime parity, the long part "
            "(--no-onnx skips it)")
    with progress_display() as progress:
        checks = validate_file(file, weights=args.weights, random_weights=args.random_weights,
                               onnx=not args.no_onnx, opset=args.opset, progress=progress)
    say(f"{file}: valid ({len(checks)} checks)")
    return 0
