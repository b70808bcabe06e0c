"""What a tap kind is, and the registry that finds them.

A *tap kind* owns everything aimgen knows about one kind of weight layer (torch.nn's convs,
transposed convs and Linear; ``F.conv*d``/``F.linear`` on a parameter; a user's own layer kind
registered the same way). Nothing outside the kind's file names its layer types. A kind says:

- **matching**: which graph nodes are its layers (``module_types``, ``functions``), and the
  facts about one (``inspect`` -> ``TapSite``, or ``Skip`` with the reason);
- **cost**: how many parameters ``k`` memory channels (or features) add (``extra_params``);
- **code**, in both forms of a tap:
  - *sum* (the default): ``layer(x) + memory part``; the base weight keeps its shape and the
    memory's weights are their own parameter (``layer_sum`` builds the layer, ``call_sum``
    calls it);
  - *literal*: ``layer(torch.cat([x, m]))`` with a widened weight (``layer_literal``,
    ``call_literal``);
  and which runtime helpers (from aimgen/runtime.py, or the kind's own) that code needs;
- **weights**: which axis of the weight widens and how a base weight is copied in
  (``widen``), and how weights move between the two forms (``to_sum``/``to_literal``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

import torch
import torch.fx as fx
from torch import nn

from .. import runtime
from ..errors import InternalError


@dataclass(frozen=True)
class TapSite:
    """Facts about one call of a weight layer in the graph (a layer called twice has two)."""

    node: str                # fx node name
    qualname: str            # module qualified name; for functional calls the weight's owner module
    layer_type: str          # e.g. "Conv2d", "F.linear"
    kind: str                # registry key of its tap kind
    axis: int                # where the memory joins the input: 1 (channels) or -1 (features)
    in_size: int             # input channels / features of the base layer
    out_size: int
    groups: int
    kernel: tuple[int, ...]  # () for linear
    spatial: tuple[int, ...]  # the input's spatial size at the example input; () for linear
    weight: str              # qualified name of the base weight
    functional: bool = False
    computed_weight: bool = False  # the weight is computed in forward (sum form only)
    sample_rows: bool = False      # its input's rows are windows of the samples (see shapes.sample_rows)
    batch_second: bool = False     # its input is (L, N, ..., D): the batch on its second axis (a Linear)
    views: bool = False            # its input's rows are views of the samples, view after view (see shapes.sample_rows)

    @property
    def unit(self) -> str:
        return "feature" if self.axis == -1 else "channel"


@dataclass(frozen=True)
class Skip:
    """A layer of a tappable kind that is left as it is, and why."""

    node: str
    qualname: str
    layer_type: str
    reason: str


@dataclass(frozen=True)
class TapWidth:
    """The planner's decision for one layer: ``k`` memory channels/features, read through the
    layer's own kernel ('full') or its center tap only ('pointwise')."""

    k: int
    kernel: str = "full"


@dataclass
class Arg:
    """One constructor argument: its value and how it is written."""

    name: str
    value: Any
    positional: bool
    widen: int = 0   # literal form: added to the value (``64 + 1``), shown as a sum


