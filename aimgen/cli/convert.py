"""``aimgen convert``: write the AiM source of a model, validated, and its weights."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AimgenError
from ..files import check_input, check_source, check_targets
from ..options import Options
from .common import add_debug, cli_words, progress_display, say

TARGET_HELP = ("the model file, and NAME in it: an nn.Module subclass built with no arguments, a zero-argument "
               "function returning a module, or a module instance (default: the only candidate; a "
               "build_model/build function is preferred, and aimgen says which it picked and why)")
SHAPE_HELP = ("example input shape, batch first: 1,3,224,224; repeat once per model input; 1,16:int64 for "
              "integer inputs such as token ids (required)")


def add_input_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="FILE.py[:NAME]", help=TARGET_HELP)
    parser.add_argument("--input-shape", action="append", default=[], metavar="SHAPE", help=SHAPE_HELP)


def add_parser(sub) -> None:
    c = sub.add_parser("convert", help="write the AiM source of a model, validate it (and its weights)",
                       description="Trace a model, print the per-layer plan at once, then validate the generated "
                       "file (a fresh process; ONNX export and onnxruntime parity, the long part) and write it. "
                       "Converting a model runs its file as Python does: convert only code you trust.")
    add_input_shape(c)
    c.add_argument("-o", "--output", required=True, metavar="OUT.py",
                   help="the generated source to write (required); OUT.pt is written beside it with --weights")
    c.add_argument("--weights", metavar="BASE.pt",
                   help="the base model's trained weights (.pt/.pth/.safetensors state_dict; a {'model': ...} or "
                   "{'state_dict': ...} checkpoint and DDP 'module.' keys are understood): copied in, so the AiM "
                   "model computes the base model's function until trained; written as OUT.pt, which export and "
                   "validate then use (default: none, random initialisation)")
    c.add_argument("--weights-partial", action="store_true",
                   help="with --weights: load only the tensors whose key and shape match the model, e.g. an "
                   "ImageNet backbone for a model with a new head, and list what is left at its initialisation "
                   "(default: off, every tensor must fit)")
    c.add_argument("--report-json", metavar="R.json", help="also write the report as JSON (default: none)")
    c.add_argument("--plain", action="store_true",
                   help="write the unmodified model through the same templates (default: off, the AiM version)")
    c.add_argument("--no-validate", action="store_true", help="skip validation, not recommended (default: validate)")
    c.add_argument("--no-onnx", action="store_true",
                   help="skip the ONNX part of validation, the long part; `aimgen validate OUT.py` runs it later "
                   "(default: run it)")
    c.add_argument("--force", action="store_true", help="overwrite existing output files (default: refuse)")
    c.add_argument("-q", "--quiet", action="store_true",
                   help="print only the summary line and the files written (default: the table, then progress)")
    add_debug(c)
    Options.add_arguments(c, "transform options")


def check_shapes(args) -> None:
    if not args.input_shape:
        path, _ = check_source(args.target)
        raise AimgenError(f"{path}: no --input-shape given; aimgen traces the model at an example input.",
                          hint="Add --input-shape 1,3,224,224 (batch first; repeat once per model input; 1,16:int64 "
                          "for integer inputs such as token ids).")


def run(args) -> int:
    out = Path(args.output)
    # everything that can be checked without torch first: a typo is reported at once
    if out.suffix != ".py":
        raise AimgenError(f"-o {out}: the output is Python source; give a .py file name.")
    check_source(args.target)
    check_shapes(args)
    if args.weights_partial and not args.weights:
        raise AimgenError("--weights-partial loads part of a checkpoint, but no --weights was given.",
                          hint="Add --weights BASE.pt.")
    if args.weights:
        check_input(args.weights, "weights file", "Give the path of a saved state_dict.")
    targets = [out] + ([out.with_suffix(".pt")] if args.weights else []) + \
        ([Path(args.report_json)] if args.report_json else [])
    check_targets(targets, args.force)
    options = Options.from_args(args)
    options.check()
    onnx = not args.no_validate and not args.no_onnx and not args.plain  # the ONNX checks run
    if onnx:  # its imports and a first export run on the other core while this one converts
        from ..onnx_worker import OnnxWorker
        with OnnxWorker.start() as worker:
            return _convert(args, out, options, onnx, worker)
    return _convert(args, out, options, onnx, None)


def _convert(args, out: Path, options: Options, onnx: bool, worker) -> int:
    from .. import api
    from ..loader import InputSpec, load_model
    from ..progress import Progress
    from ..weights import Checkpoint

    specs = [InputSpec.parse(s) for s in args.input_shape]
    loaded = load_model(args.target)
    if not args.quiet:
        say(loaded.line())
    base = Checkpoint.read(args.weights, partial=args.weights_partial) if args.weights else None
    result = api.convert(loaded.model, specs, plain=args.plain, options=options,
                         source_name=f"{loaded.path.name}:{loaded.name}", base_weights=base,
                         constructor_args=loaded.constructor_args)
    if args.quiet:
        if result.plan is not None:
            say(result.plan.summary())
    else:
        say(result.report.rstrip("\n"))
        for line in weights_lines(result, out):
            say(line)
        if args.no_validate:
            match = result.base_match()
            if match is not None:
                say(match.line())
            say("validation skipped (--no-validate): `aimgen validate OUT.py` runs it".replace("OUT.py", str(out)))
        else:
            say(validation_intro(out, onnx))
    progress = Progress() if args.quiet else progress_display()
    with progress:
        written = result.write(out, force=args.force, report_json=args.report_json, validate=not args.no_validate,
                               onnx=onnx, progress=progress, worker=worker)
    for old in written.removed:
        say(f"removed {old}: a weights file of an earlier conversion, which export and validate would have taken "
            "for this model's weights")
    say(f"wrote {', '.join(str(t) for t in written.files)}")
    return 0


def weights_lines(result, out: Path) -> list[str]:
    """Which weights the written model has, what was read from the file, what was left out."""
    report = result.weights_report
    if report is None:
        return [cli_words("weights: none given: the model starts from random initialisation (seeded); `base_weights=PATH` "
                          "starts it from the base model's trained weights")]
    lines = [f"weights: {report['source']}"] + [f"weights: {note}" for note in report.get("notes", [])]
    memory = (f"{report['widened']} widened (memory slots start at zero)" if result.plan.form == "literal"
              else f"{report['widened']} memory weights (start at zero)")
    lines.append(f"weights: {report['copied']} tensors copied, {memory}, {report['created']} created -> "
                 f"{out.with_suffix('.pt')}")
    return lines


def validation_intro(out: Path, onnx: bool) -> str:
    if onnx:
        return (f"validating {out}: a fresh process (build, parameter count, train step) beside the ONNX export and "
                f"onnxruntime parity, the long part (--no-onnx skips it; `aimgen validate {out}` runs it later)")
    return f"validating {out}: a fresh process (build, parameter count, train step); ONNX skipped"
