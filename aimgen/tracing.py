"""Tracing with torch.fx and shape propagation at the example input.

Two things torch.fx gets wrong for us are handled here:
- ``self.training`` is read as a Python bool while tracing, so the branch taken is baked in.
  We trace twice (train and eval). Where the two graphs differ only by constants that are True
  in train mode and False in eval mode, those constants become ``self.training`` in the output.
  Where the structure differs, the smallest submodule responsible is kept as a leaf when its
  code can be carried over, otherwise the conversion is refused naming the module and line.
- Its code generator is never used, not even through ``fx.GraphModule`` (which pastes
  ModuleDict keys into code it executes): the graph is interpreted against the user's module
  directly, and aimgen writes the forward itself (see codegen.py).
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import TensorMetadata, _extract_tensor_metadata

from .errors import TraceError

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)


class AimTracer(fx.Tracer):
    """torch.fx's tracer with extra leaf modules (by qualified name) and stack traces on."""

    def __init__(self, leaf_names: frozenset[str] = frozenset()):
        super().__init__()
        self.leaf_names = leaf_names
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaf_names:
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as err:
            # the innermost module being traced when tracing failed: the smallest candidate leaf
            if not hasattr(err, "_aimgen_module"):
                try:
                    err._aimgen_module = self.path_of_module(m)
                except Exception:
                    pass
            raise


@dataclass
class Traced:
    """The eval-mode graph, with shapes, and where train/eval differ only by a flag."""

    root: nn.Module
    graph: fx.Graph
    # node name -> paths (tuples of arg/kwarg keys) of constants that are ``self.training``
    training_flags: dict[str, list[tuple]] = field(default_factory=dict)
    leaf_names: frozenset[str] = frozenset()
    # submodules aimgen chose to keep whole -> why (file:line of the code that forced it)
    leaf_reasons: dict[str, str] = field(default_factory=dict)
    outputs: Any = None

    @property
    def nodes(self) -> list[fx.Node]:
        return list(self.graph.nodes)


def _user_location(err: BaseException) -> str | None:
    """file:line of the innermost frame of user code (outside torch and aimgen)."""
    here = str(Path(__file__).resolve().parent)
    loc = None
    for frame in traceback.extract_tb(err.__traceback__):
        fname = str(Path(frame.filename).resolve()) if frame.filename else ""
        if fname.startswith(_TORCH_DIR) or fname.startswith(here) or not fname.endswith(".py"):
            continue
        loc = f"{frame.filename}:{frame.lineno} (`{(frame.line or '').strip()}`)"
    return loc


def _stack_location(node: fx.Node) -> str | None:
    """file:line (`code`) of the innermost user frame in a node's recorded stack trace."""
    here = str(Path(__file__).resolve().parent)
    lines = (node.meta.get("stack_trace") or "").splitlines()
    loc = None
    for i, line in enumerate(lines):
        m = re.match(r'\s*File "(.+)", line (\d+), in ', line)
        if not m:
            continue
        fname = str(Path(m.group(1)).resolve())
        if fname.startswith(_TORCH_DIR) or fname.startswith(here):
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) else ""
        loc = f"{m.group(1)}:{m.group(2)} (`{code}`)"
    return loc


def _trace_once(model: nn.Module, leaf_names: frozenset[str], training: bool) -> fx.Graph:
    was = model.training
    model.train(training)
    try:
        return AimTracer(leaf_names).trace(model)
    finally:
        model.train(was)


def _flatten(value, path=()):
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _flatten(v, path + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, path + (k,))
    elif isinstance(value, slice):
        for k in ("start", "stop", "step"):
            yield from _flatten(getattr(value, k), path + (k,))
    else:
        yield path, value


def _compare(train: fx.Graph, evalg: fx.Graph):
    """Flags where the graphs differ by True/False only; or the first eval node that differs."""
    flags: dict[str, list[tuple]] = {}
    tn, en = list(train.nodes), list(evalg.nodes)
    for a, b in zip(tn, en):
        if (a.op, a.target, a.name) != (b.op, b.target, b.name):
            return None, _deeper(a, b)
        fa = list(_flatten((a.args, a.kwargs)))
        fb = list(_flatten((b.args, b.kwargs)))
        if [p for p, _ in fa] != [p for p, _ in fb]:
            return None, _deeper(a, b)
        for (path, va), (_, vb) in zip(fa, fb):
            if isinstance(va, fx.Node) or isinstance(vb, fx.Node):
                if not (isinstance(va, fx.Node) and isinstance(vb, fx.Node) and va.name == vb.name):
                    return None, _deeper(a, b)
            elif va is True and vb is False:
                flags.setdefault(b.name, []).append(path)
            elif type(va) is not type(vb) or va != vb:
                return None, _deeper(a, b)
    if len(tn) != len(en):
        return None, en[min(len(tn), len(en)) - 1]
    return flags, None


def _deeper(a: fx.Node, b: fx.Node) -> fx.Node:
    """Of the first two nodes that differ, the one inside the deeper module: the other may just
    be where the shorter graph goes on (the root's next node)."""
    if a.op == "output":
        return b
    if b.op == "output":
        return a
    return a if _module_of(a).count(".") + bool(_module_of(a)) > _module_of(b).count(".") + bool(_module_of(b)) else b


