"""``aimgen convert`` exactly as the console script runs it (``aimgen.cli.main(argv)``), with a
stopwatch around each phase, in its own process:

    python benchmarks/convert_child.py convert FILE.py:NAME --input-shape ... -o OUT.py

The phases are aimgen's own functions, wrapped in place (a few microseconds per call):
loading the model file, tracing, shape propagation (twice: at the example batch and at
batch + 2, to find batch axes), planning, codegen, rendering (Jinja + the libcst parse of the
output), and validation (static checks, the ONNX checks, and the wait for the fresh process
that runs beside them). Prints one line
``CONVERT_RESULT {json}``: seconds per phase, ``startup`` (interpreter and imports before
main), the total, and the peak RSS of this process and of its children (the validation
process), from getrusage.
"""
import time

_T0 = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import aimgen.cli  # noqa: E402

from phases import PHASES, instrument  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)


def main() -> int:
    instrument()  # imports aimgen.api, .export and torch: part of the startup
    start = time.perf_counter()
    code = aimgen.cli.main(sys.argv[1:])
    end = time.perf_counter()
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("CONVERT_RESULT " + json.dumps({
        "code": code, "startup": start - _T0, "main": end - start, "total": end - _T0, "phases": PHASES,
        "peak_rss_mb": self_kb / 1024, "children_peak_rss_mb": child_kb / 1024}))
    return code


if __name__ == "__main__":
    sys.exit(main())
