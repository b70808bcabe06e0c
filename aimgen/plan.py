"""Planning the memory: its shape, which layers read it (taps) and how wide, where update blocks
rewrite it, and what all of that costs in parameters (the budget).

Everything here is arithmetic on the captured graph; nothing is rendered. A ``Plan`` is
immutable and holds three kinds of value apart: *facts* about the graph (the tap sites, the
layers left as they are, the update points), *decisions* (the memory's shape, each layer's
width, the update blocks' rank) and the options they came from. The counts it computes are
the ones the validator checks against the generated model, parameter for parameter.
"""
from __future__ import annotations

import bisect
import fnmatch
import math
from collections import Counter
from dataclasses import dataclass

import torch
import torch.fx as fx

from .errors import PlanError
from .naming import count
from .options import DEFAULT_BUDGET, DEFAULT_MEMORY_SIZE, DEFAULT_RANK, Options
from .shapes import pads, size_key, tensor_meta
from .taps import REGISTRY, Skip, TapSite, TapWidth
from .tracing import Traced, op_name


@dataclass(frozen=True)
class UpdateSite:
    """An update point: after ``node``, the memory is rewritten from its output."""

    node: str
    label: str               # where it is, for people: module name or node name
    kind: str                # "spatial": (N, C, *size) pooled to the grid; "spatial_last": (N, *size, C)
                             # likewise; "vector": (N, C); "sequence": (N, ..., C) and "tokens": (N, L, C),
                             # L changing with the input, read as their mean
    features: int            # feature channels read
    shape: tuple             # the features' shape at the example input


@dataclass(frozen=True)
class Plan:
    # facts
    taps: tuple[TapSite, ...]
    skipped: tuple[Skip, ...]
    updates: tuple[UpdateSite, ...]
    base_params: int
    unused_params: int                   # of base_params: never used by the forward (kept all the same)
    # decisions
    memory_shape: tuple[int, ...]
    widths: dict[str, TapWidth]          # base weight (or node, for computed weights) -> width
    rank: int
    memory_keys: dict[str, str]          # tap node -> the sum form's state_dict key of its memory weights
    options: Options
    notes: tuple[str, ...] = ()
    no_update_reason: str = ""           # why no update block was placed, if none was
    never_called: tuple[str, ...] = ()   # modules holding those unused parameters (outermost)

    # --- derived values ------------------------------------------------------------------
    @property
    def carry_rate(self) -> float:
        return self.options.carry_rate

    @property
    def form(self) -> str:
        return self.options.form

    @property
    def memory_params(self) -> int:
        return math.prod(self.memory_shape)

    @property
    def memory_channels(self) -> int:
        return self.memory_shape[0]

    @property
    def grid(self) -> tuple[int, ...]:
        return self.memory_shape[1:]

    def width(self, site: TapSite) -> TapWidth:
        return self.widths[layer_key(site)]

    def tap_params_of(self, site: TapSite) -> int:
        return REGISTRY.get(site.kind).extra_params(site, self.width(site))

    @property
    def tap_params(self) -> int:
        """Parameters the taps add: a layer called several times reads the memory once widened."""
        return sum({layer_key(t): self.tap_params_of(t) for t in self.taps}.values())

    def update_params_of(self, update: UpdateSite) -> int:
        return update_cost(update.features, self.memory_channels, self.rank)

    @property
    def update_params(self) -> int:
        return sum(self.update_params_of(u) for u in self.updates)

    @property
    def delta(self) -> int:
        return self.memory_params + self.tap_params + self.update_params

    @property
    def aim_params(self) -> int:
        return self.base_params + self.delta

    def layer_counts(self) -> tuple[int, int]:
        """(weight layers tapped, weight layers seen): a layer called twice counts once."""
        tapped = {t.qualname for t in self.taps}
        seen = tapped | {s.qualname for s in self.skipped if s.node}
        return len(tapped), len(seen)

    def repeats(self) -> set[str]:
        """Nodes of taps whose layer an earlier call already widened (its weights cost nothing more)."""
        first: dict[str, str] = {}
        for t in self.taps:
            first.setdefault(layer_key(t), t.node)
        return {t.node for t in self.taps if first[layer_key(t)] != t.node}

    def summary(self) -> str:
        pct = 100.0 * self.delta / max(self.base_params, 1)
        return (
            f"base params: {self.base_params:,} || aim params: {self.aim_params:,} || "
            f"delta: +{self.delta:,} (+{pct:.2f}%) = memory {self.memory_params:,} + taps "
            f"{self.tap_params:,} + updates {self.update_params:,}"
        )

    def to_dict(self) -> dict:
        repeats = self.repeats()
        taps = []
        for t in self.taps:
            w = self.width(t)
            entry = {"layer": t.qualname, "type": t.layer_type, "kind": t.kind,
                     "memory_features" if t.axis == -1 else "memory_channels": w.k,
                     "groups": t.groups, "at": list(t.spatial),
                     "params": 0 if t.node in repeats else self.tap_params_of(t)}
            if w.kernel != "full":
                entry["memory_kernel"] = w.kernel
            if t.node in repeats:
                entry["repeat_call"] = True
            taps.append(entry)
        return {
            "memory_shape": list(self.memory_shape),
            "carry_rate": self.carry_rate,
            "form": self.form,
            "base_params": self.base_params,
            "aim_params": self.aim_params,
            "delta": {"total": self.delta, "memory": self.memory_params, "taps": self.tap_params,
                      "updates": self.update_params},
            "taps": taps,
            "untapped": [{"layer": s.qualname, "type": s.layer_type, "reason": s.reason} for s in self.skipped],
            "never_called": list(self.never_called),
            "update_blocks": [
                {"after": u.label, "features": u.features, "kind": u.kind, "rank": self.rank,
                 "params": self.update_params_of(u)}
                for u in self.updates
            ],
            **({"no_update_blocks": self.no_update_reason} if not self.updates else {}),
            "notes": list(self.notes),
            "options": self.options.to_dict(),
        }


def layer_key(site: TapSite) -> str:
    """One key per layer (a layer called twice is widened once): its weight, or its node."""
    return site.weight or site.node


def update_cost(features: int, memory_channels: int, rank: int) -> int:
    """Parameters of one MemoryUpdate: features -> r, memory -> r, r -> 2 x memory channels."""
    r, c, f = rank, memory_channels, features
    return (f * r + r) + (c * r) + (r * 2 * c + 2 * c)


