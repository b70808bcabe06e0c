"""Proving a generated file is valid (see the spec's Validation section).

Static: it parses and imports only torch, the standard library and what its header declares.
Dynamic, in a fresh isolated Python process that never imports aimgen: it builds, counts
exactly the parameters it declares, runs forward and backward on its own example inputs, its
eval() output is deterministic, and its carry moves in train() mode; before it trains, it
computes the PyTorch outputs the ONNX graphs must match. The ONNX checks (aimgen.onnx_checks)
run meanwhile when asked for, in a worker started ahead (aimgen.onnx_worker) or in this process.

Weights: as aimgen.readback chooses them (given, else the file beside the generated one, else
random initialisation), read once here with aimgen.weights and handed to the fresh process.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import libcst
import torch

from .errors import ValidationError, WeightsError
from .loader import flat_tensors
from .onnx_checks import CARRY_CALLS, PARITY_BATCHES, reference_outputs
from .onnx_worker import OnnxWorker
from .progress import Check, Progress
from .readback import WeightsChoice, choose_weights, read_metadata
from .weights import Checkpoint, fit_problems

__all__ = ["Check", "imported_modules", "read_metadata", "validate_file"]

_ALLOWED = {"torch"} | set(sys.stdlib_module_names)


def imported_modules(path: Path) -> set[str]:
    module = libcst.parse_module(Path(path).read_text(encoding="utf-8"))
    found: set[str] = set()

    class Visitor(libcst.CSTVisitor):
        def visit_Import(self, node: libcst.Import) -> None:
            for alias in node.names:
                found.add(module.code_for_node(alias.name).split(".")[0])

        def visit_ImportFrom(self, node: libcst.ImportFrom) -> None:
            if node.module is not None and not node.relative:
                found.add(module.code_for_node(node.module).split(".")[0])
            elif node.relative:
                found.add(".")

    module.visit(Visitor())
    return found


# The child never imports aimgen: it gets flat_tensors and reference_outputs by source (the one
# definition of each, in aimgen.loader and aimgen.onnx_checks) and uses the generated file's own
# build_model() and example_inputs(batch).
_CHILD = "from __future__ import annotations\n" + inspect.getsource(flat_tensors).replace("def flat_tensors", "def tensors").replace(
    "flat_tensors(o)", "tensors(o)") + "\n\n" + inspect.getsource(reference_outputs) + r'''
import importlib.util, json, sys
import torch

path, weights, references, plan = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if plan["threads"]:
    torch.set_num_threads(plan["threads"])
spec = importlib.util.spec_from_file_location("aimgen_file_under_test", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
leaked = sorted(m for m in sys.modules if m == "aimgen" or m.startswith("aimgen."))
meta = mod.AIMGEN
torch.manual_seed(0)
model = mod.build_model()
result = {"leaked": leaked, "params": sum(p.numel() for p in model.parameters())}
if weights:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    own = model.state_dict()
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
        result["misfit"] = {"given": {k: list(v.shape) for k, v in state.items()},
                            "model": {k: list(v.shape) for k, v in own.items()}}
        print("AIMGEN_RESULT " + json.dumps(result))
        sys.exit(0)
    model.load_state_dict(state)

def inputs(batch):
    out = mod.example_inputs(batch)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)

if references:  # what the ONNX graphs must compute, from this fresh model before it trains
    torch.save(reference_outputs(model, meta, inputs, tensors, plan["batches"], plan["carry_calls"]), references)

batch = max(2, mod.EXAMPLE_INPUT_SHAPES[0][0])
x = inputs(batch)
model.train()
out = model(*x)
outs = [t for t in tensors(out) if t.is_floating_point()]
loss = sum(t.float().square().mean() for t in outs)
loss.backward()
grads = [p for p in model.parameters() if p.requires_grad]
result["loss_finite"] = bool(torch.isfinite(loss).item())
result["grads_finite"] = all(bool(torch.isfinite(p.grad).all()) for p in grads if p.grad is not None)
result["params_with_grad"] = sum(1 for p in grads if p.grad is not None)
result["params_total"] = len(grads)
result["output_shapes"] = [list(t.shape) for t in tensors(out)]
if meta.get("kind") == "aim" and meta.get("update_blocks"):
    mem = getattr(model, meta["memory"])
    result["carry_moved"] = bool(mem.carry.abs().sum() > 0) or mem.carry_rate == 0
model.eval()
with torch.no_grad():
    a = tensors(model(*x))
    b = tensors(model(*x))
result["eval_deterministic"] = all(torch.equal(p, q) for p, q in zip(a, b)) and len(a) == len(b)
print("AIMGEN_RESULT " + json.dumps(result))
'''


def start_fresh(path: Path, weights: Path | None = None, references: Path | None = None) -> subprocess.Popen:
    """Start the dynamic checks in a fresh, isolated interpreter (python -I: no cwd, no user
    site; -B: no __pycache__ left beside the user's output); ``finish_fresh`` collects them.
    ``weights``: a plain state_dict file (torch.save of tensors). ``references``: where to save
    what the ONNX graphs must compute (``onnx_checks.reference_outputs``); the export runs
    meanwhile (here or in the ONNX worker), so the child then keeps to one thread and leaves it
    the other core."""
    plan = {"threads": 1 if references else 0, "batches": list(PARITY_BATCHES), "carry_calls": CARRY_CALLS}
    return subprocess.Popen([sys.executable, "-I", "-B", "-c", _CHILD, str(path), str(weights or ""),
                             str(references or ""), json.dumps(plan)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_fresh(proc: subprocess.Popen, timeout: float = 600) -> dict:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    for line in stdout.splitlines():
        if line.startswith("AIMGEN_RESULT "):
            return json.loads(line[len("AIMGEN_RESULT "):])
    tail = (stderr.strip().splitlines() or ["no output"])[-1]
    # the fresh process's own traceback, as the cause: --debug prints it above aimgen's
    raise ValidationError(f"the generated model failed in a fresh Python process: {tail}", failed=("fresh import",),
                          hint="Run it with `python -c 'import runpy; runpy.run_path(...)'` to see the "
                          "traceback, or convert with --debug.") from ChildProcessError(
                              "the fresh process's output:\n" + stderr.strip())


@contextlib.contextmanager
def _plain_weights(choice: WeightsChoice):
    """The chosen weights as a file the fresh process can read with torch.load alone: the file
    itself when it is a plain state_dict, else a temporary copy of what aimgen.weights read
    from it (safetensors, an unwrapped checkpoint)."""
    if choice.path is None:
        yield None
        return
    ckpt = Checkpoint.read(choice.path)
    if choice.path.suffix != ".safetensors" and not ckpt.notes:
        yield choice.path
        return
    with tempfile.TemporaryDirectory(prefix="aimgen-weights-") as folder:
        target = Path(folder) / "weights.pt"
        torch.save(ckpt.state_dict, target)
        yield target


def validate_file(path: str | Path, *, weights: str | Path | None = None, random_weights: bool = False,
                  onnx: bool = False, label: str | None = None, opset: int | None = None,
                  progress: Progress | None = None, worker: OnnxWorker | None = None) -> list[Check]:
    """All checks, each reported to ``progress`` as it finishes; raises ValidationError (naming
    the failed checks) if one fails. Weights: see the module doc. ``worker``: an
    ``OnnxWorker`` started ahead, to run the ONNX checks in (used up by this call)."""
    path = Path(path)
    label = label or str(path)
    progress = progress or Progress()
    meta = read_metadata(path)
    choice = choose_weights(path, weights, random_weights)
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        progress.check(check)

    allowed = _ALLOWED | set(meta.get("depends", []))
    imports = imported_modules(path)
    bad = sorted(imports - allowed)
    add(Check("imports", not bad, f"imports {', '.join(sorted(imports))}" if not bad else
              f"imports {', '.join(bad)} beyond torch and the standard library"))
    with _plain_weights(choice) as plain, tempfile.TemporaryDirectory(prefix="aimgen-references-") as folder:
        saved = Path(folder) / "references.pt" if onnx else None
        fresh = start_fresh(path, plain, saved)
        progress.start("fresh", "fresh process: build, parameter count, train step, eval determinism"
                       + (", PyTorch's outputs for the ONNX checks (beside the export)" if onnx else ""))
        finished: list[dict] = []

        def reference_file() -> Path | None:
            """Where the fresh process saved its outputs, once it has finished (None: it made none)."""
            if not finished:
                finished.append(finish_fresh(fresh))
            return saved if saved is not None and saved.is_file() else None

        try:
            onnx_results = (worker or OnnxWorker.here()).run(
                path, weights=choice.path, random_weights=choice.path is None, opset=opset, progress=progress,
                references=reference_file) if onnx else []
            res = finished[0] if finished else finish_fresh(fresh)
        except BaseException:
            fresh.kill()
            fresh.communicate()
            raise
        finally:
            progress.stop("fresh")
    if "misfit" in res:
        raise WeightsError(f"{choice.path} does not fit the model: "
                           + "; ".join(fit_problems(res["misfit"]["given"], res["misfit"]["model"])) + ".",
                           hint="Give the state_dict written with this file (OUT.pt from `aimgen convert "
                           "--weights`), or a checkpoint of this model.")
    expected = meta.get("aim_params", meta.get("params"))
    add(Check("fresh import", not res["leaked"], "built in a fresh process without aimgen" if not res["leaked"]
              else f"the file imported {res['leaked']}"))
    if expected is not None:
        add(Check("parameter count", res["params"] == expected, f"counted {res['params']:,}, planned {expected:,}",
                  {"counted": res["params"], "planned": expected}))
    add(Check("forward/backward", res["loss_finite"] and res["grads_finite"],
              f"outputs {res['output_shapes']}; {res['params_with_grad']} of {res['params_total']} "
              "parameters got gradients", {"params_with_grad": res["params_with_grad"]}))
    add(Check("eval determinism", res["eval_deterministic"], "two eval() forwards are identical"
              if res["eval_deterministic"] else "two eval() forwards differ"))
    if "carry_moved" in res:
        add(Check("carry", res["carry_moved"], "a train() forward moved the carry"
                  if res["carry_moved"] else "a train() forward left the carry at zero"))
    for c in onnx_results:  # a staged file's temporary name is nobody's business: name the target
        c.detail = c.detail.replace(str(path), label)
    checks += onnx_results
    failed = [c for c in checks if not c.ok and c.possible]
    if failed:
        raise ValidationError(
            f"{label}: validation failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed) + ".",
            failed=tuple(c.name for c in failed), hint="If the file is as aimgen wrote it, please report this with the model file (aimgen should not "
            "produce it); if it was edited, the failed checks say what to fix.")
    return checks
