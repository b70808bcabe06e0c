"""aimgen benchmarks: conversion speed, training and inference overhead, memory, scaling.

    python benchmarks/run.py                  # the full run (resnet50 and the scaling series)
    python benchmarks/run.py --quick          # a tiny smoke version (seconds; numbers meaningless)
    python benchmarks/run.py --readme         # also write the tables into the top-level README.md

Every number is a median over repetitions, and every ratio compares two arms measured in the
same run, interleaved (A B, then B A, ...), so that load from other processes hits both. See
benchmarks/README.md for what each row measures; the latest results are in the top-level README.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import aimgen  # noqa: E402
import flops  # noqa: E402
import models  # noqa: E402
import phases  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class Settings:
    model: str = "resnet50"
    onnx: bool = True                # ONNX validation in convert (and the floor's export), inference
    convert_reps: int = 3
    train_batch: int = 8
    train_reps: int = 3
    infer_rounds: int = 10
    infer_runs: int = 3
    scaling: list[str] = field(default_factory=lambda: [
        "resnet18", "resnet50", "resnet101", "resnet152", "chain16", "chain32", "chain64", "chain128"])
    scale_convert_reps: int = 2
    scale_train_batch: int = 4
    scale_train_reps: int = 2

    @classmethod
    def quick(cls) -> "Settings":
        return cls(model="tiny", onnx=False, convert_reps=1, train_batch=8, train_reps=1, infer_rounds=2, infer_runs=2,
                   scaling=["tiny", "tiny8"], scale_convert_reps=1, scale_train_batch=2, scale_train_reps=1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def shape_text(shape) -> str:
    return ",".join(map(str, shape))


# --------------------------------------------------------------------------- child processes

@dataclass
class Child:
    wall: float
    code: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # the largest resident set of the process and of the children it waited for

    def result(self, tag: str) -> dict:
        for line in self.stdout.splitlines():
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        tail = "\n".join((self.stderr or self.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"child failed (exit {self.code}), no {tag} line:\n{tail}")


def run_children(*argvs: list[str], timeout: float = 600) -> list[Child]:
    """Run ``python ARGV`` from the repository root (several at once if given several); wall
    time from the parent, peak RSS from wait4 (Linux reports the maximum over the child and
    the descendants it waited for)."""
    with contextlib.ExitStack() as stack:
        started = []
        for argv in argvs:
            out, err = (stack.enter_context(tempfile.TemporaryFile()) for _ in range(2))
            proc = subprocess.Popen([sys.executable, *argv], stdout=out, stderr=err, cwd=ROOT)
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            started.append((proc, out, err, timer, time.perf_counter()))
        children = []
        for proc, out, err, timer, start in started:
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            children.append(Child(wall, proc.returncode, out.read().decode(errors="replace"),
                                  err.read().decode(errors="replace"), usage.ru_maxrss / 1024))
        return children


def run_child(argv: list[str], timeout: float = 600) -> Child:
    return run_children(argv, timeout=timeout)[0]


# --------------------------------------------------------------------------- 1. convert

def bench_convert(s: Settings, tmp: Path) -> dict:
    """The whole ``aimgen convert`` (validation with ONNX checks when aimgen.export exists) vs
    the floor (floor.py), alternating which runs first."""
    shape = models.INPUTS[s.model]
    has_export = s.onnx and _has_export()
    aim_runs, floor_runs = [], []
    for rep in range(s.convert_reps):
        out = tmp / f"convert_{rep}.py"
        aim_argv = [str(HERE / "convert_child.py"), "convert", f"{HERE / 'models.py'}:{s.model}",
                    "--input-shape", shape_text(shape), "-o", str(out), "-q"] + ([] if has_export else ["--no-onnx"])
        floor_argv = [str(HERE / "floor.py"), s.model, str(tmp / f"floor_{rep}.onnx")] + \
            ([] if has_export else ["--no-onnx"])
        for arm in (("aim", "floor") if rep % 2 == 0 else ("floor", "aim")):
            log(f"convert rep {rep + 1}/{s.convert_reps}: {arm}")
            if arm == "aim":
                child = run_child(aim_argv)
                res = child.result("CONVERT_RESULT")
                if res["code"] != 0:
                    raise RuntimeError(f"aimgen convert failed:\n{child.stderr[-2000:]}")
                aim_runs.append({**res, "wall": child.wall, "tree_peak_rss_mb": child.peak_rss_mb})
            else:
                child = run_child(floor_argv)
                res = child.result("FLOOR_RESULT")
                floor_runs.append({**res, "wall": child.wall, "tree_peak_rss_mb": child.peak_rss_mb})
    aim_wall, floor_wall = median(r["wall"] for r in aim_runs), median(r["wall"] for r in floor_runs)
    aim_phases = {k: median(r["phases"].get(k, 0.0) for r in aim_runs)
                  for k in dict.fromkeys(k for r in aim_runs for k in r["phases"])}
    aim_phases["startup (interpreter, command line)"] = median(r["startup"] for r in aim_runs)
    floor_phases = {k: median(r["phases"][k] for r in floor_runs) for k in floor_runs[0]["phases"]}
    own = median(sum(r["phases"].get(k, 0.0) for k in phases.OWN) for r in aim_runs)
    return {"model": s.model, "onnx": has_export, "aim_wall": aim_wall, "floor_wall": floor_wall,
            "ratio": aim_wall / floor_wall, "own": own, "own_share": own / aim_wall,
            "aim_phases": aim_phases, "floor_phases": floor_phases,
            "aim_peak_rss_mb": median(r["tree_peak_rss_mb"] for r in aim_runs),
            "aim_main_rss_mb": median(r["peak_rss_mb"] for r in aim_runs),
            "aim_validation_rss_mb": median(r["children_peak_rss_mb"] for r in aim_runs),
            "floor_peak_rss_mb": median(r["tree_peak_rss_mb"] for r in floor_runs),
            "runs": {"aim": [r["wall"] for r in aim_runs], "floor": [r["wall"] for r in floor_runs]}}


def _has_export() -> bool:
    try:
        from aimgen.export import export_file  # noqa: F401
        from aimgen.onnx_checks import onnx_checks  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- 2. training

def convert_in_process(name: str) -> tuple[object, dict, torch.nn.Module]:
    """aimgen.convert of a benchmark model, with its phase times (no validation)."""
    model = models.build(name)
    phases.reset()
    conversion = aimgen.convert(model, [models.INPUTS[name]], source_name=name)
    return conversion, phases.reset(), model


def train_steps(base: torch.nn.Module, aim: torch.nn.Module, shape, batch: int, reps: int) -> dict:
    """One forward + backward at ``batch``, AiM vs base, interleaved; one warm-up step each."""
    torch.manual_seed(0)
    x = torch.randn((batch,) + tuple(shape[1:]))
    with torch.no_grad():
        classes = base.eval()(x[:1]).shape[-1]
    y = torch.randint(0, classes, (batch,))
    arms = {"base": base.train(), "aim": aim.train()}
    times: dict[str, list[float]] = {"base": [], "aim": []}

    def step(model) -> float:
        start = time.perf_counter()
        F.cross_entropy(model(x), y).backward()
        seconds = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        return seconds

    for name in arms:
        step(arms[name])
    for rep in range(reps):
        for name in (("base", "aim") if rep % 2 == 0 else ("aim", "base")):
            times[name].append(step(arms[name]))
    b, a = median(times["base"]), median(times["aim"])
    return {"base": b, "aim": a, "ratio": a / b, "batch": batch, "times": times}


def op_profile(base: torch.nn.Module, aim: torch.nn.Module, shape, batch: int) -> list[dict]:
    """One profiled training step per arm (after the timed ones): CPU time per aten op, so the
    README can say where the AiM step's extra time goes."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    x = torch.randn((batch,) + tuple(shape[1:]))
    per_arm = {}
    for name, model in (("base", base), ("aim", aim)):
        model.train()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x).float().square().mean().backward()
        model.zero_grad(set_to_none=True)
        per_arm[name] = {e.key: e.self_cpu_time_total / 1000 for e in prof.key_averages()}
    ops = set(per_arm["base"]) | set(per_arm["aim"])
    rows = [{"op": op, "base_ms": per_arm["base"].get(op, 0.0), "aim_ms": per_arm["aim"].get(op, 0.0)} for op in ops]
    for r in rows:
        r["extra_ms"] = r["aim_ms"] - r["base_ms"]
    total = {arm: sum(v.values()) for arm, v in per_arm.items()}
    rows.sort(key=lambda r: -r["extra_ms"])
    return [{"op": "all ops", "base_ms": total["base"], "aim_ms": total["aim"],
             "extra_ms": total["aim"] - total["base"]}] + rows[:8]


