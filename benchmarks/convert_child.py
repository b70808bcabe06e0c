"""``aimgen convert`` exactly as the console script runs it (``aimgen.cli.command()``), with a
stopwatch around each phase, in its own process:

    python benchmarks/convert_child.py convert FILE.py:NAME --input-shape ... -o OUT.py

The phases are aimgen's own functions, wrapped in place (a few microseconds per call):
loading the model file, tracing, shape propagation (twice: at the example batch and at
batch + 2, to find batch axes), planning, codegen, rendering (Jinja + the libcst parse of the
output), and validation (static checks, the ONNX checks, and the wait for the fresh process
that runs beside them). Prints one line
``CONVERT_RESULT {json}``: seconds per phase, ``startup`` (the interpreter and aimgen's command
line, before main; torch and aimgen's modules are imported in main, as the command does it,
after it has started its ONNX worker), the total, and the peak RSS of this process and of its
children (the ONNX worker and the validation process), from getrusage.
"""
import time

_T0 = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import aimgen.cli  # noqa: E402

from phases import PHASES, instrument  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)


def main() -> int:
    import aimgen.cli.convert as command

    convert = command._convert

    def timed_convert(*args):
        """The phases' modules import torch: wrapped where the command imports them, after it has
        started its ONNX worker, as the console script runs (wrapping them first would start the
        worker a second later than `aimgen convert` does)."""
        begin = time.perf_counter()
        instrument()
        PHASES["imports (torch, aimgen's modules)"] = time.perf_counter() - begin
        return convert(*args)

    command._convert = timed_convert
    start = time.perf_counter()
    code = aimgen.cli.command()  # sys.argv[1:], as the console script reads it
    end = time.perf_counter()
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("CONVERT_RESULT " + json.dumps({
        "code": code, "startup": start - _T0, "main": end - start, "total": end - _T0, "phases": PHASES,
        "peak_rss_mb": self_kb / 1024, "children_peak_rss_mb": child_kb / 1024}))
    return code


if __name__ == "__main__":
    sys.exit(main())
