"""The two forms of a generated model side by side, against the base model, on four models.

    python benchmarks/forms.py                 # the full comparison (about 15 minutes on 2 cores)
    python benchmarks/forms.py --quick         # digits only, fewer repetitions (numbers rough)
    python benchmarks/forms.py --readme        # also write the table into the top-level README.md

Arms: ``base`` (the model as given), ``sum`` (aimgen's default form: base layers keep their
weights, each memory read is its own small product added to the layer's output) and
``literal`` (``--form literal``: each tapped layer reads ``cat([x, m])`` with a widened
weight). Both forms compute the same function (tests/test_literals.py holds them to 1e-5).

Per model, in one run, arms interleaved (A B C, then C B A, ...):
- the analytic MAC increase of the conversion (``flops.analytic``: the limit a ratio can reach);
- a training step (forward + backward + SGD step) at batch 8, ``train()`` mode; for ``digits``
  a whole epoch over scikit-learn's digits training split (1,078 images, batch 32), where fixed
  per-call overheads weigh most;
- onnxruntime inference at batch 1 on one thread, each arm exported by ``aimgen export`` (the
  base through aimgen's plain rendering, so exporter and settings are the same);
- the peak memory of one training step at batch 8: the tensors the step holds at its peak,
  counted exactly (tensor_memory.py; one process per arm, see train_child.py), beside the
  noisier growth of the process's RSS.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import aimgen  # noqa: E402
import flops  # noqa: E402
import models  # noqa: E402
from run import finish, log, machine, median, ort_session, run_child  # noqa: E402

ARMS = ("base", "sum", "literal")
FORMS = ("sum", "literal")
MODELS = ("resnet50", "mobilenet_v2", "vit_tiny", "digits")
#: issue targets for the default (sum) form: (training, inference, training memory)
TARGETS = {"resnet50": (1.10, 1.10, 1.15), "mobilenet_v2": (1.15, 1.15, None), "vit_tiny": (1.15, 1.15, None),
           "digits": (1.30, None, None)}
START, END = "<!-- forms:start -->", "<!-- forms:end -->"


def order(rep: int) -> tuple[str, ...]:
    return ARMS if rep % 2 == 0 else ARMS[::-1]


def train_steps(arms: dict, shape, batch: int, reps: int) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn((batch,) + tuple(shape[1:]))
    y = torch.randint(0, 10, (batch,))
    opts = {name: torch.optim.SGD(m.parameters(), lr=1e-4) for name, m in arms.items()}

    def step(name) -> float:
        model, opt = arms[name].train(), opts[name]
        start = time.perf_counter()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {a: [] for a in arms}
    for name in arms:
        step(name)  # warm-up
    for rep in range(reps):
        for name in order(rep):
            times[name].append(step(name))
    return {a: median(t) for a, t in times.items()}


def digits_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's digits training split (60%, seeded) in batches of 32: one epoch."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(data.target)
    g = torch.Generator().manual_seed(0)
    train = torch.randperm(len(y), generator=g)[: int(0.6 * len(y))]
    return [(x[train[i:i + 32]], y[train[i:i + 32]]) for i in range(0, len(train), 32)]


def digits_epochs(arms: dict, reps: int) -> dict[str, float]:
    batches = digits_batches()
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in arms.items()}

    def epoch(name) -> float:
        model, opt = arms[name].train(), opts[name]
        start = time.perf_counter()
        for xb, yb in batches:
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {a: [] for a in arms}
    for name in arms:
        epoch(name)
    for rep in range(reps):
        for name in order(rep):
            times[name].append(epoch(name))
    return {a: median(t) for a, t in times.items()}


def inference(files: dict[str, Path], shape, tmp: Path, rounds: int, runs: int) -> dict[str, float]:
    import numpy as np
    from aimgen.export import export_file

    sessions = {}
    for arm, src in files.items():
        log(f"  export {arm}")
        target = tmp / f"{src.stem}.onnx"
        export_file(src, target, force=True)
        sessions[arm] = ort_session(target)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feeds = {arm: {sess.get_inputs()[0].name: x} for arm, sess in sessions.items()}
    for arm, sess in sessions.items():
        for _ in range(3):
            sess.run(None, feeds[arm])
    times: dict[str, list[float]] = {a: [] for a in sessions}
    for r in range(rounds):
        for arm in order(r):
            for _ in range(runs):
                start = time.perf_counter()
                sessions[arm].run(None, feeds[arm])
                times[arm].append(time.perf_counter() - start)
    return {a: median(t) for a, t in times.items()}


def train_memory(name: str, files: dict[str, Path], batch: int) -> dict[str, float]:
    out = {}
    for arm in ARMS:
        target = name if arm == "base" else str(files[arm])
        child = run_child([str(HERE / "train_child.py"), "base" if arm == "base" else "aim", target, str(batch)])
        result = child.result("TRAIN_RESULT")
        out[arm], out[f"{arm}_rss"] = result["tensor_peak_mb"], result["step_mb"]
    return out


def bench_model(name: str, quick: bool, tmp: Path) -> dict:
    log(f"{name}: converting (sum and literal)")
    base = models.build(name)
    shape = models.INPUTS[name]
    conversions = {form: aimgen.convert(base, [shape], options=aimgen.Options(form=form), source_name=name)
                   for form in FORMS}
    files = {"base": tmp / f"{name}_plain.py"}
    aimgen.convert(base, [shape], plain=True, source_name=name).write(files["base"], validate=False, force=True)
    arms = {"base": base}
    for form, conversion in conversions.items():
        files[form] = tmp / f"{name}_{form}.py"
        conversion.write(files[form], validate=False, force=True)
        arms[form] = conversion.build()
    row = {"model": name, "mac_increase": flops.analytic(conversions["sum"])["increase"],
           "param_increase": conversions["sum"].plan.aim_params / conversions["sum"].plan.base_params - 1,
           "taps": len(conversions["sum"].plan.taps), "updates": len(conversions["sum"].plan.updates)}
    if name == "digits":
        log(f"{name}: epochs")
        row["train"], row["train_unit"] = digits_epochs(arms, 3 if quick else 5), "epoch"
    else:
        log(f"{name}: training steps")
        row["train"], row["train_unit"] = train_steps(arms, shape, 8, 2 if quick else 5), "step, batch 8"
    if name != "digits" or quick:
        log(f"{name}: onnxruntime")
        row["infer"] = inference(files, shape, tmp, 3 if quick else 10, 3 if quick else 5)
    if name == "resnet50" or quick:
        log(f"{name}: training memory")
        row["memory"] = train_memory(name, files, 8)
    return row


def ratio(values: dict | None, arm: str) -> float | None:
    return None if not values else values[arm] / values["base"]


def cell(values: dict | None, arm: str, target: float | None) -> str:
    r = ratio(values, arm)
    if r is None:
        return "-"
    mark = "" if target is None or arm != "sum" else (" ✓" if r <= target else " ✗")
    return f"{r:.2f}x{mark}"


def report(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} on {m['cpu']}, {m['cores']} cores (torch {m['torch']}, {m['torch_threads']} threads; "
             f"onnxruntime {m['onnxruntime']}, 1 thread); load average {r['load'][0]:.1f} at the start, "
             f"{r['load'][1]:.1f} at the end; {r['seconds']:.0f} s{' (--quick)' if r['quick'] else ''}. "
             "Ratios against the base model in the same run; ✓/✗: the default (sum) form against its target.", "",
             "| Model | MAC increase | training: sum | training: literal | target | inference: sum | "
             "inference: literal | target | training memory (tensor peak): sum | literal | target |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        t_train, t_infer, t_mem = TARGETS.get(row["model"], (None, None, None))
        fmt = (lambda t: f"<= {t:.2f}x" if t else "-")
        lines.append(
            f"| {row['model']} ({row['train_unit']}) | +{100 * row['mac_increase']:.2f}% | "
            f"{cell(row['train'], 'sum', t_train)} | {cell(row['train'], 'literal', None)} | {fmt(t_train)} | "
            f"{cell(row.get('infer'), 'sum', t_infer)} | {cell(row.get('infer'), 'literal', None)} | {fmt(t_infer)} | "
            f"{cell(row.get('memory'), 'sum', t_mem)} | {cell(row.get('memory'), 'literal', None)} | {fmt(t_mem)} |")
    lines += ["", "Absolute medians (seconds; training memory in MB, counted tensors and, in brackets, RSS growth):",
              "", "| Model | training base / sum / literal | inference base / sum / literal | memory base / sum / literal |",
              "|---|---|---|---|"]
    for row in r["rows"]:
        def triple(values, unit=1.0, digits=3):
            return " / ".join(f"{values[a] * unit:.{digits}f}" for a in ARMS) if values else "-"
        memory = row.get("memory")
        rss = " (" + " / ".join(f"{memory[f'{a}_rss']:.0f}" for a in ARMS) + ")" if memory else ""
        lines.append(f"| {row['model']} | {triple(row['train'])} | {triple(row.get('infer'), 1000, 2)} ms | "
                     f"{triple(memory, 1, 0)}{rss} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="digits only, fewer repetitions")
    p.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--readme", action="store_true", help="write the table into the top-level README.md")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: steadier ratios on a shared machine, as onnxruntime's)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else (["digits"] if args.quick else list(MODELS))
    started, load0 = time.perf_counter(), os.getloadavg()[0]
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "quick": args.quick, "machine": machine(), "rows": []}
    with tempfile.TemporaryDirectory(prefix="aimgen-forms-") as folder:
        for name in names:
            results["rows"].append(bench_model(name, args.quick, Path(folder)))
    return finish(results, report, args, started, load0, (START, END))


if __name__ == "__main__":
    sys.exit(main())
