"""Shapes: running the captured graph on the example inputs.

Three facts come from here, recorded on each node's ``meta``:
- ``tensor_meta``: shape and dtype at the example input (a concrete run, no grad, eval mode);
- ``batch_axis_ok``: whether the tensor's first axis follows the batch (taps and update blocks
  line the memory up per sample, so they need it); ``batch_second``: whether, instead, its
  second axis does (a sequence-first (L, N, E) tensor, as nn.MultiheadAttention takes by default);
- ``sample_rows``: where the first axis does not follow the batch, whether its rows are windows
  (or other pieces) of the samples, sample by sample: ``N * w`` rows, those of sample ``i`` at
  ``i * w ... (i + 1) * w - 1`` (Swin's and RegionViT's window attention); a Linear on them can
  read each sample's memory, repeated for its windows; ``sample_free``: whether it is the same
  whatever the input (a table of relative positions that a bias MLP reads);
- ``size``: its shape as symbolic expressions of the input sizes (``(s0 - 1)//4 + 1``), from a
  run on fake tensors whose batch and spatial sizes are symbols (torch's FakeTensorMode with a
  ShapeEnv). Two sizes with the same expression are equal at *every* input size, which is what
  placing update blocks at resolution stages needs. Where a model cannot run symbolically
  (data-dependent control flow in a kept leaf, a pad of symbolic size...), a second concrete
  run at another batch and spatial size stands in (see ``second_run``).
"""
from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import TensorMetadata, _extract_tensor_metadata

from .errors import TraceError
from .tracing import Traced, module_of, op_name, stack_location


def _fresh(value: Any) -> Any:
    """A node's list arguments as new lists, as the model's own code (and the generated code)
    passes them on each call: torch.fx stores them as immutable lists, and a function that
    changes its argument in place (torchvision's swin3d window sizes) fails on those."""
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if type(value) is tuple:
        return tuple(_fresh(v) for v in value)
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value


class _Runner(fx.Interpreter):
    """torch.fx's Interpreter, each call given fresh lists (see ``_fresh``)."""

    def fetch_args_kwargs_from_env(self, n: fx.Node):
        args, kwargs = super().fetch_args_kwargs_from_env(n)
        return _fresh(args), _fresh(kwargs)


class _ShapeProp(_Runner):
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
            qual = n.target if n.op == "call_module" else module_of(n)
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
                cause=_where(n),
            ) from err


def _scaled(inputs: tuple[torch.Tensor, ...], scale: int) -> tuple[torch.Tensor, ...]:
    """The inputs with every size after the channels ``scale`` times the example's (random
    values); integer inputs (token ids) and inputs of two axes as they are."""
    return tuple(x.new_zeros(x.shape[0], x.shape[1], *[d * scale for d in x.shape[2:]]).normal_()
                 if scale != 1 and x.is_floating_point() and x.dim() > 2 else x for x in inputs)


def _where(n: fx.Node) -> str:
    """Where a node comes from, for a message: the model's file:line (`code`), else its name."""
    qual = module_of(n)
    return stack_location(n) or f"operation {n.name}" + (f" in {qual}" if qual else "")


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


def size_key(node: fx.Node) -> tuple:
    """The spatial size of a node's tensor (all axes after the channel axis), as symbolic
    expressions where they are known, else as the example's numbers."""
    sym = node.meta.get("size")
    if sym is not None:
        return tuple(sym[2:])
    meta = tensor_meta(node)
    return tuple(meta.shape[2:]) if meta is not None else ()


class _GaveUp(Exception):
    pass