def bench_training(s: Settings, conversion, base) -> dict:
    aim = conversion.build()
    shape = models.INPUTS[s.model]
    log(f"training: {s.model} batch {s.train_batch}, {s.train_reps} reps")
    result = train_steps(base, aim, shape, s.train_batch, s.train_reps)
    log("training: one profiled step per arm")
    result["profile"] = op_profile(base, aim, shape, s.train_batch)
    x = torch.randn((1,) + tuple(shape[1:]))
    result["analytic"] = flops.analytic(conversion)
    result["counted_base"] = flops.counted(base, x)
    result["counted_aim"] = flops.counted(aim, x)
    result["counted_increase"] = result["counted_aim"] / result["counted_base"] - 1
    return result


# --------------------------------------------------------------------------- 3. inference

def bench_inference(s: Settings, aim_py: Path, base_model, tmp: Path) -> dict:
    """onnxruntime at batch 1, one thread: the stateless AiM export vs the base model's export,
    both written by aimgen.export from generated files (the plain rendering for the base), so
    the exporter and its options are the same."""
    if not s.onnx:
        return {"available": False, "why": "skipped in --quick"}
    if not _has_export():
        return {"available": False, "why": "aimgen.export not available"}
    import numpy as np
    from aimgen.export import export_file

    import floor

    shape = models.INPUTS[s.model]
    log("export: torch.onnx.export of the base model (the floor's call)")
    start = time.perf_counter()
    floor.export(base_model.eval(), torch.randn(shape), str(tmp / "floor_base.onnx"))
    base_export = time.perf_counter() - start
    plain_py = tmp / "plain.py"
    aimgen.convert(base_model, [shape], plain=True, source_name=s.model).write(plain_py, validate=False, force=True)
    sessions, export_seconds = {}, {}
    for arm, src in (("base", plain_py), ("aim", aim_py)):
        log(f"inference: exporting {arm}")
        target = tmp / f"infer_{arm}.onnx"
        start = time.perf_counter()
        export_file(src, target, force=True)
        export_seconds[arm] = time.perf_counter() - start
        sessions[arm] = ort_session(target)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feeds = {arm: {sess.get_inputs()[0].name: x} for arm, sess in sessions.items()}
    times: dict[str, list[float]] = {"base": [], "aim": []}
    for arm, sess in sessions.items():
        for _ in range(3):
            sess.run(None, feeds[arm])
    log(f"inference: {s.infer_rounds} rounds x {s.infer_runs} runs per arm")
    for r in range(s.infer_rounds):
        for arm in (("base", "aim") if r % 2 == 0 else ("aim", "base")):
            for _ in range(s.infer_runs):
                start = time.perf_counter()
                sessions[arm].run(None, feeds[arm])
                times[arm].append(time.perf_counter() - start)
    b, a = median(times["base"]), median(times["aim"])
    return {"available": True, "base": b, "aim": a, "ratio": a / b, "export_aim": export_seconds["aim"],
            "export_plain": export_seconds["base"], "export_base": base_export}


