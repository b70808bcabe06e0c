"""Proving a generated file is valid (see the spec's Validation section).

Static: it parses (libcst) and imports only torch, the standard library and what its header
declares. Dynamic, in a fresh isolated Python process that never imports aimgen: it builds,
counts exactly the parameters it declares, runs forward and backward on the example input,
its eval() output is deterministic, and its carry moves in train() mode. ONNX checks (export
and onnxruntime parity, stateless and stateful) are added by aimgen.export when asked for.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import libcst

from .errors import ValidationError

_ALLOWED = {"torch"} | set(sys.stdlib_module_names)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    numbers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"[{'ok' if self.ok else 'FAILED'}] {self.name}: {self.detail}"


def read_metadata(path: Path) -> dict:
    """The AIMGEN dict of a generated file, read without running it; errors if it is not one."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: no such file.")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        module = libcst.parse_module(text)
    except libcst.ParserSyntaxError as err:
        raise ValidationError(f"{path}:{err.raw_line}: does not parse: {err.message}.") from None
    for stmt in module.body:
        if isinstance(stmt, libcst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, libcst.Assign) and any(
                        isinstance(t.target, libcst.Name) and t.target.value == "AIMGEN" for t in small.targets):
                    import ast

                    try:
                        meta = ast.literal_eval(module.code_for_node(small.value))
                    except ValueError:
                        break
                    if isinstance(meta, dict) and meta.get("format") == 1:
                        return meta
    raise ValidationError(
        f"{path} is not an aimgen output (it has no AIMGEN header of a known format).",
        hint="Give a file written by `aimgen convert`.")


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


_CHILD = r'''
import importlib.util, json, math, sys
import torch
from torch import nn

path, weights = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("aimgen_file_under_test", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
leaked = sorted(m for m in sys.modules if m == "aimgen" or m.startswith("aimgen."))
meta = mod.AIMGEN
torch.manual_seed(0)
model = mod.build_model()
if weights:
    model.load_state_dict(torch.load(weights, weights_only=True))
result = {"leaked": leaked, "params": sum(p.numel() for p in model.parameters())}
sizes = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
high = min(sizes) if sizes else 2
dtypes = getattr(mod, "EXAMPLE_INPUT_DTYPES", ["float32"] * len(mod.EXAMPLE_INPUT_SHAPES))

def inputs(batch):
    g = torch.Generator().manual_seed(0)
    out = []
    for shape, dt in zip(mod.EXAMPLE_INPUT_SHAPES, dtypes):
        shape = (batch,) + tuple(shape[1:])
        dtype = getattr(torch, dt)
        if dtype.is_floating_point:
            out.append(torch.randn(shape, generator=g).to(dtype))
        elif dtype == torch.bool:
            out.append(torch.randint(0, 2, shape, generator=g).bool())
        else:
            out.append(torch.randint(0, high, shape, generator=g).to(dtype))
    return out

def tensors(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    elif hasattr(obj, "__dataclass_fields__"):
        obj = [getattr(obj, f) for f in obj.__dataclass_fields__]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in tensors(o)]
    return []

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


def start_fresh(path: Path, weights: Path | None = None) -> subprocess.Popen:
    """Start the dynamic checks in a fresh, isolated interpreter (python -I: no cwd, no user
    site; -B: no __pycache__ left beside the user's output); ``finish_fresh`` collects them."""
    return subprocess.Popen([sys.executable, "-I", "-B", "-c", _CHILD, str(path), str(weights or "")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_fresh(proc: subprocess.Popen, timeout: float = 600) -> dict:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("AIMGEN_RESULT "):
            return json.loads(line[len("AIMGEN_RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise ValidationError(f"the generated model failed in a fresh Python process: {tail}",
                          hint="Run it with `python -c 'import runpy; runpy.run_path(...)'` to see the "
                          "traceback, or convert with --debug.")


def validate_file(path: str | Path, *, weights: str | Path | None = None, onnx: bool = False,
                  label: str | None = None, opset: int | None = None) -> list[Check]:
    """All checks; raises ValidationError (naming the failed check) if one fails."""
    path = Path(path)
    label = label or str(path)
    meta = read_metadata(path)
    checks: list[Check] = []
    allowed = _ALLOWED | set(meta.get("depends", []))
    imports = imported_modules(path)
    bad = sorted(imports - allowed)
    checks.append(Check("imports", not bad, f"imports {', '.join(sorted(imports))}" if not bad else
                        f"imports {', '.join(bad)} beyond torch and the standard library"))
    fresh = start_fresh(path, Path(weights) if weights else None)
    onnx_results: list[Check] = []
    if onnx:  # meanwhile, in this process: the ONNX checks (the other core is the child's)
        from .export import onnx_checks

        try:
            onnx_results = onnx_checks(path, weights=weights, opset=opset)
        except BaseException:
            fresh.kill()
            fresh.communicate()
            raise
    res = finish_fresh(fresh)
    expected = meta.get("aim_params", meta.get("params"))
    checks.append(Check("fresh import", not res["leaked"],
                        "built in a fresh process without aimgen" if not res["leaked"] else
                        f"the file imported {res['leaked']}"))
    if expected is not None:
        checks.append(Check("parameter count", res["params"] == expected,
                            f"counted {res['params']:,}, planned {expected:,}",
                            {"counted": res["params"], "planned": expected}))
    checks.append(Check("forward/backward", res["loss_finite"] and res["grads_finite"],
                        f"outputs {res['output_shapes']}; {res['params_with_grad']} of {res['params_total']} "
                        "parameters got gradients", {"params_with_grad": res["params_with_grad"]}))
    checks.append(Check("eval determinism", res["eval_deterministic"], "two eval() forwards are identical"
                        if res["eval_deterministic"] else "two eval() forwards differ"))
    if "carry_moved" in res:
        checks.append(Check("carry", res["carry_moved"], "a train() forward moved the carry"
                            if res["carry_moved"] else "a train() forward left the carry at zero"))
    checks += onnx_results
    failed = [c for c in checks if not c.ok]
    if failed:
        raise ValidationError(
            f"{label}: validation failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed) + ".",
            hint="Nothing was written. Please report this with the model file (aimgen should not produce it).")
    return checks