#: the longest size expression the symbolic run takes on (a second concrete run stands in after
#: that). Window attention that reshapes by symbolic sizes can make torch's sympy simplification
#: grow without bound: torchvision's MaxViT-T doubles its expressions' length every few reshapes
#: (115, 405, 1,231, 3,705 characters), and a node then takes 20 to 90 s, where GCViT's longest
#: is 295 and MViT V2-S's 102. A length is the same on every machine: MaxViT now gives up at the
#: same node, in 10 s, wherever it runs.
SYMBOLIC_EXPRESSION_CHARS = 1000
#: and seconds, for runs that grow slow with short expressions: timm's GCViT-XXT takes 2 to 8 s
#: a reshape at 120 to 180 characters (89 s in all on 2 idle cores; it once ran for over ten
#: minutes, before any limit). MViT V2-S, the longest run that finishes, takes 24 s there; under
#: the 30 s this was, a loaded machine gave it other sizes, and other update blocks, than an idle
#: one: 60 s leaves it a margin of 2.5 times.
SYMBOLIC_SECONDS = 60.0


class _SymbolicProp(_Runner):
    """Records each tensor's shape as strings of symbolic expressions, within a time budget,
    and the first node whose run fixed an input size (``fixed_at``): a guard the shape
    environment added there fails with ``sizes`` (symbol -> size at the example) doubled, or a
    size became a constant (a reshape to sizes traced as numbers; but also a pad, whose fake
    kernel takes its input's sizes as numbers: a hint to check, not a finding)."""

    def __init__(self, *args, shape_env=None, sizes=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = time.monotonic() + SYMBOLIC_SECONDS
        self.shape_env, self.sizes = shape_env, sizes or {}
        self.fixed_at: fx.Node | None = None
        self._guards = 0

    def run_node(self, n: fx.Node):
        if time.monotonic() > self.deadline:
            raise _GaveUp(n.name)
        result = self._same_shape(n)
        if result is None and _pads_by_numbers(n, self.module):
            # torch's fake kernel of a pad takes its input's sizes as numbers (every size after
            # it was the example's); torch's Python one keeps them symbolic
            from torch._dispatch.python import enable_python_dispatcher

            with enable_python_dispatcher():
                result = super().run_node(n)
        elif result is None:
            result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["size"] = tuple(str(d) for d in result.shape)
            if max(map(len, n.meta["size"]), default=0) > SYMBOLIC_EXPRESSION_CHARS:
                raise _GaveUp(n.name)
        if self.fixed_at is None and self.sizes and self._fixes_a_size():
            self.fixed_at = n
        return result

    def _fixes_a_size(self) -> bool:
        """Whether the node just run fixed an input size (asked after every node: only the
        guards added since the last node are evaluated)."""
        import sympy

        env = self.shape_env
        new, self._guards = env.guards[self._guards:], len(env.guards)
        if any(s in env.replacements and not env.replacements[s].free_symbols for s in self.sizes):
            return True
        if not new:
            return False
        known = env.backed_var_to_val if hasattr(env, "backed_var_to_val") else env.var_to_val
        doubled = {**known, **{s: 2 * v for s, v in self.sizes.items()}}
        return any(g.expr.xreplace(doubled) == sympy.false for g in new)

    def _same_shape(self, n: fx.Node) -> torch.Tensor | None:
        """The input itself for a layer whose output has its input's shape and dtype (a norm, an
        activation, dropout): only sizes are recorded here, and on fake tensors with symbolic sizes
        a BatchNorm alone took 60% of the run (resnet50: 106 of them, 1.5 s profiled)."""
        if n.op != "call_module" or len(n.args) != 1 or n.kwargs or not isinstance(n.args[0], fx.Node):
            return None
        if not isinstance(self.module.get_submodule(n.target), _SAME_SHAPE):
            return None
        x = self.env.get(n.args[0])
        return x if isinstance(x, torch.Tensor) and x.is_floating_point() else None


FAKE_BATCH = 7

#: torch.nn layers whose output has the shape and dtype of their one input
_SAME_SHAPE = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.modules.dropout._DropoutNd,
               nn.Identity, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
               nn.Hardsigmoid, nn.LeakyReLU, nn.ELU, nn.Mish, nn.PReLU, nn.Softplus)