# --- graph facts -----------------------------------------------------------------------------

_SHAPE_TYPES = (int, float, bool, torch.Size, type(None))


def _shape_only(node: fx.Node) -> bool:
    """A function or method call whose value holds no tensor (a size, a shape, an assert), when
    shapes were propagated; such values say nothing about the data path."""
    return node.op in ("call_function", "call_method") and node.meta.get("type") in _SHAPE_TYPES


def cut_nodes(graph: fx.Graph, carries=None) -> set[str]:
    """Nodes every path from the inputs to the output goes through (no edge jumps over them).

    Placeholders, attribute reads and shape arithmetic (``n = x.shape[0]`` used much later, as in
    torchvision's ViT) are not edges of the data path. With ``carries(node)``, only the edges
    from nodes it accepts are: a side input that reaches every block (an attention mask, a
    diffusion model's timestep embedding) does not hide the main path. Linear time."""
    nodes = list(graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    reach = [0] * len(nodes)
    for n in nodes:
        if n.op in ("placeholder", "get_attr") or _shape_only(n):
            continue
        if carries is not None and tensor_meta(n) is not None and not carries(n):
            continue
        reach[pos[n]] = max((pos[u] for u in n.users if not _shape_only(u)), default=pos[n])
    cuts, furthest = set(), 0
    for i, n in enumerate(nodes):
        if furthest <= i and n.op not in ("placeholder", "get_attr", "output"):
            cuts.add(n.name)
        furthest = max(furthest, reach[i])
    return cuts


def module_label(node: fx.Node) -> str:
    if node.op == "call_module":
        return node.target
    stack = node.meta.get("nn_module_stack") or {}
    owner = list(stack.values())[-1][0] if stack else ""
    return f"{owner}:{node.name}" if owner else node.name


def _matches(pattern: str, site) -> bool:
    return pattern == site.layer_type or fnmatch.fnmatchcase(site.qualname, pattern)


def parameter_use(traced: Traced) -> tuple[int, int, tuple[str, ...]]:
    """(parameters of the base model, how many of them the traced graph never uses, the
    outermost modules whose parameters it never uses). Every one is kept in the output: its
    state_dict is the base model's."""
    root = traced.root
    used: set[str] = set()
    for n in traced.graph.nodes:
        if n.op == "call_module":
            used |= {f"{n.target}.{k}" if n.target else k for k, _ in root.get_submodule(n.target).named_parameters()}
        elif n.op == "get_attr":
            used.add(n.target)
    total = unused = 0
    for name, p in root.named_parameters():
        total += p.numel()
        if name not in used:
            unused += p.numel()
    idle: list[str] = []
    for name, module in root.named_modules():
        names = [f"{name}.{k}" if name else k for k, _ in module.named_parameters()]
        if name and names and not used.intersection(names) and not any(name.startswith(q + ".") for q in idle):
            idle.append(name)
    return total, unused, tuple(idle)


def find_sites(traced: Traced, options: Options) -> tuple[list[TapSite], list[Skip]]:
    taps, skipped = [], []
    for node in traced.graph.nodes:
        kind = REGISTRY.find(node, traced.root)
        if kind is None:
            continue
        site = kind.inspect(node, traced.root)
        if isinstance(site, Skip):
            skipped.append(site)
            continue
        kept = next((q for q in traced.leaf_names if site.qualname.startswith(q + ".")), None)
        if kept is not None:   # torch.export inlined it, but the module is built whole by its constructor
            skipped.append(Skip(site.node, site.qualname, site.layer_type, _inside_kept(traced, kept)))
            continue
        if mode_only(node):
            why = (f"{traced.mode_tail} returns other things in train() and eval()): its memory weights would "
                   "never train" if traced.mode_tail else "for an output eval() does not return): memory it read "
                   "would never reach eval()'s outputs")
            skipped.append(Skip(site.node, site.qualname, site.layer_type, f"it runs only in {mode_only(node)} ({why}"))
            continue
        if not kind.literal and options.form == "literal":
            skipped.append(Skip(site.node, site.qualname, site.layer_type,
                                f"only the sum form (form='sum', the default) can tap a {site.layer_type}: the "
                                "literal form would have to widen weights torch runs inside it"))
            continue
        if site.computed_weight and options.form == "literal":
            skipped.append(Skip(site.node, site.qualname, site.layer_type,
                                "its weight is computed in forward: only the sum form (form='sum', the "
                                "default) can tap it, the literal form would have to widen that weight"))
            continue
        if options.layers and not any(_matches(p, site) for p in options.layers):
            skipped.append(Skip(site.node, site.qualname, site.layer_type, "not selected by layers="))
            continue
        hit = [p for p in options.skip if _matches(p, site)]
        if hit:
            skipped.append(Skip(site.node, site.qualname, site.layer_type, f"excluded by skip={hit[0]!r}"))
            continue
        taps.append(site)
    taps, skipped = _every_call_or_none(taps, skipped)
    skipped += _inside_leaves(traced)
    skipped += _opaque_layers(traced, taps, skipped)
    _check_patterns(options, taps, skipped)
    return taps, skipped


def _every_call_or_none(taps: list[TapSite], skipped: list[Skip]) -> tuple[list[TapSite], list[Skip]]:
    """A layer called twice reads the memory at both calls or at neither: one module cannot take
    the memory at one call and not at the other (RegionViT's attention runs on the region tokens,
    one row a sample, and again on windows of them, several rows a sample)."""
    left = {s.qualname: s for s in skipped}
    keep = [t for t in taps if t.functional or t.qualname not in left]
    return keep, skipped + [
        Skip(t.node, t.qualname, t.layer_type, f"it is called again where it cannot read the memory "
             f"({left[t.qualname].reason}); a layer reads it at every call or at none")
        for t in taps if not t.functional and t.qualname in left]


def _why_none(traced: Traced, skipped: list[Skip]) -> str:
    """Why no layer is tapped, as one clause: the weight layers left as they are and why (the
    three most common reasons), else the modules kept whole and why."""
    if skipped:
        reasons = Counter(s.reason for s in skipped)
        said = "; ".join(f"{n} for {why}" if n > 1 else why for why, n in reasons.most_common(3))
        more = len(reasons) - 3
        return f"its {len(skipped)} weight layer call(s) are left as they are: {said}" + \
            (f"; and {more} other reason(s)" if more > 0 else "")
    kept = [q for q in traced.leaf_reasons if traced.leaf_reasons[q] != "listed in leaf="] or list(traced.leaf_names)
    if kept:
        more = f" and {len(kept) - 1} more" if len(kept) > 1 else ""
        why = traced.leaf_reasons.get(kept[0]) or "listed in leaf="
        return f"it has no Conv or Linear call outside the modules kept whole, {kept[0]} ({why}){more}"
    return "it calls no Conv, ConvTranspose or Linear layer, nor F.conv/F.linear"


def _inside_kept(traced: Traced, qual: str) -> str:
    return f"inside {qual}, which is kept whole ({traced.leaf_reasons.get(qual) or 'listed in leaf='})"


def _inside_leaves(traced: Traced) -> list[Skip]:
    """Weight layers inside modules torch runs whole (a kept leaf, nn.MultiheadAttention...)."""
    out = []
    for node in traced.graph.nodes:
        if node.op != "call_module" or REGISTRY.find(node, traced.root) is not None:
            continue
        mod = traced.root.get_submodule(node.target)
        kept = node.target in traced.leaf_names
        why = (_inside_kept(traced, node.target) if kept else f"inside the leaf module {node.target} ({type(mod).__name__}), which torch runs whole")
        for name, sub in mod.named_modules():
            if REGISTRY.is_weight_layer(sub) and (name or kept):  # a kept leaf may be a weight layer itself
                qual = f"{node.target}.{name}" if name else node.target
                out.append(Skip(node.name, qual, type(sub).__name__, why if name else
                                f"kept whole ({traced.leaf_reasons.get(node.target) or 'listed in leaf='})"))
        if not kept and not REGISTRY.is_weight_layer(mod) and any(
                p.dim() >= 2 for p in mod.parameters(recurse=False)):
            out.append(Skip(node.name, node.target, type(mod).__name__,
                            f"its weights are internal to {type(mod).__name__}, which torch runs whole"))
    seen, unique = set(), []
    for s in out:  # a leaf called twice lists its layers once
        if s.qualname not in seen:
            seen.add(s.qualname)
            unique.append(s)
    return unique


def _opaque_layers(traced: Traced, taps, skipped) -> list[Skip]:
    """Weight-layer modules the graph never calls as a layer, e.g. Swin's attention, whose
    weights go into a function torch.fx does not trace into: listed, not silently left out."""
    accounted = {t.qualname for t in taps} | {s.qualname for s in skipped} | \
        {s.qualname.split(":")[0] for s in skipped if s.node}
    accounted |= {t.weight.rsplit(".", 1)[0] for t in taps if t.functional and t.weight}
    # a functional call listed by its weight (``F.linear(table, self.mlp[0].weight)``): its module is listed
    accounted |= {s.qualname.rsplit(".", 1)[0] for s in skipped if s.qualname.endswith(".weight")}
    accounted |= {t.qualname.split(":")[0] for t in taps if t.computed_weight}
    inside = tuple(f"{q}." for q in traced.leaf_names) + tuple(f"{s.qualname}." for s in skipped)
    readers: dict[str, list[fx.Node]] = {}
    for n in traced.graph.nodes:
        if n.op == "get_attr" and "." in n.target:
            readers.setdefault(n.target.rsplit(".", 1)[0], []).extend(n.users)
    out = []
    for name, mod in traced.root.named_modules():
        if not name or name in accounted or name.startswith(inside) or not REGISTRY.is_weight_layer(mod):
            continue
        users = readers.get(name, [])
        if not users:
            continue  # never used by forward: kept whole, listed in never_called
        fns = sorted({getattr(u.target, "__name__", str(u.target)) for u in users})
        out.append(Skip(users[0].name, name, type(mod).__name__,
                        f"not called as a layer: its weight goes into {', '.join(fns)}, which aimgen does not widen"))
    return out


def _check_patterns(options: Options, taps, skipped) -> None:
    everything = taps + [s for s in skipped if s.node]
    for name, patterns in (("layers", options.layers), ("skip", options.skip)):
        for p in patterns:
            if not any(_matches(p, s) for s in everything):
                names = ", ".join(s.qualname for s in everything[:6]) + (", ..." if len(everything) > 6 else "")
                types = ", ".join(sorted({s.layer_type for s in everything}))
                raise PlanError(
                    f"{name}={p!r} matches no weight layer of the model.",
                    hint=f"Patterns match a layer type ({types or 'none found'}) or a qualified name "
                    f"glob; layers here include: {names or 'none'}.", field=name,
                )


def conv_sizes(traced: Traced, taps) -> set[tuple]:
    """The spatial sizes convolutions read or write, and Linear layers read on channels-last
    maps (as size keys): what a feature map is. An attention's (N, heads, T, d) has the rank
    of a feature map but none of these sizes, nor has a map padded to whole windows, nor one
    padded for a conv (Hugging Face EfficientNet's ZeroPad2d: 17 x 17 read, 8 x 8 written)."""
    nodes = {n.name: n for n in traced.graph.nodes}
    sizes = set()
    for t in taps:
        node = nodes.get(t.node)
        if node is None:
            continue
        read = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
        if t.axis == 1:
            sizes.add(size_key(node))
            if read is not None and not pads(read, traced.root):
                sizes.add(size_key(read))
        elif read is not None and tensor_meta(read) is not None and len(tensor_meta(read).shape) >= 3 and \
                _channels_last(read.meta.get("size")):
            sizes.add(map_size(read, "spatial_last"))
    return sizes


def choose_grid(traced: Traced, taps: list[TapSite]) -> tuple[int, ...] | None:
    """The smallest feature map larger than 1 (in elements) of the convs' spatial rank."""
    conv_ranks = [len(t.spatial) for t in taps if t.axis == 1]
    if not conv_ranks:
        return None
    rank = max(set(conv_ranks), key=conv_ranks.count)
    sizes = conv_sizes(traced, taps)
    best = None
    for node in traced.graph.nodes:
        meta = tensor_meta(node)
        if meta is None or len(meta.shape) != rank + 2 or node.meta.get("batch_axis_ok") is False or \
                size_key(node) not in sizes:
            continue
        spatial = tuple(meta.shape[2:])
        if math.prod(spatial) > 1 and (best is None or math.prod(spatial) < math.prod(best)):
            best = spatial
    if best is None:
        best = tuple(t.spatial for t in taps if t.axis == 1 and len(t.spatial) == rank)[0]
    return best


# --- update placement ----------------------------------------------------------------------

def _feature_kind(node: fx.Node, grid: tuple[int, ...], sizes: set | None = None) -> tuple[str, int, tuple] | None:
    """What an update block can read from a node: a spatial feature map (N, C, *size), a vector
    (N, C) or a sequence (N, ..., C); None for anything else. ``sizes``: the spatial sizes of
    the model's convolutions; a feature map has one of them (see ``conv_sizes``)."""
    meta = tensor_meta(node)
    if meta is None or not meta.dtype.is_floating_point or node.meta.get("batch_axis_ok") is False:
        return None
    shape = tuple(meta.shape)
    if 0 in shape:   # an empty stand-in (smp's timm encoders return one for a stage they lack)
        return None
    sym = node.meta.get("size")
    channels_first = sym is None or str(sym[1]).isdigit()  # (N, H, W, C) has a size on axis 1
    conv_like = sizes is None or size_key(node) in sizes
    if grid and len(shape) == len(grid) + 2 and math.prod(shape[2:]) > 1 and channels_first and conv_like:
        return "spatial", shape[1], shape
    if grid and len(shape) == len(grid) + 2 and math.prod(shape[1:-1]) > 1 and _channels_last(sym) and \
            (sizes is None or map_size(node, "spatial_last") in sizes):
        return "spatial_last", shape[-1], shape
    if grid and len(shape) == 3 and _channels_last(sym) and (sizes is None or map_size(node, "tokens") in sizes):
        return "tokens", shape[-1], shape
    if len(shape) == 2:
        return "vector", shape[1], shape
    if len(shape) >= 3:
        return "sequence", shape[-1], shape
    return None


def _channels_last(sym) -> bool:
    """Whether symbolic sizes are a channels-last feature map's, (N, H, W, C) as Swin's stages
    and ConvNeXt's blocks hold them: every axis between the batch and the last one changes with
    the input size, the last one does not."""
    return sym is not None and str(sym[-1]).isdigit() and not any(str(s).isdigit() for s in sym[1:-1])


def map_size(node: fx.Node, kind: str) -> tuple:
    """The spatial size of a feature map of that kind (see ``_feature_kind``), as ``size_key``
    gives it for a channels-first one; a token sequence's is its length."""
    if kind not in ("spatial_last", "tokens"):
        return size_key(node)
    return tuple(node.meta["size"][1:-1])   # those kinds are found by their symbolic sizes


#: the kinds of feature map that end a stage where the model has a memory grid (a conv stem):
#: maps, and the token sequences of a transformer over them (ViT's, Hugging Face Swin's)
STAGED = ("spatial", "spatial_last", "tokens")


def live_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes whose value reaches the output: not the dead ends of a base forward (PiT's last
    stage reshapes a feature map that nothing reads)."""
    output = next(n for n in reversed(graph.nodes) if n.op == "output")
    live, todo = {output}, [output]
    while todo:
        for a in todo.pop().all_input_nodes:
            if a not in live:
                live.add(a)
                todo.append(a)
    return live


def _between_taps(traced: Traced, taps) -> list[fx.Node]:
    """The data nodes from the first tapped layer on, before the last, that the output depends
    on: where update blocks may go (one on a value the model discards would rewrite the memory
    from nothing; one after the last tapped layer would write a memory no layer reads, and its
    weights would never get a gradient: transformers' Mamba with its mixers kept whole)."""
    tapped = {t.node for t in taps}
    last = max((i for i, n in enumerate(traced.graph.nodes) if n.name in tapped), default=-1)
    live = live_nodes(traced.graph)
    seen, out = False, []
    for i, n in enumerate(traced.graph.nodes):
        if i >= last:
            break
        seen = seen or n.name in tapped
        if seen and n in live and n.op not in ("output", "placeholder", "get_attr") and not _shape_only(n) \
                and not mode_only(n):
            out.append(n)
    return out


#: operations that only rearrange, scale, normalize or extend (learned memory tokens) a value on its way
#: into an attention's product
_REARRANGING = {"view", "reshape", "_unsafe_view", "permute", "transpose", "flatten", "unflatten", "contiguous",
                "chunk", "split", "split_with_sizes", "unbind", "getitem", "unsqueeze", "squeeze", "expand",
                "clone", "movedim", "mul", "div", "truediv", "t", "softmax", "_softmax", "cat", "concat"}
#: an attention's products of queries, keys and values
_ATTENTION_PRODUCTS = {"matmul", "bmm", "einsum", "baddbmm", "scaled_dot_product_attention"}


def _attention_input(node: fx.Node) -> bool:
    """Whether a value goes nowhere but into an attention's products, through reshapes, permutes
    and splits: the queries, keys or values an attention block makes of a map (vit-pytorch's CvT
    and Twins-SVT: keys and values from a strided conv), which are the block's own, no stage."""
    seen, todo, reached = set(), [node], False
    while todo:
        for user in todo.pop().users:
            if user in seen or _shape_only(user):
                continue
            seen.add(user)
            name = op_name(user)
            if name in _ATTENTION_PRODUCTS:
                reached = True
            elif name in _REARRANGING:
                todo.append(user)
            else:
                return False
    return reached


#: operations that squash a value into factors in (0, 1): a gate, where a product scales another value by them
_GATES = {"sigmoid", "hardsigmoid", "softmax", "_softmax"}
_GATE_MODULES = (torch.nn.Sigmoid, torch.nn.Hardsigmoid, torch.nn.Softmax)
#: operations that carry a gate's factors to the product they scale (to its size or layout)
_RESIZING = {"interpolate", "upsample_nearest2d", "upsample_bilinear2d", "expand", "expand_as", "repeat", "view",
             "reshape", "unsqueeze", "flatten", "unflatten", "permute", "transpose", "contiguous"}


def _gate(traced: Traced, node: fx.Node) -> list[fx.Node]:
    """A gate and the nodes that resize its factors, when ``node`` is one (a sigmoid or softmax
    whose value, resized or not, only multiplies other values); else []."""
    if node.op == "call_module":
        if not isinstance(traced.root.get_submodule(node.target), _GATE_MODULES):
            return []
    elif op_name(node) not in _GATES:
        return []
    own, todo = [node], [node]
    while todo:
        for user in todo.pop().users:
            if _shape_only(user):
                continue
            if op_name(user) in _RESIZING:
                own.append(user)
                todo.append(user)
            elif op_name(user) not in ("mul", "mul_"):
                return []
    return own


def _gate_own(traced: Traced, cuts: set[str]) -> set[str]:
    """The values off the main path that only make a gate's factors: every path from them leads
    into a gate before the main path (GhostNetV2's DFC attention pools a map to half its size,
    convolves it and squashes it into factors for the block's output; squeeze-excitation and
    CBAM's spatial attention likewise). They are the block's own, no stage."""
    own: set[fx.Node] = set()
    for node in reversed(traced.graph.nodes):
        gate = _gate(traced, node)
        if gate:
            own.update(gate)
            continue
        if node.name in cuts or node.op in ("output", "placeholder", "get_attr"):
            continue
        users = [u for u in node.users if not _shape_only(u)]
        if users and all(u in own for u in users):
            own.add(node)
    return {n.name for n in own}


def mode_only(node: fx.Node) -> str:
    """'train()' or 'eval()' for a node only one mode runs (tracing._mode_tail), else ''."""
    return "train()" if node.meta.get("train_only") else "eval()" if node.meta.get("eval_only") else ""


@dataclass(frozen=True)
class _Sizes:
    """What the stage rules compare: each node's feature kind (see ``_feature_kind``), its size
    (the spatial size with a grid, else the feature width) and its place in program order."""

    kinds: dict[str, tuple]
    grid: tuple[int, ...] | None
    at: dict[str, int]
    layers: frozenset[fx.Node] = frozenset()   # the tapped layers' nodes

    def kind(self, n: fx.Node) -> str:
        return self.kinds[n.name][0]

    def key(self, n: fx.Node):
        return map_size(n, self.kind(n)) if self.grid else self.kinds[n.name][1]


def _candidates(nodes: list[fx.Node], kinds: dict, grid) -> list[fx.Node]:
    """The values a stage may end at: with a grid, feature maps and their token sequences;
    without, the values of the most common rank (a transformer's (N, L, D) hidden states)."""
    if grid:
        return [n for n in nodes if kinds[n.name] and kinds[n.name][0] in STAGED]
    ranks = [len(kinds[n.name][2]) for n in nodes if kinds[n.name]]
    main_rank = max(set(ranks), key=ranks.count) if ranks else 2
    return [n for n in nodes if kinds[n.name] and len(kinds[n.name][2]) == main_rank]


def _split_tokens(candidates: list[fx.Node], sizes: _Sizes, cuts: set[str]) -> tuple[list, list]:
    """(the main path's token sequences, the candidates without them) where the main path goes
    back to (N, C, H, W) maps after its tokens (CvT and SegFormer fold them into a map at each
    stage's end): the maps mark the stages, and the tokens are the same resolution by another
    name. The cuts stay those of the tokens and maps: the tokens' residual sums jump over the
    maps a block makes of them (CvT's convolutional key and value projections), which are no
    stage. Elsewhere ([], candidates)."""
    path = [sizes.kind(n) for n in candidates if n.name in cuts]
    if "tokens" not in path or "spatial" not in path[path.index("tokens"):]:
        return [], candidates
    return ([n for n in candidates if sizes.kind(n) == "tokens" and n.name in cuts],
            [n for n in candidates if sizes.kind(n) != "tokens"])


def _stretch_ends(maps: list[fx.Node], on_path: list[fx.Node], sizes: _Sizes,
                  token_cuts: list[fx.Node]) -> tuple[list[fx.Node], set[str]]:
    """Stage ends in the stretches between main-path maps that hold maps of other sizes: no main
    path there (a U-Net's deeper levels, a decode head's other scales), and every run of one size
    in it is a stage, except runs whose size comes back before their data moves on to another
    (parallel branches run in turn, as HRNet's: see ``_goes_on``). Token sequences off the main path
    are no such stretch: they are a block's own (window attention over a map one window covers).
    Also the main-path maps such a stretch follows: a stage ends there too."""
    ends: list[fx.Node] = []
    detours: set[str] = set()
    key, at = sizes.key, sizes.at
    token_at = [at[t.name] for t in token_cuts]   # in program order
    order = {n.name: i for i, n in enumerate(maps)}
    marks = [-1] + [order[n.name] for n in on_path if n.name in order] + [len(maps)]
    for lo, hi in zip(marks, marks[1:]):
        inner = maps[lo + 1:hi]
        start = at[maps[lo].name] if lo >= 0 else -1
        end = at[maps[hi].name] if hi < len(maps) else len(at)
        outer = {key(maps[i]) for i in (lo, hi) if 0 <= i < len(maps)}
        if not any(key(n) not in outer for n in inner):
            continue
        runs: list[fx.Node] = []     # the last map of each run of one size, in program order
        stages: list[fx.Node] = []
        later = _next_of_size(inner, key)
        back: set[str] = set()                # the blocks that come back to a size
        names = {n.name for n in inner}
        pos = {n.name: i for i, n in enumerate(inner)}
        for j, n in enumerate(inner):
            after = maps[order[n.name] + 1] if order[n.name] + 1 < len(maps) else None
            if after is not None and key(after) == key(n):
                continue  # a run that goes on (into the main path too) is not over
            # nor is a map an attention reads a stage, nor one the main path's tokens jump over
            # (a block makes it of them)
            i = bisect.bisect(token_at, at[n.name])
            if _attention_input(n) or 0 < i < len(token_at) and token_at[i - 1] > start and token_at[i] < end:
                continue
            runs.append(n)
            if later[j] is not None:
                k = pos[later[j].name]
                goes_on, block = _goes_on(n, inner[j + 1:k], _run_from(inner, k, key), sizes, names)
                if goes_on:
                    if block:
                        back.add(block)
                    continue
            stages.append(_run_end(_block_output(n, inner[:j], back, key), after, sizes, maps))
        # a detour through runs of other sizes (a U-Net's deeper levels, a decode head's scales),
        # left at once: the map before it ends a stage. A branch computed at one other size and
        # merged back is a block's own, no detour
        if lo >= 0 and runs and key(runs[0]) != key(maps[lo]) and len({key(n) for n in runs}) > 1:
            detours.add(maps[lo].name)
        ends += stages
    return ends, detours


def _next_of_size(maps: list[fx.Node], key) -> list[fx.Node | None]:
    """For each map, the next map of its size in ``maps``, or None."""
    nxt: list[fx.Node | None] = [None] * len(maps)
    seen: dict = {}
    for j in range(len(maps) - 1, -1, -1):
        nxt[j] = seen.get(key(maps[j]))
        seen[key(maps[j])] = maps[j]
    return nxt


#: modules that only hold others: a block is none of them
_CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)


def _module_stack(node: fx.Node) -> list[tuple[str, object]]:
    """(qualified name, class) of the modules a node runs in, outermost first."""
    return list((node.meta.get("nn_module_stack") or {}).values())


def _container(kind) -> bool:
    """Whether a module class (or its name, as torch.export records it) only holds others."""
    return issubclass(kind, _CONTAINERS) if isinstance(kind, type) else \
        str(kind).rsplit(".", 1)[-1].strip("'>") in {c.__name__ for c in _CONTAINERS}


def _holds(block: str, node: fx.Node) -> bool:
    return any(q == block for q, _ in _module_stack(node))


def _inside(block: str, node: fx.Node) -> bool:
    """Whether every user of a node is inside ``block``: a value the block makes for its own use."""
    return all(_holds(block, u) for u in node.users if not _shape_only(u))


def _goes_on(end: fx.Node, between: list[fx.Node], again: list[fx.Node], sizes: _Sizes,
             maps: set[str]) -> tuple[bool, str | None]:
    """Whether a run of one size that ends at ``end`` goes on at ``again``, the next run of its
    size, with the block that holds both (or None): where its size comes back before its data
    moves on to another (through a layer or a detour), and only other runs (``between``) were
    made meanwhile, within a block (HRNet's branches run in turn, then the fusion of each size),
    or outside any for the next block's other inputs (HRNet's transitions: a conv that makes
    each branch the next module runs)."""
    if _moves_on(end, again, sizes, maps):
        return False, None
    block = _block_of(end, again[0])
    if block is not None:
        return True, block
    blocks = _blocks(again[0])   # innermost first: the next block is the outermost
    return not _blocks(end) and bool(blocks) and _inputs_of(blocks[-1], between), None


def _run_from(maps: list[fx.Node], i: int, key) -> list[fx.Node]:
    """The run of maps of one size that starts at ``maps[i]``."""
    j = i
    while j + 1 < len(maps) and key(maps[j + 1]) == key(maps[i]):
        j += 1
    return maps[i:j + 1]


def _moves_on(start: fx.Node, run: list[fx.Node], sizes: _Sizes, maps: set[str]) -> bool:
    """Whether the data leaves ``start``'s size before ``run``, the next run of that size: a
    tapped layer of another size reads it first (the next stage), or the run depends on it
    through maps (in ``maps``) of other sizes (a detour: a U-Net's deeper levels)."""
    first, limit, size = sizes.at[run[0].name], max(sizes.at[m.name] for m in run), sizes.key(start)
    targets, layers = set(run), sizes.layers
    seen, todo = {(start, False)}, [(start, False)]
    while todo:
        node, via = todo.pop()
        for user in node.users:
            at = sizes.at.get(user.name, limit + 1)
            if at > limit:
                continue
            other = user.name in maps and sizes.key(user) != size
            if user in targets and via or user in layers and at < first and other:
                return True
            state = (user, via or other)
            if state not in seen:
                seen.add(state)
                todo.append(state)
    return False


def _inputs_of(block: str, maps: list[fx.Node]) -> bool:
    """Whether ``maps`` go nowhere but into each other and into ``block``: they are made for it."""
    names = {m.name for m in maps}
    return all(u.name in names or _holds(block, u) for m in maps for u in m.users if not _shape_only(u))


def _block_output(end: fx.Node, before: list[fx.Node], blocks: set[str], key) -> fx.Node:
    """Where a run that ends at ``end`` ends its stage: where ``end`` is a map that one of
    ``blocks`` (those that come back to a size) makes for its own use, at that block's last
    output of its size among ``before`` (HRNet's middle size at the module's output, not at the
    map its lowest size's sum halves twice); else at ``end``."""
    for block in _blocks(end):
        if block in blocks and _inside(block, end):
            for m in reversed(before):
                if key(m) == key(end) and block in _blocks(m) and not _inside(block, m):
                    return m
    return end


def _blocks(node: fx.Node) -> list[str]:
    """The modules that run a node and are no containers, innermost first, the node's own layer
    excepted."""
    return [qual for qual, kind in reversed(_module_stack(node))
            if not (node.op == "call_module" and qual == node.target) and not _container(kind)]


def _block_of(node: fx.Node, successor: fx.Node) -> str | None:
    """The block that holds both a map and the next main-path map, of another size: the innermost
    module of both that is no container (a stride-2 inverted residual holds its expanded map and
    its strided depthwise conv); None where only the model holds both (ResNet's stage output and
    the next stage's first block)."""
    common = []
    for (qual, kind), (other, _) in zip(_module_stack(node), _module_stack(successor)):
        if qual != other:
            break
        common.append((qual, kind))
    for qual, kind in reversed(common):
        if not _container(kind):
            return qual
    return None


def _run_end(end: fx.Node, after: fx.Node | None, sizes: _Sizes, maps: list[fx.Node]) -> fx.Node:
    """Where a run of maps of one size that ends at ``end`` ends as a stage, the next map
    ``after`` having another size: at ``end``; or, where the size changes inside a block entered
    at the old size (a stride-2 inverted residual has no residual sum, so its expanded map, six
    times the channels, is the last map of the old size), at the map before that block: the
    last block's output, where a person ends the stage. A block is of two sizes, the old and the
    new, and runs at most one layer before the change (an expansion, a reduction; a norm): a
    module of more sizes (a U-Net's decoder) or more layers (a Swin stage, whose patch merging
    ends it; a decode head's MLPs and DeepLabV3+'s ASPP before their upsampling) is a part of the
    network."""
    if after is None or not sizes.grid or sizes.key(after) == sizes.key(end):
        return end
    block = _block_of(end, after)
    if block is None:
        return end

    inside = [m for m in maps if _holds(block, m)]
    if {sizes.key(m) for m in inside} != {sizes.key(end), sizes.key(after)}:
        return end   # a module of more sizes is a network's part (an encoder, a decoder)
    if sum(_holds(block, t) and sizes.at[t.name] < sizes.at[after.name] for t in sizes.layers) > 1:
        return end   # one that runs layers before the change is a stage's part (Swin's, with its blocks)
    first = maps.index(inside[0])
    before = maps[first - 1] if first > 0 else None
    return before if before is not None and sizes.key(before) == sizes.key(end) else end


def _path_ends(on_path: list[fx.Node], sizes: _Sizes, detours: set[str], outputs: set[str],
               maps: list[fx.Node]) -> list[fx.Node]:
    """The last main-path map of each size (the model's outputs excepted; see ``_run_end``), and
    each map a detour follows."""
    ends: list[fx.Node] = []
    stage: list[fx.Node] = []
    for i, n in enumerate(on_path):
        stage.append(n)
        after = on_path[i + 1] if i + 1 < len(on_path) else None
        if after is None or sizes.key(after) != sizes.key(n) or n.name in detours:
            kept = [m for m in stage if m.name not in outputs]
            if kept:
                ends.append(_run_end(n, after, sizes, maps) if n is kept[-1] else kept[-1])
            stage = []
    return ends


def _stage_points(traced: Traced, taps, grid) -> tuple[list[tuple[fx.Node, tuple]], str]:
    """The end of every resolution stage, in program order. Sizes are compared as symbolic
    expressions of the input size where they could be derived, so the placement holds at every
    input size. On the main path (cut nodes: no edge jumps over them) a stage ends where the
    next main-path feature map has another size (a ResNet's stage outputs). Where long skips
    leave no main path (a U-Net's encoder and decoder), every run of one size in program order
    is a stage, and the main-path map before such a detour ends one. Maps a block makes for its
    own use (an attention's keys and values, a gate's factors) are no stage. Without a grid
    (MLPs, transformers over tokens) sizes are feature widths."""
    nodes = _between_taps(traced, taps)
    sizes_of_convs = conv_sizes(traced, taps)
    kinds = {n.name: _feature_kind(n, grid, sizes_of_convs) for n in nodes}
    candidates = _candidates(nodes, kinds, grid)
    if not candidates:
        return [], ("no feature map between the first and the last tapped layer has the batch first and a "
                    "size to pool (nothing to rewrite the memory from)")
    main = {n.name for n in candidates}
    cuts = cut_nodes(traced.graph, lambda n: n.name in main)
    gate_own = _gate_own(traced, cuts)
    tapped = {t.node for t in taps}
    sizes = _Sizes(kinds, grid, {n.name: i for i, n in enumerate(traced.graph.nodes)},
                   frozenset(n for n in traced.graph.nodes if n.name in tapped))
    token_cuts, candidates = _split_tokens([n for n in candidates if n.name not in gate_own], sizes, cuts)
    on_path = [n for n in candidates if n.name in cuts]
    if not grid and on_path:  # a transformer's MLP expansion is not a stage of its own
        widths = [kinds[n.name][1] for n in on_path]
        main_width = max(set(widths), key=widths.count)
        candidates = [n for n in candidates if kinds[n.name][1] == main_width]
        on_path = [n for n in on_path if kinds[n.name][1] == main_width]
    output = next(n for n in traced.graph.nodes if n.op == "output")
    outputs = {a.name for a in output.all_input_nodes}
    maps = [n for n in candidates if sizes.kind(n) != "tokens"]
    ends, detours = _stretch_ends(maps, on_path, sizes, token_cuts)
    ends += _path_ends(on_path, sizes, detours, outputs, maps)
    at = sizes.at
    if on_path and on_path[-1] in ends:  # a last stage that ends in tokens (CvT's classifier reads them)
        tail = [t for t in token_cuts if at[t.name] > at[on_path[-1].name] and t.name not in outputs]
        ends[ends.index(on_path[-1])] = tail[-1] if tail else on_path[-1]
    ends = sorted(set(ends), key=lambda n: at[n.name])   # runs inside one block may end before it
    chosen = [(n, kinds[n.name]) for n in ends if n.name not in outputs]
    return chosen, "" if chosen else \
        "the only feature maps between the first and the last tapped layer are the model's outputs"


def find_updates(traced: Traced, taps, grid, options: Options) -> tuple[list[UpdateSite], str]:
    """The update points, and why there are none when there are none."""
    mode = options.updates.strip()
    if mode == "none":
        return [], "updates='none' was asked for"
    chosen: list[tuple[fx.Node, tuple]] = []
    reason = ""
    if mode == "stages":
        chosen, reason = _stage_points(traced, taps, grid)
    elif mode == "every":
        tap_nodes = {t.node for t in taps}
        last = None
        sizes = conv_sizes(traced, taps)
        for n in _between_taps(traced, taps):
            if n.name in tap_nodes and last is not None and (not chosen or chosen[-1][0] is not last[0]):
                chosen.append(last)
            kind = _feature_kind(n, grid, sizes)
            if kind is not None and (not grid or kind[0] in STAGED):
                last = (n, kind)
        reason = "" if chosen else "no tapped layer comes after a feature map the memory can be rewritten from"
    else:
        patterns = [p.strip() for p in mode.split(",") if p.strip()]
        everything = list(traced.graph.nodes)
        for p in patterns:
            hits = [n for n in everything if n.op not in ("placeholder", "output", "get_attr")
                    and (fnmatch.fnmatchcase(module_label(n), p) or fnmatch.fnmatchcase(n.name, p))]
            if not hits:
                raise PlanError(f"updates={p!r} matches no operation of the model.", field="updates",
                                hint="Use 'stages', 'every', 'none', or globs over module names (e.g. 'layer*.2.relu').")
            for n in hits:
                kind = _feature_kind(n, grid)
                if kind is None:
                    raise PlanError(f"updates={p!r}: {module_label(n)} does not output batched float features.",
                                    field="updates")
                if all(n is not c[0] for c in chosen):
                    chosen.append((n, kind))
        order = {n.name: i for i, n in enumerate(everything)}
        chosen.sort(key=lambda c: order[c[0].name])
    updates = [UpdateSite(node=n.name, label=module_label(n), kind=kind[0], features=kind[1], shape=tuple(kind[2]))
               for n, kind in chosen]
    return updates, reason


# --- sizes and the budget ------------------------------------------------------------------

def linear_unit(memory_shape: tuple[int, ...]) -> int:
    """Features a Linear layer reads per tap channel: the memory folded to one grid's worth of
    values (49 for a 7x7 grid), at most sqrt(memory size), so a head reads all of the memory
    without a Linear tap costing more than the convs' one channel."""
    size = math.prod(memory_shape)
    root = math.isqrt(size - 1) + 1 if size > 1 else 1
    return min(math.prod(memory_shape[1:]), root) if len(memory_shape) > 1 else root


def tap_widths(taps, memory_shape: tuple[int, ...], options: Options, unit: int | None = None) -> dict[str, TapWidth]:
    """Each layer's width for a memory of this shape: a layer called at several sizes reads one
    width, the widest any of its calls needs. ``unit``: the features a Linear reads per tap
    channel, if not ``linear_unit``'s (the budget may lower it)."""
    size = math.prod(memory_shape)
    unit = unit or linear_unit(memory_shape)
    widest: dict[str, int] = {}
    kernels: dict[str, str] = {}
    for t in taps:
        if options.tap_width == "full":
            k = size if t.axis == -1 else -(-size // max(math.prod(t.spatial), 1))
        else:
            k = options.tap_width * (unit if t.axis == -1 else 1)
        key = layer_key(t)
        widest[key] = max(widest.get(key, 0), k)
        kernels[key] = REGISTRY.get(t.kind).width_choices(t, options.form, options.group_kernel)
    return {key: TapWidth(k, kernels[key]) for key, k in widest.items()}


def _shape_for(channels: int, grid) -> tuple[int, ...]:
    return (channels, *grid) if grid is not None else (channels,)


def _memory_keys(taps) -> dict[str, str]:
    """The sum form's state_dict key of each tap's memory weights, unique per layer."""
    keys, taken, by_layer = {}, set(), {}
    for t in taps:
        if layer_key(t) in by_layer:
            keys[t.node] = by_layer[layer_key(t)]
            continue
        base = REGISTRY.get(t.kind).memory_key(t) if not t.computed_weight else \
            f"{t.qualname.split(':')[0]}.memory_weight".lstrip(".")
        key, i = base, 1
        while key in taken:
            key, i = f"{base}_{i}", i + 1
        taken.add(key)
        keys[t.node] = by_layer[layer_key(t)] = key
    return keys


def make_plan(traced: Traced, options: Options) -> Plan:
    options.check()
    taps, skipped = find_sites(traced, options)
    if not taps:
        raise PlanError(f"no layer of the model can read the memory: {_why_none(traced, skipped)}.",
                        hint="Nothing was written (a memory that no layer reads would change nothing). `plain=True` "
                        "writes the model as aimgen captures it, to see what it is made of.", field="plain")
    base, unused, idle = parameter_use(traced)
    grid = choose_grid(traced, taps)
    updates, no_update_reason = find_updates(traced, taps, grid or (), options)
    unit = math.prod(grid) if grid else 1
    max_channels = max(1, round((options.memory_size or DEFAULT_MEMORY_SIZE) / unit))
    notes: list[str] = []
    unit = None  # the features a Linear reads per tap channel: linear_unit's, unless the budget lowers it

    def rank_for(channels: int) -> int:
        return options.update_rank or min(DEFAULT_RANK, channels)

    def growth(channels: int, unit: int | None = None) -> int:
        shape = _shape_for(channels, grid)
        widths = tap_widths(taps, shape, options, unit)
        cost = sum({layer_key(t): REGISTRY.get(t.kind).extra_params(t, widths[layer_key(t)]) for t in taps}.values())
        return math.prod(shape) + cost + sum(update_cost(u.features, channels, rank_for(channels)) for u in updates)

    budget = options.budget if options.budget is not None else DEFAULT_BUDGET
    used = base - unused   # the budget is a share of what the forward uses: dead weights buy no memory
    limit = int(budget * used)
    if options.memory_size is not None:
        channels = max_channels
        if options.budget is not None and growth(channels) > limit:
            raise PlanError(
                f"memory_size={options.memory_size} costs +{growth(channels):,} parameters, over "
                f"budget={options.budget} ({limit:,} of {used:,} base parameters the forward uses).",
                field="memory_size",
                hint=f"Lower memory_size, use tap_width=1, fewer updates, or raise budget to "
                f"{growth(channels) / max(used, 1):.4f}.")
    elif growth(max_channels) <= limit:
        channels = max_channels
    elif growth(1) > limit:
        channels = 1
        full = linear_unit(_shape_for(1, grid))
        if options.tap_width != "full" and full > 1 and growth(1, 1) <= limit:
            lo, hi = 1, full  # Linear layers read fewer memory features: growth(1, lo) <= limit < growth(1, hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if growth(1, mid) <= limit else (lo, mid)
            unit = lo
            notes.append(f"Linear layers read {unit} memory feature{'s' if unit != 1 else ''} each (not {full}) "
                         f"to stay within the {budget:.0%} parameter budget")
        elif options.budget is not None:
            raise PlanError(
                f"even the smallest memory (1 channel) costs +{growth(1, 1):,} parameters, over budget="
                f"{options.budget} ({limit:,} of {used:,} base parameters the forward uses).", field="budget",
                hint="Raise budget, tap fewer layers (layers=/skip=), or use updates='none'.")
        else:
            unit = 1 if options.tap_width != "full" else None
            notes.append(f"smallest configuration: even 1 memory channel costs +{growth(1, unit):,} parameters "
                         f"({100 * growth(1, unit) / max(used, 1):.1f}% of the base), over the default "
                         f"{budget:.0%} budget")
    else:
        lo, hi = 1, max_channels  # growth(lo) <= limit < growth(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if growth(mid) <= limit else (lo, mid)
        channels = lo
        notes.append(f"memory shrunk to {count(math.prod(_shape_for(channels, grid)), 'float')} to stay within "
                     f"the {budget:.0%} parameter budget")
    memory_shape = _shape_for(channels, grid)
    if not updates:
        notes.append(f"no update block: {no_update_reason}; the memory is read but never rewritten, "
                     "so the carry does not move")
    return Plan(taps=tuple(taps), skipped=tuple(skipped), updates=tuple(updates), base_params=base,
                unused_params=unused, never_called=idle, memory_shape=memory_shape, widths=tap_widths(taps, memory_shape, options, unit),
                rank=rank_for(channels), memory_keys=_memory_keys(taps), options=options, notes=tuple(notes),
                no_update_reason=no_update_reason if not updates else "")