@dataclass
class Constructor:
    """``callee(*args, **kwargs)``, argument by argument, so a kind can change one argument and
    the code generator can replace values with expressions (``planes * 4``)."""

    callee: str
    args: list[Arg]
    imports: set[str] = field(default_factory=set)
    #: the signature's defaults of the arguments left out (so calls can be compared argument by argument)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: the signature's parameter names, in order
    order: tuple[str, ...] = ()
    #: plain settings its torch.nn submodules get after it is built, by submodule name ('' for
    #: itself): what the base model's builder set after construction (BatchNorm eps, momentum)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def full_args(self) -> list[tuple[Arg, bool]]:
        """Every argument in signature order, the left-out ones at their defaults: (arg, given)."""
        given = {a.name: a for a in self.args}
        out = []
        for name in self.order:
            if name in given:
                out.append((given.pop(name), True))
            elif name in self.defaults:
                out.append((Arg(name, self.defaults[name], False), False))
        out += [(a, True) for a in self.args if a.name in given]
        return out

    def value(self, name: str, missing=None):
        for a in self.args:
            if a.name == name:
                return a.value
        return self.defaults.get(name, missing)

    def with_arg(self, name: str, value, positional: bool = False) -> "Constructor":
        args = [a for a in self.args if a.name != name] + [Arg(name, value, positional)]
        return replace(self, args=args)

    def widened(self, name: str, by: int) -> "Constructor":
        if not any(a.name == name for a in self.args):
            raise InternalError(f"{self.callee}: no constructor argument {name!r} to widen.")
        return replace(self, args=[replace(a, widen=by) if a.name == name else a for a in self.args])

    def renamed(self, callee: str) -> "Constructor":
        return replace(self, callee=callee)

    def source(self, render: Callable[[Arg], str]) -> str:
        """The call, each argument written by ``render`` (a literal or a parameter name)."""
        parts = []
        for a in self.args:
            src = render(a)
            if a.widen:
                src = f"{src} + {a.widen}"
            parts.append(src if a.positional else f"{a.name}={src}")
        return f"{self.callee}({', '.join(parts)})"


@dataclass
class CallSource:
    """A tapped call, as source pieces: what the code generator hands a kind to write it."""

    callee: str                  # "self.conv1", "F.conv2d"
    args: list[str]              # positional arguments (the input first)
    kwargs: dict[str, str]
    memory: str                  # the fitted memory, e.g. "memory.channels(1, x)"
    memory_weight: str = ""      # sum form of a functional call: the memory's own parameter

    def original(self, replace_first: str | None = None) -> str:
        args = list(self.args)
        if replace_first is not None:
            args[0] = replace_first
        return f"{self.callee}({', '.join(args + [f'{k}={v}' for k, v in self.kwargs.items()])})"

    def named(self, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, str]:
        """Argument sources by parameter name, defaults written as literals where not given."""
        out = {n: repr(defaults[n]) for n in names if n in defaults}
        out.update(zip(names, self.args))
        out.update({k: v for k, v in self.kwargs.items() if k in names})
        return out