def symbolic_sizes(traced: Traced, inputs: tuple[torch.Tensor, ...]) -> bool:
    """Record ``size`` and ``batch_axis_ok`` from a run on fake tensors with symbolic batch and
    spatial sizes. False (nothing recorded) when the model cannot run that way."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    import logging

    model = traced.root
    was = model.training
    quiet = logging.getLogger("torch._subclasses.fake_tensor")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a model that cannot run symbolically is not an error here
    try:
        mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
        fakes = []
        for i, x in enumerate(inputs):
            # a size of 1 is specialised by the ShapeEnv: the batch is drawn at an unusual size, so
            # where an operation specialises it anyway, that size shows it (see ``analyse``)
            real = x.expand(FAKE_BATCH, *x.shape[1:]) if x.shape[0] == 1 else x
            dims = [DimDynamic.DYNAMIC if (d == 0 or (d > 1 and x.is_floating_point())) and real.shape[d] > 1
                    else DimDynamic.STATIC for d in range(real.dim())]
            fakes.append(mode.from_tensor(real, symbolic_context=StatelessSymbolicContext(dynamic_sizes=dims)))
        batch = {str(f.shape[0]) for f in fakes}  # one symbol per input; broadcasting unifies them
        sizes = {f.shape[d].node.expr: int(x.shape[d]) for f, x in zip(fakes, inputs) for d in range(2, f.dim())
                 if isinstance(f.shape[d], torch.SymInt) and f.shape[d].node.expr.is_symbol}
        model.eval()
        prop = _SymbolicProp(model, graph=traced.graph, shape_env=mode.shape_env, sizes=sizes)
        with mode, torch.no_grad():
            prop.run(*fakes)
    except Exception:
        for n in traced.graph.nodes:
            n.meta.pop("size", None)
        return False
    finally:
        model.train(was)
        quiet.setLevel(level)
    if prop.fixed_at is not None:
        traced.size_fixed_at = _where(prop.fixed_at)   # a hint, checked by a run (see _sizes)
    for n in traced.graph.nodes:
        sym = n.meta.get("size")
        if tensor_meta(n) is not None:
            n.meta["batch_axis_ok"] = bool(sym and sym[0] in batch)
            n.meta["batch_second"] = bool(sym and len(sym) > 1 and sym[0] not in batch and sym[1] in batch)
    return True


def second_run(traced: Traced, specs, make_inputs, source_name: str, scale: int = 2) -> None:
    """Without symbolic sizes: run the model again at another batch size (and, where it allows,
    at twice the spatial size). An axis that follows the batch is the batch axis; a size that
    stays is fixed (channels), one that changes depends on the input size. Sizes are then
    compared as (size at the example, size at the second run): equal at both, as good a proof
    as two runs give."""
    first = {n.name: n.meta.get("tensor_meta") for n in traced.graph.nodes}
    b1 = specs[0].shape[0]
    b2 = b1 + 2
    second, failed_larger = None, None
    sized = any(spec.dtype.is_floating_point and len(spec.shape) > 2 for spec in specs)  # what _scaled scales
    for scale in sorted({scale, 1}, reverse=True):
        try:
            propagate_shapes(traced, _scaled(make_inputs(batch=b2), scale), source_name)
            second = {n.name: n.meta.get("tensor_meta") for n in traced.graph.nodes}
            break
        except TraceError as err:
            failed_larger = err.cause if scale > 1 and sized else None
    if second is not None and failed_larger is not None:   # it ran at the example's size only
        traced.size_fixed_at = failed_larger
    for n in traced.graph.nodes:
        m1 = first.get(n.name)
        if m1 is not None:
            n.meta["tensor_meta"] = m1
        if m1 is None or not hasattr(m1, "shape"):
            continue
        if second is None:  # a fixed-size model: trust the first run's leading axis
            n.meta["batch_axis_ok"] = None
            continue
        m2 = second.get(n.name)
        ok = m2 is not None and hasattr(m2, "shape") and len(m2.shape) == len(m1.shape)
        n.meta["batch_axis_ok"] = bool(ok and len(m1.shape) and m1.shape[0] == b1 and m2.shape[0] == b2)
        n.meta["batch_second"] = bool(ok and len(m1.shape) > 1 and not n.meta["batch_axis_ok"] and
                                      m1.shape[1] == b1 and m2.shape[1] == b2)
        if ok:
            n.meta["size"] = tuple(str(a) if a == b else f"{a}|{b}" for a, b in zip(m1.shape, m2.shape))


class _Values(_Runner):
    """Runs the graph and keeps the values of the nodes named in ``keep``."""

    def __init__(self, root: nn.Module, graph: fx.Graph, keep: set[str]):
        super().__init__(root, graph=graph)
        self.keep, self.values = keep, {}

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if n.name in self.keep and isinstance(result, torch.Tensor):
            self.values[n.name] = result
        return result


def _regroups(n: fx.Node) -> bool:
    """Whether the node may merge the batch axis with others: a view or reshape, or a flatten
    from axis 0 (``flatten(x, 1)`` keeps it)."""
    name = op_name(n)
    if name in ("view", "reshape", "_unsafe_view"):
        return True
    if name == "flatten" and not isinstance(n.target, torch._ops.OpOverload):
        start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
        return start == 0
    return False


def _tables(traced: Traced, batch_axis_ok: bool) -> list[fx.Node]:
    """The tensors of two or more axes whose first axis was found to follow the batch or not."""
    return [n for n in traced.graph.nodes if n.meta.get("batch_axis_ok") is batch_axis_ok and
            tensor_meta(n) is not None and len(tensor_meta(n).shape) >= 2]


@contextlib.contextmanager
def _evaluating(model: nn.Module):
    """``eval()`` and ``no_grad`` for the block; the mode it had after."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def sample_rows(traced: Traced, make_inputs) -> None:
    """Mark ``sample_rows`` on the tensors whose first axis does not follow the batch but holds
    the samples' rows in turn: run at batch 2 and on the second sample alone, such a tensor has
    twice the rows, and its second half is the second sample's. One row a sample at the example
    counts too (MaxViT's last stage: one 8 x 8 window at 256 x 256, more at larger sizes).
    ``sample_views``: the samples' views stacked view after view (RAFT's encoder on
    ``torch.cat([image1, image2])``): there the second sample's rows are every other row."""
    found = [n for n in _tables(traced, batch_axis_ok=False) if tensor_meta(n).dtype.is_floating_point]
    if not found:
        return
    try:
        pair = tuple(make_inputs(batch=2))
        runs = []
        for inputs in (pair, tuple(x[1:] for x in pair)):
            run = _Values(traced.root, traced.graph, {n.name for n in found})
            with _evaluating(traced.root):
                run.run(*inputs)
            runs.append(run.values)
    except Exception:   # a model that runs at the example's batch only: no windows found
        return
    both, second = runs
    for n in found:
        a, b = both.get(n.name), second.get(n.name)
        w = b.shape[0] if b is not None else 0
        rows = w >= 1 and a is not None and a.shape == (2 * w, *b.shape[1:])
        # to the scale of the values: at random weights a stage may compute values of 1e-3
        atol = 1e-5 * float(b.abs().max()) if rows and b.numel() else 0.0
        second_half = bool(rows and torch.allclose(a[w:], b, atol=atol, rtol=1e-4))
        first_half = bool(rows and torch.allclose(a[:w], b, atol=atol, rtol=1e-4))
        n.meta["sample_rows"] = second_half and not first_half
        if second_half and first_half:   # the samples cannot be told apart here (a LayerNorm of a
            # constant row gives zeros at random weights: HF MobileViT): rows an input holds in
            # turn, kept row for row by the operation, are still held in turn
            n.meta["sample_rows"] = _splits_samples(n) or any(
                m.meta.get("sample_rows") and both.get(m.name) is not None and both[m.name].shape[0] == 2 * w
                and second.get(m.name) is not None and second[m.name].shape[0] == w for m in n.all_input_nodes)
        # views stacked on the batch axis, view after view: the second sample's rows are every other
        n.meta["sample_views"] = bool(rows and w > 1 and not n.meta["sample_rows"] and
                                      torch.allclose(a[1::2], b, atol=atol, rtol=1e-4) and
                                      not torch.allclose(a[0::2], b, atol=atol, rtol=1e-4))
        # the same at batch 2 and for one sample: it does not depend on the input at all
        n.meta["sample_free"] = bool(a is not None and b is not None and a.shape == b.shape and torch.equal(a, b))