def ort_session(path: Path, optimized: Path | None = None, disabled: tuple[str, ...] = ()):
    """An onnxruntime CPU session on one thread, quiet: how every inference row measures.
    ``optimized``: where onnxruntime writes the graph it optimized; ``disabled``: optimizers
    it leaves out (relu6.py's arms)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                        disabled_optimizers=list(disabled))


# --------------------------------------------------------------------------- 4. memory

def bench_train_memory(s: Settings, aim_py: Path) -> dict:
    log("training memory: base and aim, one process each, side by side")
    arms = (("base", s.model), ("aim", str(aim_py)))
    children = run_children(*([str(HERE / "train_child.py"), arm, target, str(s.train_batch)] for arm, target in arms))
    out = {arm: child.result("TRAIN_RESULT") for (arm, _), child in zip(arms, children)}
    out["ratio"] = out["aim"]["tensor_peak_mb"] / out["base"]["tensor_peak_mb"]
    out["rss_ratio"] = out["aim"]["step_mb"] / out["base"]["step_mb"]
    return out


# --------------------------------------------------------------------------- 5. scaling

def slope(xs, ys) -> float:
    """Least-squares slope of log(y) on log(x): 1 for linear growth, 2 for quadratic."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else math.nan


def bench_scaling(s: Settings) -> dict:
    rows = []
    for name in s.scaling:
        log(f"scaling: {name}")
        runs = []
        for _ in range(s.scale_convert_reps):
            conversion, times, base = convert_in_process(name)
            runs.append(times)
        nodes = sum(1 for _ in conversion._traced.graph.nodes)
        convert = {k: median(r.get(k, 0.0) for r in runs) for k in phases.CONVERT}
        train = train_steps(base, conversion.build(), models.INPUTS[name], s.scale_train_batch, s.scale_train_reps)
        rows.append({"model": name, "nodes": nodes, "taps": len(conversion.plan.taps),
                     "updates": len(conversion.plan.updates), "convert": convert,
                     "convert_total": median(sum(r.get(k, 0.0) for k in phases.CONVERT) for r in runs),
                     "train": train, "mac_increase": flops.analytic(conversion)["increase"]})
    fits = []
    for series in ("resnet", "chain", "tiny"):
        group = [r for r in rows if r["model"].startswith(series)]
        if len(group) < 2:
            continue
        xs = [r["nodes"] for r in group]
        for phase in (*phases.CONVERT, "convert total"):
            ys = [r["convert_total"] if phase == "convert total" else r["convert"][phase] for r in group]
            fits.append({"series": series, "phase": phase, "slope": slope(xs, ys),
                         "per_node_ms": [1000 * y / x for x, y in zip(xs, ys)]})
    return {"rows": rows, "fits": fits, "batch": s.scale_train_batch}


