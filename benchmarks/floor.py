"""The floor of a conversion, done by hand, in its own process (as ``aimgen convert`` runs):
import torch, build the model, torch.fx symbolic_trace, ShapeProp at the example input,
torch.onnx.export of the *base* model (the same exporter call aimgen.export makes: dynamo,
dynamic batch, weights embedded) and one onnxruntime run.

    python benchmarks/floor.py MODEL_NAME OUT.onnx [--no-onnx]

(``--no-onnx``: stop after shape propagation, the floor of ``aimgen convert --no-onnx``.)

Prints one line ``FLOOR_RESULT {json}`` with the time of each phase (seconds, from the start
of the interpreter) and the process's peak RSS.
"""
import time

_T0 = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.fx  # noqa: E402
from torch.fx.passes.shape_prop import ShapeProp  # noqa: E402


def main() -> None:
    name, onnx_path, with_onnx = sys.argv[1], sys.argv[2], "--no-onnx" not in sys.argv[3:]
    phases = {}
    mark = time.perf_counter()
    phases["import torch"] = mark - _T0

    def lap(label: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[label] = now - mark
        mark = now

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import models

    model = models.build(name).eval()
    x = torch.randn(models.INPUTS[name])
    lap("build model")
    gm = torch.fx.symbolic_trace(model)
    lap("fx trace")
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
    lap("shape propagation")
    if with_onnx:
        export(model, x, onnx_path)
        lap("onnx export")
        run_once(onnx_path, x)
        lap("onnxruntime run")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("FLOOR_RESULT " + json.dumps({"phases": phases, "total": time.perf_counter() - _T0,
                                        "peak_rss_mb": peak_kb / 1024}))


def export(model, x, onnx_path: str) -> None:
    batch = torch.export.Dim("batch", min=1)
    x2 = torch.randn((2,) + tuple(x.shape[1:]))
    with torch.no_grad():
        program = torch.onnx.export(model, (x2,), dynamo=True, input_names=["x"], output_names=["output"],
                                    dynamic_shapes=({0: batch},), external_data=False, verbose=False)
        program.save(onnx_path, external_data=False)


def run_once(onnx_path: str, x) -> None:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": x.numpy()})


if __name__ == "__main__":
    main()