def _fails_larger(traced: Traced, make_inputs) -> str | None:
    """Where the traced graph fails at twice the example's size (batch 1, eval()), or None
    where it runs there."""
    run = _Shapes(traced.root, traced.graph)
    try:
        with _evaluating(traced.root):
            run.run(*_scaled(make_inputs(batch=1), 2))
        return None
    except Exception:   # noqa: BLE001 - any failure: the graph is for the example's size
        return _where(run.at) if run.at is not None else "the traced forward"


def _runs_larger(model: nn.Module, make_inputs) -> bool:
    """Whether the base model itself runs at twice the example's size (batch 1, eval())."""
    try:
        with _evaluating(model):
            model(*_scaled(make_inputs(batch=1), 2))
        return True
    except Exception:   # noqa: BLE001 - any failure: the base model is for that size only
        return False


def _splits_samples(n: fx.Node) -> bool:
    """Whether a node reshapes a batch-first tensor into more rows: reshapes keep the values'
    order, so each sample's values stay together and its rows come in turn, whatever the values
    (Hugging Face's MobileViT unfolds its last stage's map into (N * 4, 1, C) patches, all zeros
    at random weights)."""
    source = n.args[0] if n.args and isinstance(n.args[0], fx.Node) else None
    return _regroups(n) and source is not None and source.meta.get("batch_axis_ok") is True


