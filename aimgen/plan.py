"""Planning the memory: its shape, which layers read it (taps), where update blocks rewrite it,
and what all of that costs in parameters (the budget).

Everything here is arithmetic on the traced graph; nothing is rendered. The counts this module
computes are the ones the validator checks against the generated model, parameter for parameter.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn

from .errors import PlanError
from .handlers import REGISTRY, Skip, TapSite
from .tracing import Traced, tensor_meta

from .options import DEFAULT_BUDGET, DEFAULT_MEMORY_SIZE, DEFAULT_RANK, Options


@dataclass
class UpdateSite:
    """An update block: after ``node``, the memory is rewritten from its output."""

    node: str
    label: str               # where it is, for people: module name or node name
    name: str = ""           # attribute name in the generated model (set by codegen)
    features: int = 0        # feature channels read
    kind: str = "spatial"    # "spatial": pooled to the grid; "vector": (N, C); "sequence": (N, ..., C)
    shape: tuple = ()
    rank: int = 0
    memory_channels: int = 0

    @property
    def params(self) -> int:
        r, c, f = self.rank, self.memory_channels, self.features
        return (f * r + r) + (c * r) + (r * 2 * c + 2 * c)


@dataclass
class Plan:
    memory_shape: tuple[int, ...]
    taps: list[TapSite]
    skipped: list[Skip]
    updates: list[UpdateSite]
    carry_rate: float
    base_params: int
    options: Options
    notes: list[str] = field(default_factory=list)
    unused_params: int = 0

    @property
    def memory_params(self) -> int:
        return math.prod(self.memory_shape)

    @property
    def grid(self) -> tuple[int, ...]:
        return self.memory_shape[1:]

    @property
    def tap_params(self) -> int:
        return tap_cost(self.taps)

    def layer_counts(self) -> tuple[int, int]:
        """(weight layers tapped, weight layers seen): a layer called twice counts once."""
        tapped = {t.qualname for t in self.taps}
        seen = tapped | {s.qualname for s in self.skipped if s.node}
        return len(tapped), len(seen)

    def repeats(self) -> set[str]:
        """Nodes of taps whose layer an earlier call already widened (its weights cost nothing more)."""
        first: dict[str, str] = {}
        for t in self.taps:
            first.setdefault(t.weight, t.node)
        return {t.node for t in self.taps if first[t.weight] != t.node}

    @property
    def update_params(self) -> int:
        return sum(u.params for u in self.updates)

    @property
    def delta(self) -> int:
        return self.memory_params + self.tap_params + self.update_params

    @property
    def aim_params(self) -> int:
        return self.base_params + self.delta

    def summary(self) -> str:
        pct = 100.0 * self.delta / max(self.base_params, 1)
        return (
            f"base params: {self.base_params:,} || aim params: {self.aim_params:,} || "
            f"delta: +{self.delta:,} (+{pct:.2f}%) = memory {self.memory_params:,} + taps "
            f"{self.tap_params:,} + updates {self.update_params:,}"
        )

    def to_dict(self) -> dict:
        repeats = self.repeats()
        return {
            "memory_shape": list(self.memory_shape),
            "carry_rate": self.carry_rate,
            "base_params": self.base_params,
            "aim_params": self.aim_params,
            "delta": {"total": self.delta, "memory": self.memory_params, "taps": self.tap_params,
                      "updates": self.update_params},
            "taps": [
                {"layer": t.qualname, "type": t.layer_type, "memory_channels" if t.axis == 1 else "memory_features": t.k,
                 "groups": t.groups, "at": list(t.spatial), "params": 0 if t.node in repeats else t.extra_params,
                 **({"repeat_call": True} if t.node in repeats else {})}
                for t in self.taps
            ],
            "untapped": [{"layer": s.qualname, "type": s.layer_type, "reason": s.reason} for s in self.skipped],
            "update_blocks": [
                {"name": u.name, "after": u.label, "features": u.features, "kind": u.kind,
                 "rank": u.rank, "params": u.params}
                for u in self.updates
            ],
            "notes": list(self.notes),
            "options": self.options.to_dict(),
        }


# --- graph facts ---------------------------------------------------------------------------

def cut_nodes(graph: fx.Graph) -> set[str]:
    """Nodes every path from the inputs to the output goes through (no edge jumps over them).

    Placeholders, attribute reads and shape arithmetic (``n = x.shape[0]`` used much later, as
    in torchvision's ViT) are not edges of the data path. Linear time."""
    nodes = [n for n in graph.nodes]
    pos = {n: i for i, n in enumerate(nodes)}
    reach = [0] * len(nodes)
    for n in nodes:
        if n.op in ("placeholder", "get_attr") or _shape_only(n):
            continue
        reach[pos[n]] = max((pos[u] for u in n.users), default=pos[n])
    cuts, furthest = set(), 0
    for i, n in enumerate(nodes):
        if furthest <= i and n.op not in ("placeholder", "get_attr", "output"):
            cuts.add(n.name)
        furthest = max(furthest, reach[i])
    return cuts


_SHAPE_TYPES = (int, float, bool, torch.Size, type(None))


def _shape_only(node: fx.Node) -> bool:
    """A function or method call whose value holds no tensor (a size, a shape, an assert), when
    shapes were propagated; such values say nothing about the data path."""
    return node.op in ("call_function", "call_method") and node.meta.get("type") in _SHAPE_TYPES


def module_label(node: fx.Node) -> str:
    if node.op == "call_module":
        return node.target
    stack = node.meta.get("nn_module_stack") or {}
    owner = list(stack.values())[-1][0] if stack else ""
    return f"{owner}:{node.name}" if owner else node.name


def tap_cost(taps: list[TapSite]) -> int:
    """Parameters the taps add: a layer called several times is widened once."""
    return sum({t.weight: t.extra_params for t in taps}.values())


def _matches(pattern: str, site) -> bool:
    return pattern == site.layer_type or fnmatch.fnmatchcase(site.qualname, pattern)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def used_params(traced: Traced) -> tuple[int, int]:
    """(parameters the traced graph uses, parameters of the model it never touches)."""
    root = traced.root
    used: set[str] = set()
    for n in traced.graph.nodes:
        if n.op == "call_module":
            used |= {f"{n.target}.{k}" if n.target else k for k, _ in root.get_submodule(n.target).named_parameters()}
        elif n.op == "get_attr":
            used.add(n.target)
    total = used_total = 0
    for name, p in root.named_parameters():
        total += p.numel()
        if name in used:
            used_total += p.numel()
    return used_total, total - used_total


# --- planning ------------------------------------------------------------------------------

def find_sites(traced: Traced, options: Options) -> tuple[list[TapSite], list[Skip]]:
    taps, skipped = [], []
    for node in traced.graph.nodes:
        handler = REGISTRY.find(node, traced.root)
        if handler is None:
            continue
        site = handler.inspect(node, traced.root)
        if isinstance(site, Skip):
            skipped.append(site)
            continue
        if options.layers and not any(_matches(p, site) for p in options.layers):
            skipped.append(Skip(site.node, site.qualname, site.layer_type, "not selected by --layers"))
            continue
        hit = [p for p in options.skip if _matches(p, site)]
        if hit:
            skipped.append(Skip(site.node, site.qualname, site.layer_type, f"excluded by --skip {hit[0]}"))
            continue
        taps.append(site)
    # leaf modules with weight layers inside: not traced into, so not tapped
    for qual in sorted(traced.leaf_names):
        mod = traced.root.get_submodule(qual)
        inner = [n for n, m in mod.named_modules() if any(isinstance(m, h.module_types) for h in REGISTRY.handlers if h.module_types) and n]
        for n in inner:
            skipped.append(Skip("", f"{qual}.{n}", type(mod.get_submodule(n)).__name__,
                                f"inside {qual}, which is kept whole (it depends on self.training or was listed with --leaf)"))
    for node in traced.graph.nodes:
        if node.op == "call_module" and node.target not in traced.leaf_names:
            mod = traced.root.get_submodule(node.target)
            if REGISTRY.find(node, traced.root) is None:
                inner = [n for n, m in mod.named_modules() if n and isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
                for n in inner:
                    skipped.append(Skip(node.name, f"{node.target}.{n}", type(mod.get_submodule(n)).__name__,
                                        f"inside the leaf module {node.target} ({type(mod).__name__}), which torch runs whole"))
                if isinstance(mod, nn.MultiheadAttention):
                    skipped.append(Skip(node.name, node.target, "MultiheadAttention",
                                        "its projections are internal weights of a leaf module (in_proj_weight, out_proj): not tapped"))
    skipped += _opaque_layers(traced, taps, skipped)
    _check_patterns(options, taps, skipped)
    return taps, skipped


def _opaque_layers(traced: Traced, taps, skipped) -> list[Skip]:
    """Conv and Linear modules that the traced graph never calls as a layer, e.g. Swin's
    attention, whose weights go into a function torch.fx does not trace into: listed, not
    silently left out."""
    accounted = {t.qualname for t in taps} | {s.qualname for s in skipped}
    accounted |= {t.qualname.rsplit(".", 1)[0] for t in taps if t.functional}
    inside = tuple(f"{q}." for q in traced.leaf_names) + tuple(f"{s.qualname}." for s in skipped)
    readers: dict[str, list[fx.Node]] = {}
    for n in traced.graph.nodes:
        if n.op == "get_attr" and "." in n.target:
            readers.setdefault(n.target.rsplit(".", 1)[0], []).extend(n.users)
    out = []
    for name, mod in traced.root.named_modules():
        if not name or name in accounted or name.startswith(inside) or \
                not isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        users = readers.get(name, [])
        if not users:
            continue  # never used by forward: not part of the traced model (unused_params says so)
        fns = sorted({getattr(u.target, "__name__", str(u.target)) for u in users})
        out.append(Skip(users[0].name, name, type(mod).__name__,
                        f"not called as a layer: its weight goes into {', '.join(fns)}, which aimgen does not widen"))
    return out


def _check_patterns(options: Options, taps, skipped) -> None:
    everything = taps + [s for s in skipped if s.node]
    for flag, patterns in (("--layers", options.layers), ("--skip", options.skip)):
        for p in patterns:
            if not any(_matches(p, s) for s in everything):
                names = ", ".join(s.qualname for s in everything[:6]) + (", ..." if len(everything) > 6 else "")
                types = ", ".join(sorted({s.layer_type for s in everything}))
                raise PlanError(
                    f"{flag} {p!r} matches no weight layer of the model.",
                    hint=f"Patterns match a layer type ({types or 'none found'}) or a qualified name "
                    f"glob; layers here include: {names or 'none'}.",
                )


def choose_grid(traced: Traced, taps: list[TapSite]) -> tuple[int, ...] | None:
    """The smallest feature map larger than 1 (in elements) of the convs' spatial rank."""
    conv_ranks = [len(t.spatial) for t in taps if t.axis == 1]
    if not conv_ranks:
        return None
    rank = max(set(conv_ranks), key=conv_ranks.count)
    best = None
    for node in traced.graph.nodes:
        meta = tensor_meta(node)
        if meta is None or len(meta.shape) != rank + 2 or node.meta.get("batch_axis_ok") is False:
            continue
        spatial = tuple(meta.shape[2:])
        if math.prod(spatial) > 1 and (best is None or math.prod(spatial) < math.prod(best)):
            best = spatial
    if best is None:
        best = tuple(t.spatial for t in taps if t.axis == 1 and len(t.spatial) == rank)[0]
    return best


def _data_nodes_after_first_tap(traced: Traced, taps) -> list[fx.Node]:
    first = {t.node for t in taps}
    seen, out = False, []
    for n in traced.graph.nodes:
        if n.name in first:
            seen = True
        if seen:
            out.append(n)
    return out


def _feature_kind(node: fx.Node, grid: tuple[int, ...]) -> tuple[str, int, tuple] | None:
    meta = tensor_meta(node)
    if meta is None or not meta.dtype.is_floating_point or node.meta.get("batch_axis_ok") is False:
        return None
    shape = tuple(meta.shape)
    if grid and len(shape) == len(grid) + 2 and math.prod(shape[2:]) > 1:
        return "spatial", shape[1], shape
    if not grid and len(shape) >= 3:
        return "channels", shape[1], shape
    if len(shape) == 2:
        return "vector", shape[1], shape
    if len(shape) >= 3:
        return "sequence", shape[-1], shape
    return None


def find_updates(traced: Traced, taps, grid, options: Options) -> list[UpdateSite]:
    mode = options.updates.strip()
    if mode == "none" or not taps:
        return []
    cuts = cut_nodes(traced.graph)
    nodes = [n for n in _data_nodes_after_first_tap(traced, taps) if n.name in cuts]
    output_args = {a.name for a in next(n for n in traced.graph.nodes if n.op == "output").all_input_nodes}
    chosen: list[tuple[fx.Node, tuple]] = []
    if mode == "stages":
        prev_key, prev = None, None
        for n in nodes:
            kind = _feature_kind(n, grid)
            if kind is None or (grid and kind[0] != "spatial"):
                continue
            key = kind[2][2:] if grid else kind[1]
            if prev is not None and key != prev_key:
                chosen.append(prev)
            prev_key, prev = key, (n, kind)
        if prev is not None and prev[0].name not in output_args:
            chosen.append(prev)
    elif mode == "every":
        tap_nodes = {t.node for t in taps}
        last = None
        for n in _data_nodes_after_first_tap(traced, taps):
            if n.name in tap_nodes and last is not None and (not chosen or chosen[-1][0] is not last[0]):
                chosen.append(last)
            kind = _feature_kind(n, grid)
            if n.name in cuts and kind is not None and n.name not in output_args:
                last = (n, kind)
    else:
        patterns = [p.strip() for p in mode.split(",") if p.strip()]
        everything = list(traced.graph.nodes)
        for p in patterns:
            hits = [n for n in everything if fnmatch.fnmatchcase(module_label(n), p) or fnmatch.fnmatchcase(n.name, p)]
            if not hits:
                raise PlanError(f"--updates {p!r} matches no operation of the model.",
                                hint="Use 'stages', 'every', 'none', or globs over module names (e.g. 'layer*.2.relu').")
            for n in hits:
                if n.name not in cuts:
                    raise PlanError(
                        f"--updates {p!r} matches {module_label(n)}, which is inside a branch (another path "
                        "runs beside it), so not every later layer would see that update.",
                        hint="Place updates on the main path, e.g. at a block's output.")
                kind = _feature_kind(n, grid)
                if kind is None:
                    raise PlanError(f"--updates {p!r}: {module_label(n)} does not output batched float features.")
                if all(n is not c[0] for c in chosen):
                    chosen.append((n, kind))
        order = {n.name: i for i, n in enumerate(everything)}
        chosen.sort(key=lambda c: order[c[0].name])
    return [UpdateSite(node=n.name, label=module_label(n), features=kind[1], kind=kind[0], shape=kind[2])
            for n, kind in chosen]


def _apply_size(taps, updates, memory_shape, options: Options) -> None:
    channels = memory_shape[0]
    grid = memory_shape[1:]
    size = math.prod(memory_shape)
    unit = linear_unit(memory_shape)
    for t in taps:
        if options.tap_width == "full":
            t.k = size if t.axis == -1 else -(-size // max(math.prod(t.spatial), 1))
        else:
            t.k = options.tap_width * (unit if t.axis == -1 else 1)
    widest: dict[str, int] = {}  # a layer called at several sizes reads one width: the widest
    for t in taps:
        widest[t.weight] = max(widest.get(t.weight, 0), t.k)
    for t in taps:
        t.k = widest[t.weight]
    rank = options.update_rank or min(DEFAULT_RANK, channels)
    for u in updates:
        u.rank, u.memory_channels = rank, channels


def linear_unit(memory_shape: tuple[int, ...]) -> int:
    """Features a Linear layer reads per tap channel: the memory folded to one grid's worth of
    values (49 for a 7x7 grid), at most sqrt(memory size), so a head reads all of the memory
    without a Linear tap costing more than the convs' one channel."""
    size = math.prod(memory_shape)
    root = math.isqrt(size - 1) + 1 if size > 1 else 1
    return min(math.prod(memory_shape[1:]), root) if len(memory_shape) > 1 else root


def _shape_for(channels: int, grid) -> tuple[int, ...]:
    return (channels, *grid) if grid is not None else (channels,)


def make_plan(traced: Traced, options: Options) -> Plan:
    options.check()
    taps, skipped = find_sites(traced, options)
    base, unused = used_params(traced)
    grid = choose_grid(traced, taps)
    updates = find_updates(traced, taps, grid or (), options)
    unit = math.prod(grid) if grid else 1
    max_channels = max(1, round((options.memory_size or DEFAULT_MEMORY_SIZE) / unit))
    notes: list[str] = []

    def growth(channels: int) -> int:
        shape = _shape_for(channels, grid)
        _apply_size(taps, updates, shape, options)
        return math.prod(shape) + tap_cost(taps) + sum(u.params for u in updates)

    budget = options.budget if options.budget is not None else DEFAULT_BUDGET
    limit = int(budget * base)
    if options.memory_size is not None:
        channels = max_channels
        if options.budget is not None and growth(channels) > limit:
            raise PlanError(
                f"--memory-size {options.memory_size} costs +{growth(channels):,} parameters, over "
                f"--budget {options.budget} ({limit:,} of {base:,} base parameters).",
                hint=f"Lower --memory-size, use --tap-width 1, fewer --updates, or raise --budget to "
                f"{growth(channels) / max(base, 1):.4f}.")
    elif growth(max_channels) <= limit:
        channels = max_channels
    elif growth(1) > limit:
        channels = 1
        if options.budget is not None:
            raise PlanError(
                f"even the smallest memory (1 channel) costs +{growth(1):,} parameters, over --budget "
                f"{options.budget} ({limit:,} of {base:,} base parameters).",
                hint="Raise --budget, tap fewer layers (--layers/--skip), or use --updates none.")
        notes.append(f"smallest configuration: even 1 memory channel costs +{growth(1):,} parameters "
                     f"({100 * growth(1) / max(base, 1):.1f}% of the base), over the default {budget:.0%} budget")
    else:
        lo, hi = 1, max_channels  # growth(lo) <= limit < growth(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if growth(mid) <= limit else (lo, mid)
        channels = lo
        notes.append(f"memory shrunk to {math.prod(_shape_for(channels, grid)):,} floats to stay within "
                     f"the {budget:.0%} parameter budget")
    memory_shape = _shape_for(channels, grid)
    _apply_size(taps, updates, memory_shape, options)
    if not taps:
        notes.append("no layer reads the memory: nothing tappable was found or selected")
    return Plan(memory_shape=memory_shape, taps=taps, skipped=skipped, updates=updates,
                carry_rate=options.carry_rate, base_params=base, options=options, notes=notes,
                unused_params=unused)