class TapKind:
    """Base class of tap kinds. A module kind sets ``module_types``; a functional kind sets
    ``functions``. Subclasses implement ``inspect`` and the code/weight hooks they need."""

    key: ClassVar[str] = ""
    module_types: ClassVar[tuple[type, ...]] = ()
    functions: ClassVar[tuple[Any, ...]] = ()
    #: every runtime object (class, function) the kind's code may use; ``runtime`` picks per layer
    runtime_objects: ClassVar[tuple[Any, ...]] = ()
    #: the constructor argument that holds the input width (module kinds)
    in_arg: ClassVar[str] = ""
    #: whether the literal form can tap it (a widened weight); else its layers are tapped in
    #: the sum form only, and left as they are in the literal form
    literal: ClassVar[bool] = True

    # --- matching ---------------------------------------------------------------------------
    def match(self, node: fx.Node, root: nn.Module) -> bool:
        if node.op == "call_module":
            return type(root.get_submodule(node.target)) in self.module_types
        if node.op == "call_function":
            return node.target in self.functions
        return False

    def owns(self, module: nn.Module) -> bool:
        """Whether a module (not a node) is a layer of this kind."""
        return type(module) in self.module_types

    def inspect(self, node: fx.Node, root: nn.Module) -> TapSite | Skip:
        raise NotImplementedError

    def runtime(self, site: TapSite, form: str, width: TapWidth) -> tuple[Any, ...]:
        """The runtime objects this layer's code needs (copied into the generated file)."""
        if form == "literal":
            return (runtime.cat_features,) if site.axis == -1 else \
                (runtime.cat_grouped,) if site.groups > 1 else (runtime.cat_channels,)
        return ()

    # --- cost -------------------------------------------------------------------------------
    def extra_params(self, site: TapSite, width: TapWidth) -> int:
        """Parameters the memory adds to this layer: out x k x kernel (the kernel's taps, or 1)."""
        taps = math.prod(site.kernel) if width.kernel == "full" else 1
        return site.out_size * width.k * taps

    def width_choices(self, site: TapSite, form: str, group_kernel: str) -> str:
        """The memory kernel this layer reads through ('full' or 'pointwise')."""
        return "full"

    # --- code -------------------------------------------------------------------------------
    def input_source(self, src: CallSource) -> str:
        """Source of the input the memory is fitted to (the call's first argument)."""
        return src.args[0]

    def fit_expr(self, site: TapSite, width: TapWidth, x: str, memory: str = "memory") -> str:
        """Source of the memory fitted to this layer's input ``x``."""
        read = f"{memory}.{'features' if site.axis == -1 else 'channels'}({width.k}, {x})"
        if site.batch_second:   # (N or 1, 1, ..., k) -> (1, N or 1, ..., k): each sample's along its axis
            return f"{read}.transpose(0, 1)"
        if site.views:
            return f"per_view({read}, {x})"
        return f"per_window({read}, {x})" if site.sample_rows else read

    def layer_sum(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        raise NotImplementedError

    def layer_literal(self, site: TapSite, ctor: Constructor, width: TapWidth) -> Constructor:
        by = width.k * (site.groups if site.axis == 1 else 1)
        return ctor.widened(self.in_arg, by)

    def call(self, site: TapSite, form: str, width: TapWidth, src: CallSource) -> str:
        """Source of the tapped call (a module kind: the layer called on its input)."""
        x, m = src.args[0], src.memory
        if form == "sum":
            return f"{src.callee}({x}, {m})"
        if site.axis == -1:
            return f"{src.callee}(cat_features({x}, {m}))"
        if site.groups > 1:
            return f"{src.callee}(cat_grouped({x}, {m}, {site.groups}))"
        return f"{src.callee}(cat_channels({x}, {m}))"

    def comment(self, site: TapSite, width: TapWidth, name: str, x: str = "x") -> str:
        """What the tap equals, in the literal form's words (``x``: the input's source)."""
        windows = ", each window with its sample's m" if site.sample_rows else \
            ", each view with its sample's m" if site.views else ""
        if site.axis == -1:
            return f"= {name}(cat([{x}, m], -1))" + windows
        if site.groups > 1:
            center = ", center tap" if width.kernel == "pointwise" else ""
            return f"= {name}({x} with m in every group{center})" + windows
        return f"= {name}(cat([{x}, m], 1))" + windows

    # --- weights ----------------------------------------------------------------------------
    def memory_key(self, site: TapSite) -> str:
        """The sum form's state_dict key of the memory's weights for this layer (functional
        calls on a computed weight get theirs from the planner, which keeps them unique)."""
        if site.functional:
            return f"{site.weight}_memory"
        return f"{site.qualname}.memory_weight"

    def literal_shape(self, site: TapSite, base_shape: tuple[int, ...], width: TapWidth) -> tuple[int, ...]:
        """The widened weight's shape (conv/linear layout: (out, in/groups + k, *kernel))."""
        shape = list(base_shape)
        shape[1] += width.k
        return tuple(shape)

    def to_literal(self, site: TapSite, weight: torch.Tensor, memory: torch.Tensor, width: TapWidth) -> torch.Tensor:
        """The literal form's widened weight from the base weight and the memory's weights."""
        memory = self._full_kernel(site, memory, width)
        return torch.cat([weight, memory.to(weight.dtype)], 1)

    def to_sum(self, site: TapSite, widened: torch.Tensor, width: TapWidth) -> tuple[torch.Tensor, torch.Tensor]:
        """(base weight, memory weights) from the literal form's widened weight."""
        per_group = site.in_size // site.groups
        weight, memory = widened[:, :per_group], widened[:, per_group:]
        return weight.clone(), self._from_full_kernel(site, memory, width)

    def memory_shape(self, site: TapSite, width: TapWidth) -> tuple[int, ...]:
        kernel = site.kernel if width.kernel == "full" else (1,) * len(site.kernel)
        return (site.out_size, width.k, *kernel)

    def _full_kernel(self, site: TapSite, memory: torch.Tensor, width: TapWidth) -> torch.Tensor:
        """A pointwise memory kernel as the full kernel with only its center tap set."""
        if width.kernel == "full" or not site.kernel:
            return memory
        full = memory.new_zeros(*memory.shape[:2], *site.kernel)
        center = tuple((k - 1) // 2 for k in site.kernel)
        full[(slice(None), slice(None), *center)] = memory.reshape(memory.shape[:2])
        return full

    def _from_full_kernel(self, site: TapSite, memory: torch.Tensor, width: TapWidth) -> torch.Tensor:
        if width.kernel == "full" or not site.kernel:
            return memory.clone()
        center = tuple((k - 1) // 2 for k in site.kernel)
        kept = memory[(slice(None), slice(None), *center)]
        rest = memory.clone()
        rest[(slice(None), slice(None), *center)] = 0
        if rest.abs().max() > 0:
            raise InternalError(f"{site.weight}: the literal weights use kernel taps besides the center, which "
                                "a pointwise memory kernel cannot hold.")
        return kept.reshape(*memory.shape[:2], *([1] * len(site.kernel))).clone()

    # --- the layer as a module (used by the experiment's wider arm) -------------------------
    def sizes(self, module: nn.Module) -> tuple[int, int]:
        """(input width, output width) of a module of this kind."""
        raise NotImplementedError

    def parallel_branch(self, module: nn.Module, hidden: int) -> tuple[nn.Module, nn.Module] | None:
        """(down, up): two new layers of this kind, ``input -> hidden -> output`` with
        ``module``'s input geometry, that can run beside ``module`` and be added to its output
        (the experiment's "wider" control). None when this kind cannot host one."""
        return None


@dataclass
class Registry:
    kinds: list[TapKind] = field(default_factory=list)

    def register(self, kind_cls: type[TapKind]) -> type[TapKind]:
        if any(k.key == kind_cls.key for k in self.kinds):
            raise InternalError(f"a tap kind {kind_cls.key!r} is registered twice.")
        self.kinds.append(kind_cls())
        return kind_cls

    def unregister(self, key: str) -> None:
        self.kinds = [k for k in self.kinds if k.key != key]

    def find(self, node: fx.Node, root: nn.Module) -> TapKind | None:
        for kind in self.kinds:
            if kind.match(node, root):
                return kind
        return None

    def kind_of(self, module: nn.Module) -> TapKind | None:
        """The kind of a module (an nn.Conv2d, an nn.Linear...), or None."""
        for kind in self.kinds:
            if kind.module_types and kind.owns(module):
                return kind
        return None

    def kind_for(self, module: nn.Module) -> TapKind | None:
        """The kind of a module, a subclass of its types, or a layer of its runtime (a generated
        MemoryConv2d, whose class the generated file defines itself)."""
        for kind in self.kinds:
            if kind.module_types and isinstance(module, kind.module_types):
                return kind
        for kind in self.kinds:
            if type(module).__name__ in {o.__name__ for o in kind.runtime_objects if isinstance(o, type)}:
                return kind
        return None

    def get(self, key: str) -> TapKind:
        for kind in self.kinds:
            if kind.key == key:
                return kind
        raise InternalError(f"no tap kind {key!r} is registered.")

    @property
    def module_types(self) -> tuple[type, ...]:
        return tuple(t for k in self.kinds for t in k.module_types)

    def is_weight_layer(self, module: nn.Module) -> bool:
        """A module of a tappable type (or a subclass: a user's own conv class counts too)."""
        return isinstance(module, self.module_types)

    @property
    def layer_types(self) -> list[str]:
        names = []
        for k in self.kinds:
            names += [t.__name__ for t in k.module_types]
            names += [f"F.{f.__name__}" for f in k.functions if hasattr(f, "__name__")]
        return sorted(set(names))

    def runtime_names(self) -> set[str]:
        """Names of every runtime object a kind may copy into a generated file."""
        return {o.__name__ for k in self.kinds for o in k.runtime_objects}


REGISTRY = Registry()


def per_dimension(mixin: type, name: str, bases: tuple[type, ...], doc: str) -> tuple[type, ...]:
    """``class {name}Nd(mixin, nn.BaseNd)`` for each of ``bases`` (torch.nn's 1d, 2d and 3d
    classes of one layer type): a kind's layer classes, one per dimensionality, whose code is
    all in ``mixin``. ``doc`` may name the base as ``{base}``. Each class carries the two lines
    of source that define it (``__aimgen_source__``), which is what a generated file gets."""
    classes = []
    for base in bases:
        if not base.__module__.startswith("torch.nn"):
            raise InternalError(f"per_dimension: {base.__qualname__} is not a torch.nn class.")
        cls_name = name + base.__name__[-2:]
        text = doc.format(base=f"nn.{base.__name__}")
        cls = type(cls_name, (mixin, base), {"__doc__": text, "__module__": mixin.__module__,
                                              "__qualname__": cls_name})
        cls.__aimgen_source__ = f'class {cls_name}({mixin.__name__}, nn.{base.__name__}):\n    """{text}"""'
        classes.append(cls)
    return tuple(classes)


def batched_input(node: fx.Node, expected_rank: int | None = None, windows: bool = False) -> tuple | None:
    """The shape of the node's first input if its first axis is the batch axis (or, with
    ``windows``, holds windows of the samples, sample by sample), else None."""
    arg = node.args[0] if node.args else None
    if not isinstance(arg, fx.Node):
        return None
    meta = arg.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    shape = tuple(meta.shape)
    if expected_rank is not None and len(shape) != expected_rank:
        return None
    if arg.meta.get("batch_axis_ok") is False and not (windows and (arg.meta.get("sample_rows") or
                                                                    arg.meta.get("sample_views"))):
        return None
    return shape


def not_batched(node: fx.Node, what: str) -> str:
    """Why a layer's input cannot read a sample's memory: ``what`` it is not, or that it is the
    same whatever the input (no sample's memory to read)."""
    arg = node.args[0] if node.args else None
    if isinstance(arg, fx.Node) and arg.meta.get("sample_free"):
        return ("its input is the same whatever the model's input (a table, such as relative positions for a "
                "bias): there is no sample's memory to read")
    return what


def row_layout(node: fx.Node) -> dict[str, bool]:
    """How the rows of the node's first input hold the samples where its first axis is not the
    batch (TapSite's fields): windows of each sample in turn (``sample_rows``: window
    attention), or views, view after view (``views``: ``torch.cat([image1, image2])``, sample
    i's views at rows i, N + i, ...). See shapes.sample_rows."""
    arg = node.args[0] if node.args else None
    rows = isinstance(arg, fx.Node) and arg.meta.get("batch_axis_ok") is False
    return {"sample_rows": bool(rows and arg.meta.get("sample_rows")),
            "views": bool(rows and arg.meta.get("sample_views"))}


def node_arg(node: fx.Node, names: tuple[str, ...], name: str, default=None):
    """The value of a call's argument by its parameter name (positional or keyword)."""
    i = names.index(name)
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def owner_of(node: fx.Node) -> str:
    """The qualified name of the module whose forward made this node ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def weight_param(node: fx.Node, root: nn.Module, names: tuple[str, ...]) -> tuple[str | None, str]:
    """(qualified name of the weight parameter the call reads directly, or None; why not)."""
    w = node_arg(node, names, "weight")
    if not isinstance(w, fx.Node) or w.op != "get_attr":
        return None, "its weight is computed in forward, not a parameter read directly"
    try:
        param = root.get_parameter(w.target)
    except AttributeError:
        return None, f"its weight {w.target!r} is a buffer or constant, not a parameter"
    if not isinstance(param, nn.Parameter):
        return None, "its weight is not a parameter"
    return w.target, ""