def analyse(traced: Traced, specs, make_inputs, source_name: str) -> Any:
    """All shape facts: the concrete run (returns the model's outputs), then the symbolic sizes,
    or the two-batch check where those cannot be had, then the windows of the samples."""
    outputs = _sizes(traced, specs, make_inputs, source_name)
    if traced.size_fixed_at is not None and not _runs_larger(traced.root, make_inputs):
        traced.size_fixed_at = None   # the base model too runs at the example's size only
    larger_rows(traced, make_inputs)
    sample_rows(traced, make_inputs)
    return outputs


class _Shapes(_Runner):
    """Runs the graph and keeps the shape of every tensor."""

    def __init__(self, root: nn.Module, graph: fx.Graph):
        super().__init__(root, graph=graph)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.at: fx.Node | None = None   # the node running (where a failure happened)

    def run_node(self, n: fx.Node):
        self.at = n
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n.name] = tuple(result.shape)
        return result


def pads(node: fx.Node, root: nn.Module) -> bool:
    """Whether a node only pads its input (``F.pad``, ``nn.ZeroPad2d`` and torch's other padding
    layers, the exporter's ``constant_pad_nd``)."""
    if node.op == "call_module":
        return type(root.get_submodule(node.target)).__module__ == "torch.nn.modules.padding"
    return op_name(node) in ("pad", "constant_pad_nd")   # aten's OpOverloads too ("pad.default")