def _module_of(node: fx.Node) -> str:
    """The module whose forward made the node (for a call_module node: its caller)."""
    stack = node.meta.get("nn_module_stack") or {}
    for key, (qual, _cls) in reversed(list(stack.items())):
        qual = qual if isinstance(qual, str) else key
        if node.op == "call_module" and qual == node.target:
            continue
        return qual
    return ""


def trace(model: nn.Module, leaf_names: frozenset[str] = frozenset(), source: str = "the model") -> Traced:
    """Trace in train and eval mode and reconcile ``self.training`` as described above.

    A submodule torch.fx cannot trace (control flow on a tensor value, ``len`` of a traced
    tensor, ...) is kept whole as a leaf, the innermost one first; code in the root module's own
    forward cannot be, and is refused with its file and line."""
    leaves = frozenset(leaf_names)
    reasons: dict[str, str] = {}
    for _ in range(64):
        try:
            g_train = _trace_once(model, leaves, True)
            g_eval = _trace_once(model, leaves, False)
        except Exception as err:
            loc = _user_location(err) or source
            first = str(err).splitlines()[0] if str(err) else ""
            qual = getattr(err, "_aimgen_module", "")
            if qual and qual not in leaves:
                reasons[qual] = f"torch.fx cannot trace it ({type(err).__name__}: {first} at {loc})"
                leaves = leaves | {qual}
                continue
            raise TraceError(
                f"torch.fx cannot trace {source}: {type(err).__name__}: {first} at {loc}"
                f"{' (in ' + qual + ', listed as a leaf)' if qual else ' (in the root module forward)'}.",
                hint="Control flow on tensor values and len() of a traced tensor cannot be traced; "
                "move that code into a submodule (aimgen then keeps it whole as a leaf), or list a module "
                "with --leaf NAME, or make it shape-free.",
            ) from err
        flags, culprit = _compare(g_train, g_eval)
        if flags is not None:
            return Traced(root=model, graph=g_eval, training_flags=flags, leaf_names=leaves,
                          leaf_reasons=reasons)
        qual = _module_of(culprit)
        loc = _stack_location(culprit) or source
        if not qual or qual in leaves:
            raise TraceError(
                f"{source}: the forward of {'the root module' if not qual else qual} takes a different "
                f"path in train() and eval() mode (`if self.training` or similar), near {loc}; "
                "torch.fx would bake in one branch.",
                hint="Move the branch into a submodule (it is then kept whole as a leaf), or make it "
                "branch-free, e.g. F.dropout(x, p, self.training).",
            )
        reasons[qual] = f"its forward depends on self.training (near {loc})"
        leaves = leaves | {qual}
    raise TraceError(f"{source}: too many modules depend on self.training or cannot be traced.")


class _ShapeProp(fx.Interpreter):
    """Records ``tensor_meta`` like torch.fx's ShapeProp, on the user's module itself."""

    def __init__(self, root: nn.Module, graph: fx.Graph, source: str):
        super().__init__(root, garbage_collect_values=True, graph=graph)
        self.source = source

    def run_node(self, n: fx.Node):
        try:
            result = super().run_node(n)
            if isinstance(result, torch.Tensor):
                n.meta["tensor_meta"] = _extract_tensor_metadata(result)
            n.meta["type"] = type(result)
            return result
        except TraceError:
            raise
        except Exception as err:
            qual = n.target if n.op == "call_module" else _module_of(n)
            mod = self.module.get_submodule(n.target) if n.op == "call_module" else None
            shapes = [
                tuple(a.meta["tensor_meta"].shape) for a in n.all_input_nodes
                if isinstance(a.meta.get("tensor_meta"), TensorMetadata)
            ]
            what = f"layer {qual} ({type(mod).__name__})" if mod is not None else f"operation {n.name}" + (
                f" in {qual}" if qual else "")
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TraceError(
                f"{self.source}: running the model on the example input failed at {what} with input "
                f"shapes {shapes}: {first}",
                hint="Check --input-shape (one per model input, batch first, e.g. 1,3,224,224).",
            ) from err


def propagate_shapes(traced: Traced, inputs: tuple[torch.Tensor, ...], source: str) -> Any:
    """Run the eval graph on the example inputs (no grad, eval mode) and record shapes."""
    model = traced.root
    was = model.training
    model.eval()
    try:
        n_placeholders = sum(1 for n in traced.graph.nodes if n.op == "placeholder")
        if n_placeholders != len(inputs):
            names = [n.target for n in traced.graph.nodes if n.op == "placeholder"]
            raise TraceError(
                f"{source}: the model takes {n_placeholders} input(s) ({', '.join(names)}) but "
                f"{len(inputs)} --input-shape was given.",
                hint="Give one --input-shape per model input, in order.",
            )
        with torch.no_grad():
            out = _ShapeProp(model, traced.graph, source).run(*inputs)
        traced.outputs = out
        return out
    finally:
        model.train(was)


def tensor_meta(node: fx.Node) -> TensorMetadata | None:
    meta = node.meta.get("tensor_meta")
    return meta if isinstance(meta, TensorMetadata) else None