# --------------------------------------------------------------------------- report

def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime

    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report(r: dict) -> str:
    m, c, t, i, mem = r["machine"], r["convert"], r["training"], r["inference"], r["memory"]
    a = t["analytic"]
    lines = [
        f"Run {r['date']} on {m['cpu']}, {m['cores']} cores (torch {m['torch']} with {m['torch_threads']} threads, "
        f"onnxruntime {m['onnxruntime']}); load average {r['load'][0]:.1f} at the start, {r['load'][1]:.1f} at the end; "
        f"{r['seconds']:.0f} s in all{' (--quick: numbers meaningless)' if r['quick'] else ''}.",
        "",
        f"| Measurement ({c['model']}) | AiM / aimgen | Baseline | Ratio | Target | Holds |",
        "|---|---|---|---|---|---|",
        f"| Convert: `aimgen convert` with validation{'' if c['onnx'] else ' (--no-onnx, floor without export)'} "
        f"vs the floor by hand | {c['aim_wall']:.1f} s | {c['floor_wall']:.1f} s | {c['ratio']:.2f}x | <= 1.5x | "
        f"{yes(c['ratio'] <= 1.5)} |",
        f"| Convert: aimgen's planning + codegen + rendering, share of the total | {c['own']:.2f} s | "
        f"{c['aim_wall']:.1f} s | {100 * c['own_share']:.1f}% | <= 10% | {yes(c['own_share'] <= 0.10)} |",
        f"| Training step, forward + backward, batch {t['batch']}: AiM vs base | {t['aim']:.2f} s | {t['base']:.2f} s | "
        f"{t['ratio']:.2f}x | <= 1.10x | {yes(t['ratio'] <= 1.10)} |",
        f"| Training: analytic MAC increase (taps {100 * a['taps'] / a['base']:.2f}% + update blocks "
        f"{100 * a['updates'] / a['base']:.2f}%); FlopCounterMode step: +{100 * t['counted_increase']:.2f}% | "
        f"{(a['base'] + a['taps'] + a['updates']) / 1e9:.3f} GMAC | {a['base'] / 1e9:.3f} GMAC | "
        f"+{100 * a['increase']:.2f}% | - | - |",
    ]
    validation = sum(v for k, v in c["aim_phases"].items() if k.startswith("validation"))
    floor_check = sum(c["floor_phases"].get(k, 0.0) for k in ("onnx export", "onnxruntime run"))
    if floor_check:
        lines.append(f"| Validation: all of aimgen's checks (fresh process, ONNX export + checker + parity + carry) "
                     f"vs the floor's export and one onnxruntime run | {validation:.1f} s | {floor_check:.1f} s | "
                     f"{validation / floor_check:.2f}x | - | - |")
    if i.get("available"):
        lines.append(f"| Export: `aimgen export` (stateless) of the AiM model vs `torch.onnx.export` of the base "
                     f"model (the plain rendering through `aimgen export`: {i['export_plain']:.1f} s) | "
                     f"{i['export_aim']:.1f} s | {i['export_base']:.1f} s | {i['export_aim'] / i['export_base']:.2f}x "
                     "| - | - |")
        lines.append(f"| Inference, onnxruntime batch 1 (1 thread): AiM stateless export vs base export | "
                     f"{1000 * i['aim']:.1f} ms | {1000 * i['base']:.1f} ms | {i['ratio']:.2f}x | <= 1.10x | "
                     f"{yes(i['ratio'] <= 1.10)} |")
    else:
        lines.append("| Inference, onnxruntime batch 1: AiM stateless export vs base export | n/a | n/a | n/a "
                     f"({i['why']}) | <= 1.10x | n/a |")
    lines += [
        f"| Memory: peak RSS of `aimgen convert` (largest process) vs the floor | {c['aim_peak_rss_mb']:.0f} MB | "
        f"{c['floor_peak_rss_mb']:.0f} MB | {c['aim_peak_rss_mb'] / c['floor_peak_rss_mb']:.2f}x | - | - |",
        f"| Memory: training step peak (tensors, counted exactly), batch {t['batch']}: AiM vs base | "
        f"{mem['aim']['tensor_peak_mb']:.0f} MB | {mem['base']['tensor_peak_mb']:.0f} MB | {mem['ratio']:.2f}x | "
        f"<= 1.15x | {yes(mem['ratio'] <= 1.15)} |",
        f"| Memory: training step peak (RSS growth, noisy), batch {t['batch']}: AiM vs base | "
        f"{mem['aim']['step_mb']:.0f} MB | {mem['base']['step_mb']:.0f} MB | {mem['rss_ratio']:.2f}x | - | - |",
        "",
        f"Where the time of a conversion goes ({c['model']}, medians of {len(c['runs']['aim'])} runs; "
        f"seconds inside each process, the rest of the wall time is process start and exit):",
        "",
        "| aimgen convert phase | s | share | | floor phase | s |",
        "|---|---|---|---|---|---|",
    ]
    aim_rows = sorted(c["aim_phases"].items(), key=lambda kv: -kv[1])
    floor_rows = list(c["floor_phases"].items())
    for k in range(max(len(aim_rows), len(floor_rows))):
        left = (f"{aim_rows[k][0]} | {aim_rows[k][1]:.2f} | {100 * aim_rows[k][1] / c['aim_wall']:.1f}%"
                if k < len(aim_rows) else " | | ")
        right = f"{floor_rows[k][0]} | {floor_rows[k][1]:.2f}" if k < len(floor_rows) else " | "
        lines.append(f"| {left} | | {right} |")
    lines.append(f"| **wall** | **{c['aim_wall']:.2f}** | | | **wall** | **{c['floor_wall']:.2f}** |")
    lines += ["", f"Where a training step's extra time goes ({c['model']}, batch {t['batch']}, one profiled step per arm; "
              "self CPU time per op, the ops that grew most):", "",
              "| op | base ms | AiM ms | extra ms |", "|---|---|---|---|"]
    for row in t["profile"]:
        lines.append(f"| {row['op']} | {row['base_ms']:.0f} | {row['aim_ms']:.0f} | {row['extra_ms']:+.0f} |")
    sc = r["scaling"]
    lines += [
        "",
        f"Scaling: in-process `aimgen.convert` (no validation), seconds per phase (median of "
        f"{r['settings']['scale_convert_reps']}), and one training step at batch {sc['batch']}:",
        "",
        "| Model | fx nodes | taps | trace | shapes | plan | codegen | render | convert | ms/node | "
        "train base | train AiM | overhead | MAC increase |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sc["rows"]:
        cv, tr = row["convert"], row["train"]
        lines.append(
            f"| {row['model']} | {row['nodes']} | {row['taps']} | " +
            " | ".join(f"{cv[k]:.3f}" for k in phases.CONVERT) +
            f" | {row['convert_total']:.2f} | {1000 * row['convert_total'] / row['nodes']:.2f} | "
            f"{tr['base']:.2f} s | {tr['aim']:.2f} s | {tr['ratio']:.2f}x | +{100 * row['mac_increase']:.2f}% |")
    if sc["fits"]:
        lines += ["", "Growth with the number of fx nodes (log-log slope: 1 = linear, 2 = quadratic; "
                  "flagged above 1.2):", "", "| Series | Phase | Slope | ms per node, smallest to largest | |",
                  "|---|---|---|---|---|"]
        for f in sc["fits"]:
            flag = "**superlinear**" if f["slope"] > 1.2 else "linear or better"
            lines.append(f"| {f['series']} | {f['phase']} | {f['slope']:.2f} | "
                         f"{' / '.join(f'{v:.3f}' for v in f['per_node_ms'])} | {flag} |")
    return "\n".join(lines) + "\n"


def update_readme(table: str, start: str = START, end: str = END) -> None:
    text = README.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{README}: no {start} ... {end} markers to put the tables between")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    README.write_text(f"{head}{start}\n{table}{end}{tail}")


def finish(results: dict, render, args, started: float, load0: float, markers: tuple[str, str] = (START, END)) -> int:
    """Time and load into ``results``; print its tables (``render(results)``) and write them
    where ``args`` asks (``--json``, ``--out``, ``--readme`` between ``markers``)."""
    results["seconds"] = time.perf_counter() - started
    results["load"] = (load0, os.getloadavg()[0])
    table = render(results)
    print(table, end="")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    if getattr(args, "out", None):
        Path(args.out).write_text(table)
    if args.readme:
        update_readme(table, *markers)
    return 0


# --------------------------------------------------------------------------- main

SECTIONS = ("convert", "training", "inference", "memory", "scaling")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny models, one repetition: a smoke test")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--out", metavar="PATH", help="also write the Markdown tables to PATH")
    p.add_argument("--readme", action="store_true", help="write the tables into the top-level README.md")
    p.add_argument("--threads", type=int, help="torch threads for the in-process training steps (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = Settings.quick() if args.quick else Settings()
    phases.instrument()
    started = time.perf_counter()
    load0 = os.getloadavg()[0]
    results: dict = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "quick": args.quick, "settings": s.__dict__, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="aimgen-bench-") as folder:
        tmp = Path(folder)
        results["convert"] = bench_convert(s, tmp)
        conversion, _, base = convert_in_process(s.model)
        aim_py = tmp / "aim.py"
        conversion.write(aim_py, validate=False)
        results["training"] = bench_training(s, conversion, base)
        results["inference"] = bench_inference(s, aim_py, base, tmp)
        results["memory"] = bench_train_memory(s, aim_py)
        results["scaling"] = bench_scaling(s)
    return finish(results, report, args, started, load0)


if __name__ == "__main__":
    sys.exit(main())