def _pads_by_numbers(node: fx.Node, root: nn.Module) -> bool:
    """Whether a node pads its input by amounts written as numbers (``nn.ZeroPad2d(1)``, or a
    pad whose amounts torch.export computed at capture: Hugging Face MobileNetV2's TF padding);
    not a pad by amounts the forward computes from sizes (Swin's to whole windows: on symbolic
    sizes those grow expressions that torch's simplifier can take minutes over)."""
    if not pads(node, root):
        return False
    amounts = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
    return node.op == "call_module" or (isinstance(amounts, (list, tuple)) and
                                        all(isinstance(a, int) for a in amounts))


#: the largest input scale a probe for windows runs at (its cost grows with the scale's square)
LARGEST_SCALE = 8


def outgrowing_scale(traced: Traced) -> int:
    """The input scale (2 or more) at which every map that was padded to the same size at both
    runs outgrows that size. Swin pads its last stage's map up to whole 7 x 7 windows: at a
    96 x 96 example (3 x 3) and at twice that (6 x 6) it is one window a sample, and the
    windows only show from 288 x 288 (9 x 9, padded to four windows). Read from the sizes of
    the second run ("a|b" where a size changed); a map that grows with the input is taken to
    grow in proportion to it."""
    scale = 2
    for n in traced.graph.nodes:
        if not pads(n, traced.root) or not n.args or not isinstance(n.args[0], fx.Node):
            continue
        before, after = n.args[0].meta.get("size") or (), n.meta.get("size") or ()
        for a, b in zip(before, after):
            if "|" in a and "|" not in b and a.split("|")[0].isdigit() and b.isdigit():
                scale = max(scale, int(b) // int(a.split("|")[0]) + 1)
    return min(scale, LARGEST_SCALE)


def larger_rows(traced: Traced, make_inputs) -> None:
    """A first axis taken for the batch, checked at a larger spatial size (batch 2): where it
    is not the batch there, it is not the batch axis. Symbolic sizes can take windows for the
    batch when the example has one window a sample (a (B * H/8 * W/8, 64, C) reshape at
    8 x 8): the tap there read one memory row a sample, and the model failed at 16 x 16. The
    size is twice the example's, or more where a map was padded to whole windows at both runs
    (``outgrowing_scale``). Only a graph that can regroup the batch axis (a view or reshape, a
    flatten from axis 0) is run: a CNN's (resnet50: 0.6 s) is not."""
    found = _tables(traced, batch_axis_ok=True)
    if not found or not any(_regroups(n) for n in traced.graph.nodes):
        return
    scale = outgrowing_scale(traced)
    try:
        run = _Shapes(traced.root, traced.graph)
        with _evaluating(traced.root):
            run.run(*_scaled(make_inputs(batch=2), scale))
    except Exception:   # a model for one size only: its first axes stand
        return
    for n in found:
        shape = run.shapes.get(n.name)
        if shape is not None and len(shape) >= 2 and shape[0] != 2:
            n.meta["batch_axis_ok"] = False


def _sizes(traced: Traced, specs, make_inputs, source_name: str) -> Any:
    inputs = make_inputs()
    outputs = propagate_shapes(traced, inputs, source_name)
    if not symbolic_sizes(traced, inputs):
        second_run(traced, specs, make_inputs, source_name)
        return outputs
    if traced.size_fixed_at is not None:   # a guard's hint that a size was fixed: ask a run
        traced.size_fixed_at = _fails_larger(traced, make_inputs)
    # an operation that specialised the batch (nn.Upsample's float scale does): ask a second run
    unsure = [n for n in traced.graph.nodes if (n.meta.get("size") or ("",))[0] == str(FAKE_BATCH)]
    if unsure:
        names = {n.name for n in unsure}
        kept = {n.name: (n.meta.get("size"), n.meta.get("batch_axis_ok")) for n in traced.graph.nodes}
        second_run(traced, specs, make_inputs, source_name, scale=1)
        for n in traced.graph.nodes:  # sizes stay symbolic; the batch axis from the run where unsure
            size, batch_ok = kept[n.name]
            n.meta["size"] = size
            if n.name not in names:
                n.meta["batch_axis_ok"] = batch_ok
    return outputs
