"""``aimgen export``: write a generated model as ONNX (stateless, or stateful with the memory
as input and output)."""
from __future__ import annotations

from ..files import check_input, check_targets
from .common import add_debug, progress_display, say
from .validate import add_opset, generated_file_parser, weights_line


def add_parser(sub) -> None:
    e = generated_file_parser(
        sub, "export", help="export a generated model to ONNX",
        description="Build the model of a generated file with its weights and write it as one ONNX file. "
        "Stateless: the base model's inputs and outputs, memory frozen in. Stateful: memory as input and "
        "new_memory as output, the input defaulting to the initial memory.")
    e.add_argument("-o", "--output", required=True, metavar="MODEL.onnx", help="the ONNX file to write (required)")
    e.add_argument("--stateful", action="store_true",
                   help="memory as a graph input and new_memory as an output, to carry it across calls (default: "
                   "off, stateless with the memory frozen in)")
    add_opset(e)
    e.add_argument("--force", action="store_true", help="overwrite an existing output file (default: refuse)")
    add_debug(e)


def run(args) -> int:
    file = check_input(args.file, "generated file", "Give a file written by `aimgen convert`.")
    if args.weights:
        check_input(args.weights, "weights file", "Give the path of a saved state_dict.")
    check_targets([args.output], args.force)
    from ..export import check_opset, export_file
    from ..readback import read_metadata

    check_opset(args.opset)
    read_metadata(file)  # an aimgen output, before anything is said about it
    say(weights_line(file, args))
    kind = "stateful" if args.stateful else "stateless"
    with progress_display() as progress, progress.step("export", f"ONNX export ({kind}): tracing with "
                                                       "torch.export, seconds to minutes"):
        result = export_file(file, args.output, weights=args.weights, random_weights=args.random_weights,
                             stateful=args.stateful, opset=args.opset, force=args.force)
    say(result.summary())
    return 0
