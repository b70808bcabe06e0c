"""Peak memory of one training step (forward + backward), one arm per process:

    python benchmarks/train_child.py base MODEL_NAME BATCH
    python benchmarks/train_child.py aim GENERATED.py BATCH

The model and a batch of inputs are built first; the resident set size at that point is the
baseline (VmRSS), and the kernel's peak-RSS mark is reset to it (``5`` into
/proc/self/clear_refs, Linux >= 4.0): importing torch peaks higher than a small model's step
ever does, so the process's lifetime peak (ru_maxrss) would hide the step. Then one step
runs (cross-entropy on random labels, backward, gradients kept), and the new peak (VmHWM)
minus the baseline is the step's memory: activations saved for backward, gradients and the
allocator's working space. Then the same step runs again under ``PeakTensorMemory``
(tensor_memory.py), which counts the bytes of the tensors it creates exactly:
``tensor_peak_mb``, the number the ratios use (RSS moves by tens of percent between runs with
what the allocator keeps). Prints ``TRAIN_RESULT {json}``.
"""
import gc
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

import torch

from tensor_memory import PeakTensorMemory  # benchmarks/ is sys.path[0] when run as a script


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    arm, target, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    if arm == "base":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import models

        model, shape = models.build(target), models.INPUTS[target]
    else:
        spec = importlib.util.spec_from_file_location("generated_under_test", target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model, shape = module.build_model(), module.EXAMPLE_INPUT_SHAPES[0]
    x = torch.randn((batch,) + tuple(shape[1:]))
    with torch.no_grad():
        classes = model.eval()(x[:1]).shape[-1]
    model.train()
    y = torch.randint(0, classes, (batch,))
    gc.collect()
    before = status_mb("VmRSS")
    reset = reset_peak()
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del loss
    model.zero_grad(set_to_none=True)
    with PeakTensorMemory() as counted:  # the same step again, its tensors counted exactly
        torch.nn.functional.cross_entropy(model(x), y).backward()
    print("TRAIN_RESULT " + json.dumps({"baseline_mb": before, "peak_mb": peak, "step_mb": peak - before,
                                        "peak_reset": reset, "seconds": seconds,
                                        "tensor_peak_mb": counted.peak / 2**20}))


if __name__ == "__main__":
    main()
