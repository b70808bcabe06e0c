"""mobilenet_v2 in onnxruntime: what the memory's sum costs where ReLU6 follows a tapped conv,
and the ways of writing ReLU6 that were tried against it.

    python benchmarks/relu6.py        # about 2 minutes on 2 cores

In the base graph onnxruntime fuses every Conv with its ReLU6 (``Clip``) and runs them in its
blocked NCHWc layout. In the AiM graph the memory's product is a second input summed into the
tapped Conv; onnxruntime's NCHWc pass fuses Relu, Sigmoid and Tanh after such a sum, not Clip,
so each tapped layer leaves the blocked layout for its Clip and comes back. The arms rewrite
the AiM graph's Clip(0, 6) nodes as the same function in other operations and time each at
batch 1 on one thread, interleaved with the base graph, in one run:

- ``sum``: the AiM graph as ``aimgen export`` writes it;
- ``relu-min``: Min(Relu(y), 6), so that the Relu fuses into the Conv with its sum;
- ``relu-relu``: 6 - Relu(6 - Relu(y)), every operation one the NCHWc pass keeps blocked;
- ``no-nchwc`` (both graphs): onnxruntime's NCHWc pass turned off, where its generic
  Conv + Add + activation fusion takes Clip.

Prints the node counts of each optimized graph and the medians, as a Markdown table.
"""
from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import aimgen  # noqa: E402
import models  # noqa: E402
from run import log, median, ort_session  # noqa: E402

COUNTED = ("Conv", "ReorderInput", "ReorderOutput", "Clip", "Min", "Relu", "BatchNormalization")


def rewrite_clips(source: Path, target: Path, how: str) -> None:
    """``target``: ``source`` with every Clip written ``how`` ('relu-min' or 'relu-relu')."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.shape_inference.infer_shapes(onnx.load(source))
    graph = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    names: set[str] = set()
    graph.initializer.extend([numpy_helper.from_array(np.array(6, np.float32), "relu6_six"),
                              numpy_helper.from_array(np.array(-1, np.float32), "relu6_minus_one")])
    nodes = []
    for node in graph.node:
        if node.op_type != "Clip":
            nodes.append(node)
            continue
        y, out = node.input[0], node.output[0]
        if how == "relu-min":
            nodes += [helper.make_node("Relu", [y], [f"{out}__relu6"]),
                      helper.make_node("Min", [f"{out}__relu6", "relu6_six"], [out])]
        elif how == "relu-bn":  # 6 - relu(6 - relu(y)), each 6 - z a BatchNormalization (scale -1, bias 6)
            channels = shapes[y][1]
            for name, value in (("scale", -1.0), ("bias", 6.0), ("mean", 0.0), ("var", 1.0 - 1e-5)):
                tensor = f"relu6_{name}_{channels}"
                if tensor not in names:
                    names.add(tensor)
                    graph.initializer.append(numpy_helper.from_array(np.full(channels, value, np.float32), tensor))
            bn = [f"relu6_{name}_{channels}" for name in ("scale", "bias", "mean", "var")]
            nodes += [helper.make_node("Relu", [y], [f"{out}__relu6_0"]),
                      helper.make_node("BatchNormalization", [f"{out}__relu6_0", *bn], [f"{out}__relu6_1"]),
                      helper.make_node("Relu", [f"{out}__relu6_1"], [f"{out}__relu6_2"]),
                      helper.make_node("BatchNormalization", [f"{out}__relu6_2", *bn], [out])]
        else:  # 6 - relu(6 - relu(y)) with Mul by -1 and Add of 6
            steps = [("Relu", []), ("Mul", ["relu6_minus_one"]), ("Add", ["relu6_six"]), ("Relu", []),
                     ("Mul", ["relu6_minus_one"]), ("Add", ["relu6_six"])]
            previous = y
            for i, (op, extra) in enumerate(steps):
                name = out if i == len(steps) - 1 else f"{out}__relu6_{i}"
                nodes.append(helper.make_node(op, [previous, *extra], [name]))
                previous = name
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, target)


def session(path: Path, nchwc: bool = True):
    return ort_session(path, optimized=path.with_suffix(".opt.onnx" if nchwc else ".nonchwc.onnx"),
                       disabled=() if nchwc else ("NchwcTransformer",))


def node_counts(path: Path) -> dict[str, int]:
    import onnx

    counts = collections.Counter(n.op_type for n in onnx.load(path).graph.node)
    return {op: counts[op] for op in COUNTED} | {"all": sum(counts.values())}


def main() -> int:
    from aimgen.export import export_file

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base, shape = models.build("mobilenet_v2"), models.INPUTS["mobilenet_v2"]
        log("converting and exporting mobilenet_v2 (plain rendering and AiM)")
        for kind, plain in (("base", True), ("sum", False)):
            aimgen.convert(base, [shape], plain=plain, source_name="mobilenet_v2").write(
                tmp / f"{kind}.py", validate=False, force=True)
            export_file(tmp / f"{kind}.py", tmp / f"{kind}.onnx", force=True)
        for how in ("relu-min", "relu-relu", "relu-bn"):
            rewrite_clips(tmp / "sum.onnx", tmp / f"{how}.onnx", how)
        arms = {"base": (tmp / "base.onnx", True), "sum": (tmp / "sum.onnx", True),
                "relu-min": (tmp / "relu-min.onnx", True), "relu-relu": (tmp / "relu-relu.onnx", True),
                "relu-bn": (tmp / "relu-bn.onnx", True),
                "base, no-nchwc": (tmp / "base.onnx", False), "sum, no-nchwc": (tmp / "sum.onnx", False)}
        sessions = {arm: session(path, nchwc) for arm, (path, nchwc) in arms.items()}
        counts = {arm: node_counts(path.with_suffix(".opt.onnx" if nchwc else ".nonchwc.onnx"))
                  for arm, (path, nchwc) in arms.items()}
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        feeds = {arm: {s.get_inputs()[0].name: x} for arm, s in sessions.items()}
        reference = sessions["sum"].run(None, feeds["sum"])[0]
        for arm in ("relu-min", "relu-relu", "relu-bn", "sum, no-nchwc"):
            diff = float(np.abs(sessions[arm].run(None, feeds[arm])[0] - reference).max())
            assert diff < 1e-4, f"{arm} computes another function (max abs difference {diff})"
        log("timing (15 rounds of 5 runs, arms interleaved)")
        times: dict[str, list[float]] = {arm: [] for arm in sessions}
        names = list(sessions)
        for r in range(15):
            for arm in names if r % 2 == 0 else names[::-1]:
                for _ in range(5):
                    start = time.perf_counter()
                    sessions[arm].run(None, feeds[arm])
                    times[arm].append(time.perf_counter() - start)
    ms = {arm: median(t) * 1e3 for arm, t in times.items()}
    print(f"mobilenet_v2, onnxruntime batch 1, 1 thread; {time.perf_counter() - started:.0f} s\n")
    print("| graph | ms | vs base | nodes | " + " | ".join(COUNTED) + " |")
    print("|---|---|---|---|" + "---|" * len(COUNTED))
    for arm in names:
        c = counts[arm]
        print(f"| {arm} | {ms[arm]:.2f} | {ms[arm] / ms['base']:.2f}x | {c['all']} | "
              + " | ".join(str(c[op]) for op in COUNTED) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
