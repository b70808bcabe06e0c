"""From a captured graph and a plan to the classes of a standalone source file.

The output is structured as a person writes a model: one class per distinct block of the base
model (scopes.py finds the blocks, classes.py shares a class between identical instances and
turns what differs into ``__init__`` parameters), containers kept as they were, and the memory
passed through block calls explicitly: a block that reads or rewrites the memory has
``forward(self, x, memory) -> (y, memory)``; one that does neither is called as in the base
model. ``flat=True`` writes the same function as one forward instead.

This package decides *what* each line says; templates/ decide how the file is laid out. Every
identifier comes from naming.Namespace; user strings that are not safe identifiers are written
with repr; constants go through literals.literal. Nothing from a name is ever pasted into code.
"""
from __future__ import annotations

import ast
import difflib
import inspect
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.fx as fx
from torch import nn

from .. import runtime
from ..errors import InternalError, KeepWhole, RenderError
from ..literals import literal
from ..modules import ValueWriter, constructor
from ..naming import Namespace, attribute_access, class_name, count, docstring, is_safe_identifier, sanitize
from ..plan import Plan, UpdateSite
from ..sourcecopy import SourceCopier
from ..taps import REGISTRY, Arg, CallSource, Constructor, TapSite
from ..tracing import Traced, module_of, train_return
from . import scopes
from .classes import ANY, BlockClass, BlockRef, Instance, member_lines, parameterise, structure
from .expressions import CONST, MARK, Expressions, ref
from .functions import (Function, Naming, Stmt, on_return_line, refs_in, render, return_line, source_frame,
                        source_name, source_statement, unpack)
from .members import Member, Raw, Tree, tensor_member
from .scopes import Scope, container_kind

#: names the generated file binds at module level besides the runtime's and the classes'
TEMPLATE_NAMES = frozenset({"torch", "nn", "F", "math", "operator", "builtins", "functools", "build_model",
                            "example_inputs", "EXAMPLE_INPUT_SHAPES", "EXAMPLE_INPUT_DTYPES", "AIMGEN", "Group"})
_CONSTANT = re.compile(f"{CONST}([0-9]+){CONST}")
_PACKED = "*inputs"   # the list a block's inputs come in (Generator._packed), as its statements refer to it
#: the runtime every AiM file has, in the order it is written
BASE_RUNTIME = (runtime.fit_memory, runtime.MemoryState, runtime.Memory)


def reserved_names() -> frozenset[str]:
    """Every module-level name a generated file may bind itself: user code copied into it must
    not use them (the registry adds its kinds' runtime names)."""
    names = set(TEMPLATE_NAMES) | {o.__name__ for o in BASE_RUNTIME}
    names |= {runtime.MemoryUpdate.__name__, runtime.MemorySequential.__name__, runtime.weight_parameter.__name__,
              runtime.pool_to_grid.__name__, runtime.per_window.__name__}
    return frozenset(names | REGISTRY.runtime_names())


@dataclass
class Source:
    """Everything the template needs, already written as source."""

    class_name: str
    base_class: str
    plain: bool
    classes: list[str]
    runtime: str
    copied: str
    imports: list[str]
    memory_attr: str
    uses_group: bool
    update_names: dict[str, str] = field(default_factory=dict)   # update node -> attribute path
    inline: list[tuple[str, str]] = field(default_factory=list)   # blocks written inline, and why
    block_classes: dict[str, int] = field(default_factory=dict)   # class name -> instances


class Generator:
    def __init__(self, traced: Traced, plan: Plan | None, *, plain: bool, flat: bool = False):
        self.traced = traced
        self.plan = None if plain else plan
        self.plain = self.plan is None
        self.form = plan.form if plan is not None else "sum"
        self.root = traced.root
        self.graph = traced.graph
        self.nodes = {n.name: n for n in self.graph.nodes}
        self.taps: dict[str, TapSite] = {} if self.plain else {t.node: t for t in self.plan.taps}
        self.updates: dict[str, UpdateSite] = {} if self.plain else {u.node: u for u in self.plan.updates}
        call_targets = {n.target for n in self.graph.nodes if n.op == "call_module"}
        self.top, self.owner = scopes.build(self.graph, self.root, set(traced.leaf_names))
        self.after: dict[int, list[UpdateSite]] = {}
        hosts = self._place_updates()
        scopes.mark_memory(self.top, set(self.taps), hosts)
        scopes.decide(self.top, flat=False)
        # an update block belongs to the block that writes it (the same module in --flat)
        self.update_attr: dict[str, tuple[Scope, str]] = {}   # update node -> (owner scope, attribute)
        self._attr_ns: dict[int, Namespace] = {}
        self.memory_attr = "" if self.plain else self._attr_namespace(self.top).create("memory")
        for u in self.updates.values():
            host, item = self._update_place[u.node]
            owner = scopes.outlined_ancestor(host)
            if isinstance(item, Scope):
                stem = item.qual[len(owner.qual) + 1:] if owner.qual else item.qual
            else:
                stem = u.label.split(":")[-1] if ":" in u.label else u.label
                stem = stem[len(owner.qual) + 1:] if owner.qual and stem.startswith(owner.qual + ".") else stem
            self.update_attr[u.node] = (owner, self._attr_namespace(owner).create(f"update_{sanitize(stem)}"))
        if flat:
            for s in self.top.walk():
                s.outlined, s.chain = False, ""
        self.scope_of: dict[str, Scope] = {}
        for s in self.top.walk():
            if not s.is_root:
                self.scope_of.setdefault(s.qual, s)
        # the sum form's memory weights of functional taps live on the weight's owner module
        self.extras: dict[str, list[Member]] = {}
        owners = set()
        if not self.plain and self.form == "sum":
            for t in self.plan.taps:
                if t.functional:
                    owners.add(self.plan.memory_keys[t.node].rpartition(".")[0])
        attrs = {n.target for n in self.graph.nodes if n.op == "get_attr"}
        called = {s.qual for s in self.top.walk() if s.outlined}  # a module called whole must exist
        owners |= {owner.qual for owner, _ in self.update_attr.values()}
        # a module kept whole whose tensors the forward reads but which it never calls (PyTorch
        # code that calls a method, `self.rel_pos.get_bias()`): built by its own constructor too
        whole = {q for q in self.traced.leaf_names if any(a.startswith(q + ".") for a in attrs)}
        self.tree = Tree(self.root, call_targets | whole, attrs, owners | called | {self.top.qual})
        self._keep_whole: dict[str, tuple[str, str | None, str]] = {}  # module -> (message, hint, why)
        self.reserved = set(reserved_names())
        self.copier = SourceCopier(taken=self.reserved)
        self.writer = ValueWriter(self.copier)
        self.expr = Expressions(traced.training_values, self.copier)
        self.class_names = Namespace(self.reserved)
        self.root_class = self.class_names.create_class(("" if self.plain else "Aim") + class_name(type(self.root).__name__))
        self.runtime_needed: list = [] if self.plain else list(BASE_RUNTIME)
        self.uses_group = False
        self._leaf_ctors: dict[str, Constructor] = {}
        self._class_lines: dict[type, tuple[str, int, int] | None] = {}
        self._packs: dict[int, list | tuple | None] = {}   # scope -> its inputs' list as the user hands it
        if not self.plain and self.form == "sum":
            for t in self.plan.taps:
                key = self.plan.memory_keys[t.node]
                owner, _, attr = key.rpartition(".")
                if t.functional and not any(m.name == attr for m in self.extras.get(owner, [])):
                    width = self.plan.width(t)
                    shape = REGISTRY.get(t.kind).memory_shape(t, width)
                    self.extras.setdefault(owner, []).append(Member(attr, Constructor("weight_parameter", [
                        Arg("shape", shape, True), Arg("fan_in", _fan_in(t, width), True)])))
                    self._need((runtime.weight_parameter,))

    # --- updates ------------------------------------------------------------------------
    def _place_updates(self) -> list[Scope]:
        """Where each update statement goes: right after its node, or, when the node is the
        last value of a block, after that block's call in the parent (so the update after
        ``layer1``'s last block reads ``memory = self.update_layer1(memory, x)`` in the root)."""
        hosts = []
        self._update_place: dict[str, tuple[Scope, object]] = {}
        for u in self.updates.values():
            node = self.nodes[u.node]
            scope, item = self.owner[node.name], node
            while not scope.is_root and scope.nodes and scope.nodes[-1] is node and node in scope.outputs:
                scope, item = scope.parent, scope
            self.after.setdefault(id(item), []).append(u)
            hosts.append(scope)
            self._update_place[u.node] = (scope, item)
        return hosts

    # --- members ------------------------------------------------------------------------
    def leaf(self, q: str) -> Constructor:
        if q not in self._leaf_ctors:
            module = self.root.get_submodule(q)
            why = self.traced.leaf_reasons.get(q) or ("listed in leaf=" if q in self.traced.leaf_names else "")
            ctor = constructor(module, q, copier=self.copier, why=why, recorded=self.traced.constructor_args.get(q),
                               records=self.traced.constructor_args)
            taps = [t for t in self.taps.values() if not t.functional and t.qualname == q]
            if taps:
                site = taps[0]
                kind = REGISTRY.get(site.kind)
                width = self.plan.width(site)
                ctor = kind.layer_sum(site, ctor, width) if self.form == "sum" else kind.layer_literal(site, ctor, width)
                self._need(kind.runtime(site, self.form, width))
            self._leaf_ctors[q] = ctor
        return self._leaf_ctors[q]

    def members(self, q: str, cls: Scope) -> list[Member]:
        """The members of module ``q`` as written in its own class (or its holder)."""
        out = []
        if q == "" and not self.plain:
            out.append(Member(self.memory_attr, Constructor("Memory", [
                Arg("shape", tuple(self.plan.memory_shape), True),
                Arg("carry_rate", self.plan.carry_rate, False)]),
                f"{count(math.prod(self.plan.memory_shape), 'float')}, carried from batch to batch"))
        module = self.tree.module(q)
        for name, kind, cq in self.tree.entries(q):
            if kind == "unused":
                continue
            if kind == "leaf":
                out.append(Member(name, self.leaf(cq)))
            elif kind == "tree":
                out.append(Member(name, self.module_value(cq)))
            else:
                out.append(self._tensor(name, kind, cq, module))
        out += self.extras.get(q, [])
        for node, (owner, attr) in self.update_attr.items():
            if owner.qual == q:
                u = self.updates[node]
                out.append(Member(attr, Constructor("MemoryUpdate", [
                    Arg("features", u.features, True), Arg("memory_channels", self.plan.memory_channels, True),
                    Arg("rank", self.plan.rank, False)])))
        return out

    def _tensor(self, name: str, kind: str, q: str, owner: nn.Module) -> Member:
        value = self.tree_attr(q)
        site = next((t for t in self.taps.values() if t.functional and t.weight == q), None)
        if site is not None and self.form == "literal":
            width = self.plan.width(site)
            shape = REGISTRY.get(site.kind).literal_shape(site, tuple(value.shape), width)
            self._need((runtime.weight_parameter,))
            return Member(name, Constructor("weight_parameter", [Arg("shape", shape, True),
                                                                 Arg("fan_in", _fan_in(site, width), True)]),
                          "widened: its last slots read the memory")
        module = q.rpartition(".")[0]
        try:
            ctor, comment = tensor_member(value, kind, owner, name, self.traced.constructor_args.get(module),
                                          self.copier, runtime=not self.plain)
            if isinstance(ctor, Constructor) and ctor.callee == "weight_parameter":
                self._need((runtime.weight_parameter,))
        except KeepWhole as err:  # the module that owns it can be kept whole (its __init__ builds it)
            reason = err.modules[""]
            if kind == "tensor" and not module:  # torch.fx's constant: the module whose forward made it
                users = [u for n in self.graph.nodes if n.op == "get_attr" and n.target == q for u in n.users]
                module = module_of(users[0]) if users else ""
                reason = (f"its forward makes a {tuple(value.shape)} tensor that torch.fx records as a constant, "
                          "too large to write as a literal; kept whole, the module makes it itself")
            message = err.message.replace(f" {name} ", f" {q} ", 1)
            if not module:  # the root cannot be kept whole
                raise KeepWhole(message, hint=err.hint, modules={}) from None
            # noted, and asked for all at once when the members are known (see generate)
            self._keep_whole.setdefault(module, (message, err.hint, reason))
            return Member(name, Raw("None"))
        return Member(name, ctor, comment)

    def tree_attr(self, q: str):
        obj = self.root
        for part in q.split("."):
            obj = getattr(obj, part)
        return obj

    def module_value(self, q: str):
        """A used submodule as a value: a block's instance, a container, or a holder (Group)."""
        module = self.tree.module(q)
        scope = self.scope_of.get(q)
        container = container_kind(module)
        if scope is not None and scope.outlined and not container:
            return BlockRef(scope)
        if container in ("sequential", "list") and self.tree.is_list(q):
            items = [self.leaf(cq) if kind == "leaf" else Constructor("nn.Identity", []) if kind == "unused"
                     else self.module_value(cq) for _, kind, cq in self.tree.entries(q)]
            if container == "list":
                return Constructor("nn.ModuleList", [Arg("modules", items, True)])
            callee = "MemorySequential" if scope is not None and scope.outlined and scope.chain == "memory" \
                else "nn.Sequential"
            if callee == "MemorySequential":
                self._need((runtime.MemorySequential,))
            return Constructor(callee, [Arg(str(i), v, True) for i, v in enumerate(items)])
        if container == "sequential" and all(k != "unused" for _, k, _ in self.tree.entries(q)) and \
                [n for n, _, _ in self.tree.entries(q)] == list(module._modules):
            # a Sequential with named items: nn.Sequential(OrderedDict([('name', ...), ...]))
            items = [Constructor("", [Arg("name", name, True), Arg("module", self.leaf(cq) if kind == "leaf"
                                                                       else self.module_value(cq), True)])
                     for name, kind, cq in self.tree.entries(q)]
            callee = "MemorySequential" if scope is not None and scope.outlined and scope.chain == "memory" \
                else "nn.Sequential"
            if callee == "MemorySequential":
                self._need((runtime.MemorySequential,))
            self.writer.imports.add("collections")
            return Constructor(callee, [Arg("modules", Constructor("collections.OrderedDict", [
                Arg("items", items, True)]), True)])
        if container == "dict":
            items = {name: (self.leaf(cq) if kind == "leaf" else self.module_value(cq))
                     for name, kind, cq in self.tree.entries(q) if kind in ("leaf", "tree")}
            return Constructor("nn.ModuleDict", [Arg("modules", items, True)])
        self.uses_group = True
        members = self.members(q, None)
        return Constructor("Group", [Arg(m.name, m.value, False) for m in members])

    # --- functions ----------------------------------------------------------------------
    def function(self, cls: Scope) -> tuple[Function, dict[str, str]]:
        """The forward of an outlined scope (or the root), and its value names."""
        root = cls.is_root
        if root:
            params = [n for n in self.graph.nodes if n.op == "placeholder"]
            fn = Function(name="forward" if self.plain else "forward_with_memory", params=params,
                          memory=not self.plain)
            if not self.plain:
                fn.prologue = ["memory = MemoryState(memory)"]
                fn.return_memory = "memory.final()"
        else:
            params = list(cls.inputs)
            fn = Function(name="forward", params=params, memory=cls.memory)
        self._emit_items(cls, cls, fn)
        unpack(fn)
        if not root:
            outs = [ref(o) for o in cls.outputs]
            fn.returns = ", ".join(outs)
        param_names = self._param_names(cls, params)
        packed = self._packed(cls)
        listed = self.expr.arg(self._packs[id(cls)]) if packed else ""
        if packed and sum(st.code.count(listed) for st in fn.body) != 1:
            packed = self._packs[id(cls)] = None   # (its callers are written after it: they pass each input)
        if packed:   # the one list its inputs come in: written as the forward's parameter
            for st in fn.body:
                st.code = st.code.replace(listed, ref_named(_PACKED))
            fn.packed = True
            ns = Namespace(self.reserved | self.copier.names | {"memory", "self"})
            param_names[_PACKED] = ns.create(_forward_params(cls.module)[0].name, "x")   # the user's name for it
        names = self._naming(cls).assign(fn, param_names)
        return fn, names

    def _declared_names(self, cls: Scope) -> dict[str, str]:
        """Input value -> the name the block's forward declares for it, read from the line of
        its caller that calls it: ``self.encoder(embedding_output, attention_mask=mask)`` hands
        ``embedding_output`` to the first parameter (``hidden_states``) and ``mask`` to
        ``attention_mask``. Only values the caller's code names and passes as a plain name."""
        declared = _positional(cls.module)
        caller = cls.parent
        while caller is not None and not caller.is_root and not caller.outlined:
            caller = caller.parent
        if not declared or caller is None or not cls.nodes:
            return {}
        within = self._class_range(type(caller.module))
        made = next((n for n in cls.nodes if source_frame(n, within, strict=True) is not None), None)
        stmt = source_statement(made, within) if made is not None else None
        attr = next((part for part in reversed(cls.qual.split(".")) if not part.isdigit()), "")
        calls = [c for c in ast.walk(stmt) if isinstance(c, ast.Call) and (
            isinstance(c.func, ast.Name) or isinstance(c.func, ast.Attribute) and c.func.attr == attr)] if stmt else []
        if len(calls) != 1:
            return {}
        passed = {a.id: declared[i] for i, a in enumerate(calls[0].args) if isinstance(a, ast.Name) and i < len(declared)}
        passed.update({k.value.id: k.arg for k in calls[0].keywords if k.arg and isinstance(k.value, ast.Name)})
        out = {}
        for p in cls.inputs:   # (its name in the caller's code: where the caller made it, or its own input)
            made = str(p.target).lstrip("*") if p.op == "placeholder" else source_name(p, within)
            if made in passed:
                out[p.name] = passed[made]
        return out

    @staticmethod
    def _named_as_declared(scope: Scope, signature: str) -> bool:
        """Whether a forward's parameters (``signature``) have the names the user's forward
        declares, not names from its caller's line."""
        declared = {sanitize(p.name, "x") for p in _forward_params(scope.module)}
        return all(p in declared for p in signature.split(", ") if p not in ("self", "memory"))

    def _packed(self, scope: Scope) -> list[fx.Node] | None:
        """The inputs of a block that the user's code hands over in one list, in its order
        (torchvision's DenseLayer: ``layer(features)``, whose forward reads them only as
        ``torch.cat(features, 1)``): its forward takes one parameter, and one operation reads
        every input, as the items of one list and nowhere else. Its class then takes that list,
        whatever its length, as the user's does. None otherwise."""
        if id(scope) not in self._packs:
            self._packs[id(scope)] = None
            sig = _forward_params(scope.module)
            inside = set(scope.nodes)
            users = {u for p in scope.inputs for u in p.users if u in inside}
            listed = next(iter(users)).args[0] if len(users) == 1 and next(iter(users)).args else None
            if len(sig) == 1 and sig[0].kind in (sig[0].POSITIONAL_ONLY, sig[0].POSITIONAL_OR_KEYWORD) \
                    and not scope.is_root and scope.inputs and isinstance(listed, (list, tuple)) \
                    and all(isinstance(v, fx.Node) for v in listed) and len(set(listed)) == len(listed) \
                    and set(listed) == set(scope.inputs) \
                    and sum(1 for a in next(iter(users)).all_input_nodes if a in set(listed)) == len(listed):
                self._packs[id(scope)] = listed   # a list or a tuple (timm's shape: (B, H, W))
        given = self._packs[id(scope)]
        return list(given) if given is not None else None

    def _class_range(self, cls: type) -> tuple[str, int, int] | None:
        """(file, first line, last line) of a class's source, to find its frames in stack traces."""
        if cls not in self._class_lines:
            try:
                lines, start = inspect.getsourcelines(cls)
                self._class_lines[cls] = (str(Path(inspect.getsourcefile(cls)).resolve()), start, start + len(lines) - 1)
            except (OSError, TypeError):
                self._class_lines[cls] = None
        return self._class_lines[cls]

    def _param_names(self, cls: Scope, params: list[fx.Node]) -> dict[str, str]:
        ns = Namespace(self.reserved | self.copier.names | {"memory", "self"})
        out = {}
        signature = [] if cls.is_root else _positional(cls.module)
        values = [p for p in params if p.op != "get_attr"]
        declared = self._declared_names(cls) if not cls.is_root and len(signature) != len(values) else {}
        for i, p in enumerate(params):
            if cls.is_root:
                wanted = str(p.target).lstrip("*")
            elif len(signature) == len(values) and p in values:
                wanted = signature[values.index(p)]
            elif p.name in declared:
                wanted = declared[p.name]
            elif p.op == "get_attr":
                wanted = str(p.target).rsplit(".", 1)[-1]
            else:
                wanted = source_name(p) or ("x" if i == 0 else p.name)
            out[p.name] = ns.create(wanted, "x")
        return out

    def _emit_items(self, scope: Scope, cls: Scope, fn: Function) -> None:
        i = 0
        while i < len(scope.items):
            item = scope.items[i]
            start = len(fn.body)
            run, carried = self._block_run(scope.items, i, cls)
            dense = self._dense_run(scope.items, i, cls) if not run else None
            if run:
                self._emit_loop(run, carried, cls, fn)
                i += len(run) - 1
                item = run[-1]
            elif dense:
                self._emit_dense_loop(*dense, cls, fn)
                i += len(dense[0])
                item = dense[1]
            elif isinstance(item, Scope):
                if item.outlined:
                    self._emit_call(item, cls, fn)
                else:
                    self._emit_items(item, cls, fn)
            else:
                self._emit_node(item, cls, fn)
            if scope is cls:  # what each of the class's own items wrote (see _merge_optional)
                for stmt in fn.body[start:]:
                    stmt.origin = stmt.origin or item   # (an update keeps its own: _emit_update)
            for u in self.after.get(id(item), []):
                self._emit_update(u, item, cls, fn)
            i += 1

    def _block_run(self, items: list, i: int, cls: Scope) -> tuple[list[Scope], int]:
        """Three or more blocks from ``items[i]`` on that a loop can call (``for block in
        self.features[1:18]: x, memory = block(x, memory)``), as a person writes a chain of
        blocks: consecutive items of one container, each called with the value the one before
        it returned (which nothing but the next block reads) in the same place, and otherwise
        with the same values as the first (a Hugging Face encoder's ``attention_mask``); no
        update block between them. Returns them and the place of the value handed on; ([], 0)
        where there are fewer."""
        run, where, carried = [], None, None
        for item in items[i:]:
            if not isinstance(item, Scope) or not item.outlined or len(item.outputs) != 1 or self._packed(item):
                break
            ins = [n for n in item.inputs if n.op != "get_attr"]
            if len(ins) != len(item.inputs) or not ins:
                break
            if run:
                first = run[0].inputs
                at = [j for j, n in enumerate(ins) if n is run[-1].outputs[0]]
                if len(ins) != len(first) or len(at) != 1 or (carried is not None and at[0] != carried) \
                        or any(n is not first[j] for j, n in enumerate(ins) if j != at[0]) \
                        or item.memory != run[0].memory or self.after.get(id(run[-1])) \
                        or any(u not in set(item.nodes) for u in ins[at[0]].users):
                    break
                carried = at[0]
            m = re.fullmatch(r"(.+)\[(\d+)\]", self.tree.access(item.qual, cls.qual))
            if m is None or (where is not None and (m.group(1), int(m.group(2))) != (where[0], where[1] + len(run))):
                break
            if where is None:
                where = (m.group(1), int(m.group(2)))
            run.append(item)
        if len(run) < 3 or any(u not in set(run[0].nodes) for u in run[0].inputs[carried].users):
            return [], 0
        return run, carried

    def _dense_run(self, items: list, i: int, cls: Scope) -> tuple[list[Scope], fx.Node, str] | None:
        """Three or more blocks from ``items[i]`` on, each handed one list (see _packed) of the
        first one's input and the values of the blocks before it, then one operation on that
        list with the last one's value (torchvision's DenseBlock: each layer reads every earlier
        output, then ``torch.cat(features, 1)``): (the blocks, that operation, what to loop
        over). The blocks are all of what they are in (the class's own children, or a
        container's items), and nothing else reads their values."""
        run: list[Scope] = []
        for item in items[i:]:
            listed = self._packed(item) if isinstance(item, Scope) and item.outlined and len(item.outputs) == 1 else None
            if listed is None or self.after.get(id(item)) or (run and (
                    listed != self._packed(run[-1]) + [run[-1].outputs[0]] or item.memory != run[0].memory)) \
                    or (not run and len(listed) != 1) or not isinstance(self._packs[id(item)], list):
                break
            run.append(item)
        end = items[i + len(run)] if i + len(run) < len(items) else None
        every = self._packed(run[-1]) + [run[-1].outputs[0]] if run else []
        if len(run) < 3 or not isinstance(end, fx.Node) or end.op != "call_function" or not end.args \
                or not isinstance(end.args[0], list) or list(end.args[0]) != every \
                or any(u is not end and not any(u in set(r.nodes) for r in run) for v in every[1:] for u in v.users):
            return None
        parents = {r.qual.rsplit(".", 1)[0] if "." in r.qual else "" for r in run}
        holder = next(iter(parents))
        if len(parents) != 1 or [c for _, c in self.root.get_submodule(holder).named_children()] != [
                r.module for r in run]:
            return None
        if holder == cls.qual:   # the class's own children: the generated class holds only them
            if any(owner is cls for owner, _ in self.update_attr.values()) or self.extras.get(cls.qual):
                return None
            return run, end, "self.children()"
        access = self.tree.access(holder, cls.qual)
        return (run, end, access) if self.tree.is_list(holder) else None

    def _emit_dense_loop(self, run: list[Scope], end: fx.Node, over: str, cls: Scope, fn: Function) -> None:
        fn.names_taken |= {"features", "new_features", "layer"}
        mem = run[0].memory
        fn.body.append(Stmt(targets=[], code=f"features = [{ref(self._packed(run[0])[0])}]"))
        fn.body.append(Stmt(targets=[], code=f"for layer in {over}:"))
        fn.body.append(Stmt(targets=[], code="new_features, memory = layer(features, memory)" if mem
                            else "new_features = layer(features)", indent=1))
        fn.body.append(Stmt(targets=[], code="features.append(new_features)", indent=1))
        start = len(fn.body)
        self._emit_node(end, cls, fn)
        listed = self.expr.arg(list(end.args[0]))
        if len(fn.body) != start + 1 or fn.body[-1].code.count(listed) != 1:
            raise InternalError(f"the list {end.name} reads is not written once in {cls.qual}'s forward.")
        fn.body[-1].code = fn.body[-1].code.replace(listed, "features")

    def _emit_loop(self, run: list[Scope], carried: int, cls: Scope, fn: Function) -> None:
        container, first = re.fullmatch(r"(.+)\[(\d+)\]", self.tree.access(run[0].qual, cls.qual)).groups()
        first, end = int(first), int(first) + len(run)
        size = len(self.root.get_submodule(run[0].qual.rsplit(".", 1)[0]))
        window = "" if first == 0 and end == size else f"[{first or ''}:{end if end < size else ''}]"
        fn.names_taken.add("block")
        mem = run[0].memory
        args = [ref(n) for n in run[0].inputs] + (["memory"] if mem else [])
        fn.body.append(Stmt(targets=[], code=f"for block in {container}{window}:"))
        fn.body.append(Stmt(targets=list(run[-1].outputs), code=f"block({', '.join(args)})",
                            memory_out=mem, indent=1, carries=run[0].inputs[carried]))

    def _emit_call(self, child: Scope, cls: Scope, fn: Function) -> None:
        callee = self.tree.access(child.qual, cls.qual)
        packed = self._packed(child)
        args = [self.expr.arg(self._packs[id(child)])] if packed else [ref(i) for i in child.inputs]
        args += ["memory"] if child.memory else []
        train_only = _train_only(child) and not _train_only(cls)
        if train_only and not _in_training_block(fn):
            fn.body.append(Stmt(targets=[], code="if self.training:"))   # see tracing._train_branches
        fn.body.append(Stmt(targets=list(child.outputs), code=f"{callee}({', '.join(args)})",
                            memory_out=child.memory, indent=int(train_only)))

    def _emit_node(self, node: fx.Node, cls: Scope, fn: Function) -> None:
        if node.op in ("placeholder", "get_attr"):
            return
        if node.op == "output":
            fn.returns = self.expr.arg(node.args[0], node, (0, 0))
            return
        if not node.users and _pure(node):
            return
        # (a block only train() runs is called under the `if`; its own class has none)
        train_only = bool(node.meta.get("train_only")) and not _train_only(cls)
        if train_only and not _in_training_block(fn):
            fn.body.append(Stmt(targets=[], code="if self.training:"))   # see tracing._mode_tail
        if node.op == "call_function" and node.target is train_return:
            value, last = self.expr.arg(node.args[0], node, (0, 0)), fn.body[-1]
            if last.indent and last.targets == [node.args[0]] and len(node.args[0].users) == 1 \
                    and not (last.comment or last.memory_out or last.augmented or last.slots):
                value = fn.body.pop().code   # made only to be returned: `return Outputs(x, aux2, aux1)`
            fn.body.append(Stmt(targets=[], code=return_line(fn, value), indent=1))
            return
        tap = self.taps.get(node.name)
        if tap is not None:
            code, comment = self._tap(node, tap, cls)
        else:
            module = self.tree.access(node.target, cls.qual) if node.op == "call_module" else None
            code, comment = self.expr.expression(node, module), ""
        augmented = self._in_place(node, cls)
        if augmented is not None:
            augmented = (node.args[0], augmented, self.expr.arg(node.args[1], node, (0, 1)))
        fn.body.append(Stmt(targets=[node] if node.users else [], code=code, comment=comment,
                            indent=int(train_only), augmented=augmented))

    def _in_place(self, node: fx.Node, cls: Scope) -> str | None:
        """The operator of ``out += identity`` where the base model's forward wrote this value in
        place (torch.fx records it as ``out = out + identity``): an in-place sum saves a copy the
        size of the block's output, as it did in the base model. Only where that is sure to be
        safe: the left operand is used by nothing else, has this value's shape and dtype, and
        is a fresh tensor that no backward needs (made by a weight or norm layer, or by
        arithmetic), not a view of another or a function's input."""
        op = _AUGMENTED.get(node.target) if node.op == "call_function" else None
        left = node.args[0] if op and len(node.args) == 2 and not node.kwargs else None
        if not isinstance(left, fx.Node) or len(left.users) != 1 or not _same_meta(left, node):
            return None
        if left.op == "call_module":
            module = self.root.get_submodule(left.target)
            fresh = left.name in self.taps or REGISTRY.kind_of(module) is not None or isinstance(
                module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))
        else:
            fresh = left.op == "call_function" and left.target in _AUGMENTED
        stmt = source_statement(node, self._class_range(type(cls.module)))
        if not fresh or not isinstance(stmt, ast.AugAssign) or not isinstance(stmt.target, ast.Name):
            return None
        return op if type(stmt.op).__name__ == _AUGMENTED_AST[op] else None

    def _tap(self, node: fx.Node, site: TapSite, cls: Scope) -> tuple[str, str]:
        kind = REGISTRY.get(site.kind)
        width = self.plan.width(site)
        args, kwargs = self.expr.call_parts(node)
        if node.op == "call_module":
            callee = self.tree.access(node.target, cls.qual)
            name = node.target[len(cls.qual) + 1:] if cls.qual else node.target
        else:
            callee = self.expr.callee(node)
            name = f"{callee}"
            self._need(kind.runtime(site, self.form, width))
        if site.sample_rows:
            self._need((runtime.per_window,))
        if site.views:
            self._need((runtime.per_view,))
        memory_weight = ""
        if site.functional and self.form == "sum":
            key = self.plan.memory_keys[node.name]
            memory_weight = self.tree.access(key, cls.qual)
        src = CallSource(callee=callee, args=args, kwargs=kwargs, memory="", memory_weight=memory_weight)
        x = kind.input_source(src)
        src.memory = kind.fit_expr(site, width, x)
        return kind.call(site, self.form, width, src), kind.comment(site, width, name, x)

    def _emit_update(self, u: UpdateSite, item, cls: Scope, fn: Function) -> None:
        owner, attr = self.update_attr[u.node]
        access = self.tree.access(f"{owner.qual}.{attr}" if owner.qual else attr, cls.qual)
        self._need((runtime.weight_parameter, runtime.MemoryUpdate))
        fn.body.append(Stmt(targets=[], code=f"{access}(memory, {self._features(u)})", memory_out=True, origin=u))

    def _attr_namespace(self, cls: Scope) -> Namespace:
        if id(cls) not in self._attr_ns:
            module = cls.module
            taken = set(module._modules) | set(module._parameters) | set(module._buffers)
            self._attr_ns[id(cls)] = Namespace(taken)
        return self._attr_ns[id(cls)]

    def _features(self, u: UpdateSite) -> str:
        var = ref(self.nodes[u.node])
        grid = tuple(self.plan.grid)
        if u.kind == "spatial":
            self._need((runtime.pool_to_grid,))
            return f"pool_to_grid({var}, {grid!r})"
        if u.kind == "spatial_last":  # (N, *size, C): channels first for the pooling
            self._need((runtime.pool_to_grid,))
            return f"pool_to_grid({var}.movedim(-1, 1), {grid!r})"
        vec = var
        if u.kind == "tokens":
            vec = f"{var}.mean(1)"
        elif u.kind == "sequence":
            vec = f"{var}.flatten(1, -2).mean(1)"
        return vec if not grid else f"{vec}[:, :{', None' * len(grid)}]"

    # --- the whole file -----------------------------------------------------------------
    def _need(self, objects) -> None:
        for o in objects:
            if o not in self.runtime_needed:
                self.runtime_needed.append(o)

    def generate(self) -> Source:
        # (a block inside a module kept whole is built by that module's constructor: no class)
        kept = tuple(q + "." for q in self.traced.leaf_names)
        blocks = [s for s in _postorder(self.top) if not s.is_root and s.outlined and not container_kind(s.module)
                  and not s.qual.startswith(kept)]
        texts: dict[int, tuple[Function, dict, str]] = {}
        for s in blocks:
            fn, names = self.function(s)
            texts[id(s)] = (fn, names, "\n".join(render(fn, names, self._resolver(s), constants=self.expr.constants)))
        keys: dict[int, object] = {}

        def key_of(scope):
            return keys[id(scope)]

        instances: dict[int, Instance] = {}
        for s in blocks:  # post-order: children's keys exist before their parents'
            members = self.members(s.qual, s)
            instances[id(s)] = Instance(s, members, self.traced.constructor_args.get(s.qual))
            signature = _signature(texts[id(s)][0], texts[id(s)][1])
            # (the parameters' names aside: each instance's come from its caller's line)
            keys[id(s)] = (type(s.module).__name__, _canonical(signature, signature),
                           _canonical(texts[id(s)][2], signature),
                           tuple((m.name, structure(m.value, key_of)) for m in members))
        groups: dict[object, BlockClass] = {}
        for s in blocks:
            k = keys[id(s)]
            fn, names, text = texts[id(s)]
            if k not in groups:
                groups[k] = BlockClass(name="", base="nn.Module", instances=[], text=text,
                                       signature=_signature(fn, names), key=k)
            g = groups[k]
            g.instances.append(instances[id(s)])
            if not self._named_as_declared(g.instances[0].scope, g.signature) and \
                    self._named_as_declared(s, _signature(fn, names)):   # the text with the forward's own names
                g.instances.insert(0, g.instances.pop())
                g.text, g.signature = text, _signature(fn, names)
        classes = self._merge_optional(list(groups.values()), texts)
        # name the classes: the user's class name; variants numbered in order of appearance
        order = {id(s): i for i, s in enumerate(self.top.walk())}
        for g in classes:   # (a merged class has its instances in the order of its parts)
            perm = sorted(range(len(g.instances)), key=lambda i, g=g: order[id(g.instances[i].scope)])
            g.instances = [g.instances[i] for i in perm]
            if g.vectors is not None:
                g.vectors = [tuple(vec[i] for i in perm) for vec in g.vectors]
        classes.sort(key=lambda g: order[id(g.instances[0].scope)])
        by_user: dict[str, list[BlockClass]] = {}
        for g in classes:
            by_user.setdefault(type(g.instances[0].scope.module).__name__, []).append(g)
        called = {n.target for n in self.graph.nodes if n.op == "call_module"}
        for q in sorted(self.traced.leaf_names & called):   # copy what kept layers need before naming
            self.leaf(q)
        copied = self.copier.names   # a class copied whole (the user's Conv, inside a kept layer)
        for name in copied:
            self.class_names.reserve(name)
        for user_name, gs in by_user.items():
            stem = class_name(user_name)
            stem = "Aim" + stem if stem in copied else stem   # is not the block class of that name
            for i, g in enumerate(gs):
                g.name = self.class_names.create_class(stem + (str(i + 1) if i else ""))
                # described against the earlier variant it differs least from
                g.variant_base = min(gs[:i], key=lambda e, g=g: len(self._forward_diff(e, g)) + len(
                    set(dict(e.key[3]).items()) ^ set(dict(g.key[3]).items()))) if i else None
                g.variant_of = g.variant_base.name if i else ""
        self.copier.taken |= {g.name for g in classes}   # a later copy may not take their names
        # parameterise and write, deepest classes first (their instances appear in parents)
        written: list[str] = []
        resolved: dict[int, Constructor] = {}
        for g in sorted(classes, key=lambda g: _height(g.instances[0].scope)):
            for inst in g.instances:
                inst.members = [Member(m.name, _resolve_refs(m.value, resolved), m.comment) for m in inst.members]
            if g.optional:
                for inst in g.instances:
                    found = [m for m in inst.members if m.name == g.optional]
                    if found:
                        g.optional_values[id(inst.scope)] = found[0].value
                        inst.members = [m for m in inst.members if m.name != g.optional]
            parameterise(g, self.reserved | {"self", g.optional, g.flag} - {""}, self._constant_vectors(g, texts),
                         self._constant_labels(g, texts))
            for inst, args in zip(g.instances, g.args):
                call = [Arg(p, v, True) for p, v in zip(g.params, args)]
                if g.flag:
                    call.append(Arg(g.flag, getattr(inst.scope.module, g.flag), False))
                if id(inst.scope) in g.optional_values:
                    call.append(Arg(g.optional, g.optional_values[id(inst.scope)], False))
                resolved[id(inst.scope)] = Constructor(g.name, call)
            written.append(self._class_text(g))
        root_fn, root_names = self.function(self.top)
        root_members = [Member(m.name, _resolve_refs(m.value, resolved), m.comment) for m in self.members("", self.top)]
        if self._keep_whole:  # every module to keep whole, in one go (api.convert traces again)
            message, hint, _ = next(iter(self._keep_whole.values()))
            raise KeepWhole(message, hint=hint, modules={q: why for q, (_, _, why) in self._keep_whole.items()})
        written.append(self._root_text(root_fn, root_names, root_members))
        runtime_text = self._runtime_text()
        inline = [(s.qual, s.why_inline) for s in self.top.walk()
                  if not s.is_root and not s.outlined and not container_kind(s.module) and s.why_inline
                  and s.why_inline != "flat=True"]
        update_names = {}
        for node, (owner, attr) in self.update_attr.items():
            update_names[node] = f"{owner.qual}.{attr}" if owner.qual else attr
        copied = self.copier.copied.without(getattr(self, "_runtime_objects", []))  # a user's own tap kind
        imports = set(self.expr.imports) | set(self.writer.imports) | copied.depends
        for ctor in self._leaf_ctors.values():
            imports |= ctor.imports
        return Source(class_name=self.root_class, base_class=type(self.root).__name__, plain=self.plain,
                      classes=written, runtime=runtime_text, copied=copied.text(), imports=sorted(imports),
                      memory_attr=self.memory_attr, uses_group=self.uses_group, update_names=update_names,
                      inline=inline, block_classes={g.name: len(g.instances) for g in classes})

    def _merge_optional(self, classes: list[BlockClass], texts: dict) -> list[BlockClass]:
        """Two classes of one user class that differ only by a submodule one of them has
        (``downsample``) become one class whose forward branches on it, as torchvision
        writes it: ``if self.downsample is not None: identity = self.downsample(x)``; two
        that differ only by lines the user's forward runs when a flag of theirs is set
        become one class that branches on the flag (``if self.use_res_connect:``)."""
        # a pair that differs both ways (an optional member and a flag) last: merging it early
        # keeps apart classes the other merges would have joined (mobilenet_v2's 16 blocks)
        both_ways = False
        changed = True
        while changed or not both_ways:
            both_ways = both_ways or not changed
            changed = False
            for a in classes:
                for b in classes:
                    if a is b or a.key[0] != b.key[0] or a.flag and a.optional or b.flag and b.optional:
                        continue
                    if (a.optional or a.flag) and (b.optional or b.flag):
                        merged = self._try_combine(a, b, texts)
                    elif a.optional and not b.flag:   # b adds lines where a's instances lack its optional part
                        without = BlockClass(name="", base=a.base, instances=a.instances, text=a.core,
                                             signature=a.signature, key=a.key[:3] + (tuple(
                                                 m for m in a.key[3] if m[0] != a.optional),))
                        without.extra_statements = a.extra_statements
                        flagged = self._try_merge_flag(b, without, texts)
                        if flagged is not None and flagged.instances[:len(b.instances)] == b.instances:
                            flagged.instances = list(b.instances)
                            merged = self._try_combine(a, flagged, texts)
                        else:
                            merged = None
                    elif a.optional or b.optional or a.flag or b.flag:
                        continue
                    else:
                        merged = self._try_merge(a, b, texts, both_ways) or self._try_merge_flag(a, b, texts)
                    if merged is not None:
                        classes = [c for c in classes if c is not a and c is not b] + [merged]
                        changed = True
                        break
                if changed:
                    break
        return classes

    def _try_merge(self, a: BlockClass, b: BlockClass, texts: dict, both_ways: bool = False) -> BlockClass | None:
        """``a`` with one more member than ``b``; None unless that is the only difference. The
        member is a submodule ``a``'s forward calls (``downsample``), or an update block
        (``update_conv_0``: instances of one class where only some rewrite the memory). With
        ``both_ways``, also where ``b`` differs from ``a`` without it by a flag's lines
        (_try_optional_and_flag)."""
        a_members, b_members = a.key[3], b.key[3]
        names_b = [m[0] for m in b_members]
        extra = [m for m in a_members if m[0] not in names_b]
        if len(extra) != 1 or [m for m in a_members if m[0] != extra[0][0]] != list(b_members) or \
                a.key[1] != b.key[1]:
            return None
        optional = extra[0][0]
        if not is_safe_identifier(optional):
            return None
        scope = a.instances[0].scope
        fn, names, _ = texts[id(scope)]
        parts = self._optional_part(scope, optional, fn)
        if parts is None:
            return None
        item, where, (i_ref, o_ref, out) = parts
        naming, params = self._naming(scope), self._param_names(scope, fn.params)
        without = _without(fn, [st for st in fn.body if st.origin is not item], out, i_ref)
        core = self._text(without, scope, naming, params)
        same = _canonical(core, a.signature) == _canonical(b.text, b.signature)
        if not same and not (b.optional or b.flag) and both_ways:
            return self._try_optional_and_flag(a, b, optional, core, texts)
        if not same:
            return None
        first = where[0]
        head = [Stmt([out], i_ref)] if out is not None else []
        body = fn.body[:first] + head + [Stmt([], f"if self.{optional} is not None:")]
        body += [Stmt(st.targets, st.code, st.comment, st.memory_out, indent=st.indent + 1, origin=item,
                      augmented=st.augmented, slots=st.slots) for st in fn.body[first:where[-1] + 1]]
        body += fn.body[where[-1] + 1:]
        text = self._text(_with_body(fn, body), scope, naming, params)
        position = [m[0] for m in a_members].index(optional)
        merged_class = BlockClass(name="", base="nn.Module", instances=a.instances + b.instances, text=text,
                                  signature=a.signature, key=a.key, optional=optional, optional_index=position)
        merged_class.core, merged_class.extra_statements = (b.text if b.instances else core), len(where)
        # where each instance's constants go in the merged text (the optional part's come from a)
        skipped = {m for st in fn.body[first:where[-1] + 1] for m in _CONSTANT.findall(st.code + st.comment)}
        merged_class.constant_skip = [m in skipped for m in _CONSTANT.findall(texts[id(scope)][2])]
        return merged_class

    def _try_optional_and_flag(self, a: BlockClass, b: BlockClass, optional: str, core: str,
                               texts: dict) -> BlockClass | None:
        """``a`` with a member ``b`` lacks (``optional``), whose forward without it (``core``)
        differs from ``b``'s by lines a flag switches: mobilenet_v3's first expanding block
        rewrites the memory and the next adds its input instead; one class with both branches
        (``_try_combine``), as when each difference is shared by several instances."""
        key = a.key[:3] + (tuple(m for m in a.key[3] if m[0] != optional),)
        # a's class with the member optional (merged with no instance lacking it), and a as if without it
        alone = self._try_merge(a, BlockClass(name="", base=a.base, instances=[], text=core, signature=a.signature,
                                              key=key), texts)
        if alone is None:
            return None
        without = BlockClass(name="", base=a.base, instances=a.instances, text=core, signature=a.signature, key=key)
        without.extra_statements = alone.extra_statements
        flagged = self._try_merge_flag(b, without, texts)
        if flagged is None or flagged.instances[:len(b.instances)] != b.instances:
            return None
        flagged.instances = list(b.instances)
        return self._try_combine(alone, flagged, texts)

    def _try_merge_flag(self, a: BlockClass, b: BlockClass, texts: dict) -> BlockClass | None:
        """One class for ``a`` and ``b`` when they have the same members and the forward of one
        runs one to three more statements, which end in a value that takes the place of one
        they read (``out = x + out``), and a bool attribute of the user's modules is set in
        every instance of one and unset in every instance of the other; None otherwise."""
        if a.key[3] != b.key[3] or a.key[1] != b.key[1]:
            return None
        fa, fb = texts[id(a.instances[0].scope)][0], texts[id(b.instances[0].scope)][0]
        # (b may stand for the instances of a class without its optional part: see _merge_optional)
        if len(fa.body) - a.extra_statements < len(fb.body) - b.extra_statements:
            a, b, fa, fb = b, a, fb, fa
        d = len(fa.body) - len(fb.body) + b.extra_statements
        flag = self._flag(a, b) if 1 <= d <= 3 and not a.extra_statements else None
        if flag is None:
            return None
        scope = a.instances[0].scope
        naming, params = self._naming(scope), self._param_names(scope, fa.params)
        for start in range(len(fa.body) - d + 1):
            window, later = fa.body[start:start + d], fa.body[start + d:]
            if any(st.memory_out or st.indent or not st.targets for st in window):
                continue
            made = {t.name for st in window for t in st.targets}
            read_after = {n for st in later for n in st.uses()} | set(refs_in(fa.returns))
            outs = [t for st in window for t in st.targets if t.name in read_after]
            if len(outs) != 1 or outs[0] is not window[-1].targets[-1]:
                continue
            out = outs[0]
            for name in dict.fromkeys(n for st in window for n in st.uses() if n not in made):
                passed = self.nodes.get(name)   # the value the lines replace (they read it last)
                if passed is None or any(u.name not in made for u in passed.users):
                    continue
                without = _without(fa, fa.body[:start] + later, out, ref(passed))
                if _canonical(self._text(without, scope, naming, params), a.signature) != \
                        _canonical(b.text, b.signature):
                    continue
                attr, value = flag
                body = fa.body[:start] + [Stmt([], f"if {'' if value else 'not '}self.{attr}:")]
                body += [Stmt(st.targets, st.code, st.comment, indent=1, augmented=st.augmented,
                              carries=passed if st is window[-1] else None, slots=st.slots) for st in window]
                text = self._text(_with_body(fa, body + later), scope, naming, params)
                cls = BlockClass(name="", base="nn.Module", instances=a.instances + b.instances, text=text,
                                 signature=a.signature, key=a.key, flag=attr)
                cls.core, cls.flag_on = b.text, value
                skipped = {m for st in window for m in _CONSTANT.findall(st.code + st.comment)}
                cls.constant_skip = [m in skipped for m in _CONSTANT.findall(texts[id(scope)][2])]
                return cls
        return None

    def _try_combine(self, a: BlockClass, b: BlockClass, texts: dict) -> BlockClass | None:
        """One class for a class merged over an optional member and one merged over a flag
        (torchvision's InvertedResidual: an update block in some, the residual sum in others)
        where both have the same forward without their part, the part of each is lines
        inserted into that forward at different places, and no instance of the optional's
        class has the flag's lines."""
        if a.flag:
            a, b = b, a
        if not a.optional or a.flag or not b.flag or b.optional or a.signature != b.signature \
                or [m for m in a.key[3] if m[0] != a.optional] != list(b.key[3]) \
                or _CONSTANT.sub("#", a.core) != _CONSTANT.sub("#", b.core) \
                or any(getattr(i.scope.module, b.flag) is b.flag_on for i in a.instances):
            return None
        core = a.core.splitlines()
        parts = [_insertion(core, a.text.splitlines()), _insertion(core, b.text.splitlines())]
        if None in parts or parts[0][0] == parts[1][0]:
            return None
        # the combined text, each line with where it comes from: (class, its line)
        lines: list[tuple[str, BlockClass, int]] = []
        a_line = b_line = 0
        for k in range(len(core) + 1):
            for (at, n), owner in zip(parts, (a, b)):
                if at == k:
                    first = a_line if owner is a else b_line
                    lines += [(owner.text.splitlines()[first + j], owner, first + j) for j in range(n)]
                    a_line, b_line = (a_line + n, b_line) if owner is a else (a_line, b_line + n)
            if k < len(core):
                lines.append((a.text.splitlines()[a_line], a, a_line))
                a_line, b_line = a_line + 1, b_line + 1
        cls = BlockClass(name="", base="nn.Module", instances=a.instances + b.instances,
                         text="\n".join(line for line, _, _ in lines), signature=a.signature, key=a.key,
                         optional=a.optional, optional_index=a.optional_index, flag=b.flag)
        cls.flag_on, cls.core = b.flag_on, a.core
        cls.vectors, cls.labels = self._combined_constants(lines, a, b, parts, texts)
        return cls

    def _combined_constants(self, lines, a: BlockClass, b: BlockClass, parts, texts) -> tuple[list, list]:
        """Per constant of a combined text (_try_combine), in order: its value in each instance
        of ``a`` and then of ``b`` (an instance without the line takes another's value, which its
        forward never reads), and the argument it fills."""
        per = {}
        for owner in (a, b):
            vectors, labels = self._constant_vectors(owner, texts), self._constant_labels(owner, texts)
            slots, k = {}, 0
            for i, line in enumerate(owner.text.splitlines()):
                for j, _ in enumerate(_CONSTANT.findall(line)):
                    slots[(i, j)] = (vectors[k], labels[k] if k < len(labels) else "")
                    k += 1
            per[id(owner)] = slots

        def core_line(owner: BlockClass, i: int) -> int | None:   # owner's line i as a line of the core
            at, n = parts[0] if owner is a else parts[1]
            return None if at <= i < at + n else (i if i < at else i - n)

        def line_in(owner: BlockClass, core: int) -> int:
            at, n = parts[0] if owner is a else parts[1]
            return core if core < at else core + n

        vectors, labels = [], []
        for line, owner, i in lines:
            for j, _ in enumerate(_CONSTANT.findall(line)):
                other = b if owner is a else a
                own_vec, label = per[id(owner)][(i, j)]
                core = core_line(owner, i)
                other_vec = per[id(other)][(line_in(other, core), j)][0] if core is not None else \
                    (ANY,) * len(other.instances)
                vectors.append(tuple(own_vec) + tuple(other_vec) if owner is a else tuple(other_vec) + tuple(own_vec))
                labels.append(label)
        return vectors, labels

    def _flag(self, a: BlockClass, b: BlockClass) -> tuple[str, bool] | None:
        """(name, value in a's instances) of a bool attribute of the user's modules that is set
        in every instance of one class and unset in every instance of the other, and that
        their class's source reads (``self.use_res_connect``)."""
        ma, mb = [i.scope.module for i in a.instances], [i.scope.module for i in b.instances]
        try:
            source = inspect.getsource(type(ma[0]))
        except (OSError, TypeError):
            return None
        for name, value in vars(ma[0]).items():
            if name != "training" and isinstance(value, bool) and is_safe_identifier(name) \
                    and all(getattr(m, name, None) is value for m in ma) \
                    and all(getattr(m, name, None) is (not value) for m in mb) \
                    and re.search(rf"\bself\.{name}\b", source):
                return name, value
        return None

    def _text(self, fn: Function, scope: Scope, naming: Naming, params: dict[str, str]) -> str:
        """A forward of the block ``scope`` as written: its values named, its statements rendered."""
        return "\n".join(render(fn, naming.assign(fn, params), self._resolver(scope), constants=self.expr.constants))

    def _optional_part(self, scope: Scope, optional: str, fn: Function):
        """What the forward of ``scope`` writes for its member ``optional``: (the item, the
        indices of its statements, (input ref, output ref, output node)); the refs are '' and
        the node None for an update block, which only rebinds the memory. None unless they are
        one contiguous run of statements, with one input and one output for a submodule."""
        update = next((u for u in self.updates.values() if self.update_attr.get(u.node) == (scope, optional)), None)
        if update is not None:
            where = [i for i, st in enumerate(fn.body) if st.origin is update]
            return (update, where, ("", "", None)) if len(where) == 1 else None
        target = f"{scope.qual}.{optional}"
        item = next((i for i in scope.items if (isinstance(i, Scope) and i.qual == target) or
                     (isinstance(i, fx.Node) and i.op == "call_module" and i.target == target)), None)
        if item is None:
            return None
        ins = [n for n in item.inputs if n.op != "get_attr"] if isinstance(item, Scope) else item.all_input_nodes
        outs = item.outputs if isinstance(item, Scope) else [item]
        where = [i for i, st in enumerate(fn.body) if st.origin is item]
        if len(ins) != 1 or len(outs) != 1 or not where or where != list(range(where[0], where[-1] + 1)) or \
                any(fn.body[i].memory_out for i in where):
            return None
        return item, where, (ref(ins[0]), ref(outs[0]), outs[0])

    def _constant_labels(self, g: BlockClass, texts: dict) -> list[str]:
        """Per constant of the class's forward (in order), the argument it fills (``stride``)."""
        if g.labels is not None:
            return g.labels
        return [self.expr.labels.get(k, "") for k in _CONSTANT.findall(texts[id(g.instances[0].scope)][2])]

    def _constant_vectors(self, g: BlockClass, texts: dict) -> list[tuple]:
        """Per constant of the class's forward (in order), its value in every instance (ANY in
        one whose forward does not have the line: see classes.parameterise)."""
        if g.vectors is not None:
            return g.vectors
        seqs = []
        skip = g.constant_skip
        for inst in g.instances:
            own = [self.expr.constants[k] for k in _CONSTANT.findall(texts[id(inst.scope)][2])]
            if skip is not None and len(own) != len(skip):   # an instance without the optional part
                it = iter(own)
                own = [ANY if skipped else next(it) for skipped in skip]
            seqs.append(own)
        return [tuple(seq[i] for seq in seqs) for i in range(len(seqs[0]))] if seqs and seqs[0] else []

    def _fill_constants(self, text: str, written: list[str] | None = None) -> str:
        """Constants back into a text: the class's own expressions, or their literals. An
        expression (``self.window_size // 2``) is put in parentheses unless it stands alone as
        an argument or a value: ``x % self.window_size // 2`` is ``(x % ...) // 2``."""
        it = iter(written or [])

        def fill(m: re.Match) -> str:
            value = next(it) if written is not None else literal(self.expr.constants[m.group(1)])
            if " " not in value or value.startswith("(") and value.endswith(")"):
                return value
            before, after = text[:m.start()].rstrip()[-1:], text[m.end():].lstrip()[:1]
            alone = before in ("(", ",", "[", "=", "") and after in (")", ",", "]", "")
            return value if alone else f"({value})"

        return _CONSTANT.sub(fill, text)

    def _naming(self, cls: Scope) -> Naming:
        within = self._class_range(type(cls.module))
        # the root writes what a mode-dependent head computes after its shared part: those values
        # are named from the head's own lines, each after the line that made it as its value
        # (``decoded = anchors + self.integral(boxes)`` names the sum, not what integral does)
        head = self.traced.mode_tail if cls.is_root else None
        tail = self._class_range(type(self.root.get_submodule(head))) if head else None

        def wanted(node: fx.Node) -> str | None:
            frame = source_frame(node, tail, strict=True) if tail is not None else None
            if frame is not None:
                if all(source_frame(u, tail) != frame for u in node.users):
                    return source_name(node, tail)
                inner = source_frame(node)   # a value made inside a call on that line: its own line's
                return source_name(node) if inner and all(source_frame(u) != inner for u in node.users) else None
            inner = source_frame(node)
            if within is not None and inner is not None and self.owner.get(node.name) is cls \
                    and inner != source_frame(node, within):
                # made inside a function the forward's line calls (a helper such as timm's
                # window_partition): the name the helper's line gives it (``b, h, w, c =
                # x.shape``), none for a value inside that line, and the forward line's name
                # for the chain the helper returns
                if all(source_frame(u) != inner for u in node.users) and source_name(node) is not None:
                    return source_name(node)
                if not on_return_line(node):
                    return None
            w = source_name(node, within)
            if w is not None and returned(node) is not None and any(
                    source_frame(u, within) == source_frame(node, within) for u in node.users):
                return None   # a block's value inside a longer line: named after the block (``attn``)
            if w is None and node.op == "call_module":
                last = str(node.target).rsplit(".", 1)[-1]
                w = last if not last.isdigit() else type(self.root.get_submodule(node.target)).__name__.lower()
            return w

        def inherits(node: fx.Node) -> bool:   # the value a `return f(x)` line returns, not one inside it
            if node.meta.get("eval_only") or node.meta.get("train_only") or not on_return_line(node, within):
                return False
            frame, owner = source_frame(node, within), self.owner.get(node.name)
            # (another instance of the class runs the same line: its values are other values)
            return all(source_frame(u, within) != frame or self.owner.get(u.name) is not owner for u in node.users)

        def returned(node: fx.Node) -> str | None:
            """The attribute name of the block of this class that returns the value (``attn``)."""
            child = self.owner.get(node.name)
            while child is not None and child.parent is not None and child.parent is not cls:
                child = child.parent
            if child is None or child is cls or child.parent is not cls or not child.outlined:
                return None
            return next((part for part in reversed(child.qual.split(".")) if not part.isdigit()), None)

        return Naming(self.reserved | self.copier.names | set(self.class_names.used), wanted, inherits, returned)

    def _resolver(self, cls: Scope):
        def resolve(key: str):
            node = self.nodes.get(key)
            if node is not None and node.op == "get_attr":
                return self.tree.access(node.target, cls.qual)
            return None
        return resolve

    def _class_text(self, g: BlockClass) -> str:
        first = g.instances[0]
        params = ["self", *g.params] + [g.flag] * bool(g.flag) + ([f"{g.optional}=None"] if g.optional else [])
        init = member_lines(first.members, self.writer, g.slots)
        if g.optional:
            index = sum(len(member_lines([m], self.writer, g.slots)) for m in first.members[:g.optional_index])
            init.insert(index, f"self.{g.optional} = {g.optional}")
        init += [f"self.{a} = {a}" for a in g.attributes + [g.flag] * bool(g.flag)]
        sig = g.text_signature
        lines = [f"class {g.name}({g.base}):", f'    """{self._block_doc(g)}"""', "",
                 f"    def __init__({', '.join(params)}):", "        super().__init__()"]
        lines += ["        " + x for x in init]
        lines += ["", f"    def forward({sig}):", self._fill_constants(g.text, g.constants)]
        return "\n".join(lines)

    def _block_doc(self, g: BlockClass) -> str:
        scope = g.instances[0].scope
        user = type(scope.module).__name__
        where = ", ".join(s.scope.qual for s in g.instances[:3]) + (", ..." if len(g.instances) > 3 else "")
        head = f"{user} of the base model ({len(g.instances)} instance{'s' if len(g.instances) != 1 else ''}: {where})."
        if g.variant_of:
            head = f"{user} of the base model ({len(g.instances)} instance{'s' if len(g.instances) != 1 else ''}: " \
                   f"{where}), a variant of {g.variant_of}: {self._difference(g, g.variant_base)}."
        # (over every instance: an optional member's layers are only in some)
        taps = [(i.scope, self.taps[n.name]) for i in g.instances for n in i.scope.nodes if n.name in self.taps]
        parts = [head]
        if taps:
            rel = sorted({(t.qualname[len(s.qual) + 1:] if t.qualname.startswith(s.qual + ".") else t.qualname)
                          for s, t in taps}, key=_natural)   # (layer2 before layer10)
            taps = [t for _, t in taps]
            widths = {self.plan.width(t).k for t in taps}
            unit = "channel" if all(t.axis == 1 for t in taps) else "feature"
            parts.append(f"Reads the memory at {', '.join(rel[:6])}{', ...' if len(rel) > 6 else ''} "
                         f"({'/'.join(map(str, sorted(widths)))} memory {unit}{'s' if widths != {1} else ''} each).")
        writes = sorted({a for n, (c, a) in self.update_attr.items() if any(c is i.scope for i in g.instances)})
        if writes:
            parts.append(f"Rewrites it in {', '.join(writes)}.")
        if g.optional:
            without = sum(1 for i in g.instances if id(i.scope) not in g.optional_values)
            parts.append(f"{g.optional} is optional (None in {without} of them).")
        if g.flag:
            on = sum(1 for i in g.instances if getattr(i.scope.module, g.flag))
            parts.append(f"{g.flag} is set in {on} of them.")
        return _wrap_doc(" ".join(parts))

    def _difference(self, g: BlockClass, base: BlockClass) -> str:
        """How variant ``g`` differs from ``base``, in a few words for its docstring: the
        members one has and the other lacks (or has of another kind), what its forward takes,
        and its forward's lines (quoted where one or two differ)."""
        parts = []
        mine, theirs = dict(g.key[3]), dict(base.key[3])
        more = [n for n in mine if n not in theirs]
        fewer = [n for n in theirs if n not in mine]
        other = [n for n in mine if n in theirs and mine[n] != theirs[n]]
        for words, names in (("also has", more), ("has no", fewer)):
            if names:
                parts.append(f"{words} {', '.join(names[:4])}{f' and {len(names) - 4} more' if len(names) > 4 else ''}")
        values = {m.name: m.value for m in g.instances[0].members}
        base_values = {m.name: m.value for m in base.instances[0].members}
        for name in other[:4]:
            kind, was = (getattr(v.get(name), "callee", "") for v in (values, base_values))
            parts.append(f"its {name} is {'an' if kind[:1] in tuple('AEIOU') else 'a'} {kind}" if kind and kind != was
                         else f"its {name} holds other layers")
        if g.signature != base.signature:
            parts.append(f"its forward takes ({g.signature.removeprefix('self, ')})")
        diff = self._forward_diff(base, g)
        added = [d[2:].strip() for d in diff if d.startswith("+ ")]
        removed = [d[2:].strip() for d in diff if d.startswith("- ")]
        if diff and len(diff) <= 2 and not removed:
            parts.append("its forward also runs " + " and ".join(f"``{line}``" for line in added))
        elif diff and len(diff) <= 2 and not added:
            parts.append("its forward leaves out " + " and ".join(f"``{line}``" for line in removed))
        elif diff:
            n = max(len(added), len(removed))
            parts.append(f"{n} line{'s' if n != 1 else ''} of its forward differ{'s' if n == 1 else ''}")
        return "; ".join(parts) or "other arguments"

    def _forward_diff(self, a: BlockClass, b: BlockClass) -> list[str]:
        """The lines of b's forward not in a's ('+ ') and of a's not in b's ('- ')."""
        return [d for d in difflib.ndiff(self._fill_constants(a.text).splitlines(),
                                         self._fill_constants(b.text).splitlines()) if d[:2] in ("- ", "+ ")]

    def _root_text(self, fn: Function, names: dict[str, str], members: list[Member]) -> str:
        init = member_lines(members, self.writer) + self._alias_lines() + self._tie_lines() + self._frozen_lines() \
            + self._setting_lines()
        params = [names[p.name] for p in fn.params]
        lines = [f"class {self.root_class}(nn.Module):"]
        lines.append(f'    """{"AiM version" if not self.plain else "Plain rendering"} of '
                     f'{type(self.root).__name__}{": the memory, its readers and its update blocks." if not self.plain else "."}"""')
        lines += ["", "    def __init__(self):", "        super().__init__()"] + ["        " + x for x in init]
        body = [self._fill_constants(line) for line in render(fn, names, self._resolver(self.top),
                                                              constants=self.expr.constants)]
        if self.plain:
            lines += ["", f"    def forward(self, {', '.join(params)}):"] + body
        else:
            call = ", ".join(params)
            lines += ["", f"    def forward(self, {', '.join(params)}):",
                      f"        outputs, memory = self.forward_with_memory({call}, self.{self.memory_attr}.read())",
                      f"        self.{self.memory_attr}.write(memory)",
                      "        return outputs",
                      "", f"    def forward_with_memory(self, {call}, memory):",
                      '        """The pure function behind forward: (inputs, memory) -> (outputs, new memory).',
                      "        Memory in and out have the seed's shape; the new memory is the batch mean.\"\"\""]
            lines += body
            lines += ["", "    def reset_memory(self) -> None:",
                      '        """Forget what training carried over: the memory is the learned seed again."""',
                      f"        self.{self.memory_attr}.reset()"]
        return "\n".join(lines)

    def _alias_lines(self) -> list[str]:
        """A module the base model holds under a second name that the forward never calls is
        the same module in the generated model too, so its state_dict keys are kept:
        ``self.shared = self.encoder.embed_tokens``. Two modules of one class whose state is the
        same tensors count as one (T5's ``shared`` and ``encoder.embed_tokens``, tied)."""
        names: dict[tuple, list[str]] = {}
        for name, module in self.root.named_modules(remove_duplicate=False):
            state = tuple(id(t) for t in module.state_dict(keep_vars=True).values())
            if name and state:
                names.setdefault((type(module), state), []).append(name)
        lines = []
        for group in names.values():
            used = [n for n in group if self.tree.used(n)]
            for other in group if used else []:
                parent = other.rpartition(".")[0]
                if self.tree.used(other) or (parent and not self.tree.used(parent)):
                    continue
                lines.append(f"{self.tree.access(other)} = {self.tree.access(used[0])}  # the same module, as in the base model")
        return lines

    def _frozen_lines(self) -> list[str]:
        """A torch.nn layer whose parameters its module's ``__init__`` sets and freezes
        (ultralytics' DFL: a 1x1 conv of ``arange`` weights, requires_grad=False) is frozen in the
        generated model too, with those values where they are whole numbers (never a random
        draw: the same input gives the same file); else drawn and trained like any weight. A
        checkpoint (--weights) restores the values either way."""
        lines = []
        for q in sorted(self._leaf_ctors):
            params = list(self.root.get_submodule(q).named_parameters(recurse=False))
            if not params or any(p.requires_grad for _, p in params) or (self.form == "literal" and any(
                    not t.functional and t.qualname == q for t in self.taps.values())):
                continue   # (a widened weight's memory slots train)
            for name, p in params:
                access = attribute_access(self.tree.access(q), name)
                data = p.detach().reshape(-1)
                if p.is_floating_point() and data.numel() <= 64 and bool((data == data.round()).all()):
                    steps = torch.equal(data, torch.arange(data.numel(), dtype=data.dtype))
                    values = f"arange({data.numel()}.0)" if steps else f"tensor({literal([float(v) for v in data.tolist()])})"
                    lines.append(f"{access} = nn.Parameter(torch.{values}.view{tuple(p.shape)}, "
                                 "requires_grad=False)  # fixed, as the base model's __init__ sets it")
                else:
                    lines.append(f"{access}.requires_grad_(False)  # frozen, as in the base model")
        return lines

    def _setting_lines(self) -> list[str]:
        """Settings the base model's builder gave layers of a module kept whole after building it
        (ultralytics sets every BatchNorm's eps and momentum), set again after its constructor
        call: one loop where every layer of that type in it has them, else one line per layer."""
        lines = []
        for q in sorted(self._leaf_ctors):
            settings = self._leaf_ctors[q].settings
            module = self.root.get_submodule(q)
            groups: dict[tuple, list[str]] = {}
            for name, values in settings.items():
                sub = module.get_submodule(name) if name else module
                groups.setdefault((type(sub), tuple(values.items())), []).append(name)
            access = self.tree.access(q)
            for (cls, values), names in groups.items():
                targets = ", ".join(f"m.{k}" if is_safe_identifier(k) else f"getattr(m, {k!r})" for k, _ in values)
                written = ", ".join(literal(v) for _, v in values)
                if len(names) > 1 and names == [n for n, m in module.named_modules() if type(m) is cls] \
                        and all(is_safe_identifier(k) for k, _ in values):
                    lines += [f"for m in {access}.modules():  # as the base model's builder set them",
                              f"    if isinstance(m, {self.writer(cls)}):",
                              f"        {targets} = {written}"]
                    continue
                for name in names:
                    at = _inner_access(access, module, name)
                    lines += [f"{attribute_access(at, k)} = {literal(v)}  # as the base model's builder set it"
                              for k, v in values]
        return lines

    def _tie_lines(self) -> list[str]:
        """A parameter the base model holds under two names (an LM head tied to its embedding)
        is one parameter in the generated model too: ``self.lm_head.weight = self.wte.weight``.
        Every parameter of a written module is written (Tree.entries), so each name here exists
        before the tie is made (RoBERTa's ``lm_head.bias``, which its forward never reads)."""
        names: dict[int, list[str]] = {}
        for name, p in self.root.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), []).append(name)
        lines = []
        for group in names.values():
            written = [n for n in group if self.tree.used(n.rpartition(".")[0])]
            for other in written[1:]:
                owner = other.rpartition(".")[0]
                if not self.plain and self.form == "literal" and any(
                        not t.functional and t.qualname in (owner, written[0].rpartition(".")[0]) for t in self.taps.values()):
                    raise RenderError(f"{other} is tied to {written[0]}, and the literal form would widen one of them.",
                                      hint="Use form='sum' (the default), which keeps base weights as they are.",
                                      field="form")
                lines.append(f"{self.tree.access(other)} = {self.tree.access(written[0])}  # tied, as in the base model")
        return lines

    def _runtime_text(self) -> str:
        if self.plain:
            return ""
        homes = {runtime.__name__} | {o.__module__ for k in REGISTRY.kinds for o in k.runtime_objects}
        copier = SourceCopier(taken=set(), copy_modules=frozenset(homes))
        for obj in self.runtime_needed:
            copier.add(obj, "the memory runtime")
        self._runtime_objects = list(copier.copied.objects)
        return "\n\n\n".join(_without_section_rules(src) for _, src in copier.copied.definitions)


#: operators a forward may apply in place (``out += identity``), as torch.fx records them
_AUGMENTED = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/"}
_AUGMENTED_AST = {"+": "Add", "-": "Sub", "*": "Mult", "/": "Div"}


def _with_body(fn: Function, body: list[Stmt]) -> Function:
    return Function(fn.name, fn.params, fn.memory, body=body, returns=fn.returns, prologue=fn.prologue,
                    return_memory=fn.return_memory)


def _without(fn: Function, body: list[Stmt], out: fx.Node | None, i_ref: str) -> Function:
    """``fn`` with ``body`` (its statements less a part taken out), where what read ``out``, the
    value of that part, reads ``i_ref``, the value the part was given, instead."""
    if out is None:   # (an update block: it only rebinds the memory)
        return _with_body(fn, body)
    o_ref = ref(out)
    body = [Stmt(st.targets, st.code.replace(o_ref, i_ref), st.comment.replace(o_ref, i_ref), st.memory_out,
                 indent=st.indent, augmented=_replaced(st.augmented, out, o_ref, i_ref), slots=st.slots)
            for st in body]
    without = _with_body(fn, body)
    without.returns = fn.returns.replace(o_ref, i_ref)
    return without


def _replaced(augmented, out: fx.Node, o_ref: str, i_ref: str):
    """An in-place statement's parts with the value ``out`` (o_ref) read as i_ref instead; None
    where ``out`` is the value it changes in place."""
    if augmented is None or augmented[0] is out:
        return None
    return augmented[0], augmented[1], augmented[2].replace(o_ref, i_ref)


def _same_meta(a: fx.Node, b: fx.Node) -> bool:
    """Whether two values are tensors of one shape and dtype, as shape propagation saw them."""
    ma, mb = a.meta.get("tensor_meta"), b.meta.get("tensor_meta")
    return all(hasattr(m, "shape") and hasattr(m, "dtype") for m in (ma, mb)) and \
        tuple(ma.shape) == tuple(mb.shape) and ma.dtype == mb.dtype


def _inner_access(access: str, module: nn.Module, name: str) -> str:
    """Source for submodule ``name`` of ``module``, which ``access`` reads: indexes into
    containers, attributes elsewhere."""
    for part in name.split(".") if name else []:
        if isinstance(module, (nn.Sequential, nn.ModuleList)) and part.isdigit():
            access = f"{access}[{int(part)}]"
        elif isinstance(module, nn.ModuleDict):
            access = f"{access}[{part!r}]"
        else:
            access = attribute_access(access, part)
        module = module._modules[part]
    return access


def _without_section_rules(src: str) -> str:
    """A runtime definition without the ``# --- section ---`` rules above it in aimgen's own
    modules (they describe aimgen's files, not the generated one)."""
    lines = src.strip("\n").split("\n")
    while lines and (lines[0].startswith("# ---") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines)


def _fan_in(site: TapSite, width) -> int:
    if site.axis == -1:
        return site.in_size + width.k
    return (site.in_size // site.groups + width.k) * math.prod(site.kernel)


def _train_only(scope: Scope) -> bool:
    """Whether only train() runs the block (an auxiliary head: tracing._train_branches)."""
    return bool(scope.nodes) and all(n.meta.get("train_only") for n in scope.nodes)


def _in_training_block(fn: Function) -> bool:
    """Whether the last statement written is inside an ``if self.training:`` block."""
    for stmt in reversed(fn.body):
        if not stmt.indent:
            return stmt.code == "if self.training:"
    return False


def _pure(node: fx.Node) -> bool:
    """A value read that does nothing if nobody uses it (a shape, an attribute)."""
    import builtins
    import operator
    return (node.op == "call_function" and node.target in (getattr, builtins.getattr, operator.getitem, len)) or \
        (node.op == "call_method" and node.target in ("size", "dim", "numel"))


def _postorder(scope: Scope):
    for c in scope.children:
        yield from _postorder(c)
    yield scope


def _height(scope: Scope) -> int:
    return 1 + max((_height(c) for c in scope.children), default=0)


def _natural(name: str) -> list:
    """A sort key that orders the numbers in a name by value: ``layer2`` before ``layer10``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _canonical(text: str, signature: str) -> str:
    """A forward's text (or signature) with its constants as ``#`` and its parameters, named
    in ``signature``, as ``$0``, ``$1``, ...: what two instances must share to share a class.
    (Not an attribute ``self.x`` or a keyword ``f(x=...)`` of the parameter's name.)"""
    params = [p for p in signature.split(", ") if p not in ("self", "memory")]
    text = _CONSTANT.sub("#", text)
    if not params:
        return text
    index = {p: f"${i}" for i, p in enumerate(params)}
    pattern = re.compile(r"(?<![.\w])(" + "|".join(map(re.escape, params)) + r")(?!\w|\s*=(?!=))")
    return pattern.sub(lambda m: index[m.group(1)], text)


def _insertion(core: list[str], lines: list[str]) -> tuple[int, int] | None:
    """(where, how many): ``lines`` are ``core`` with one run of lines inserted (constants
    aside); None otherwise."""
    n = len(lines) - len(core)
    masked = [_CONSTANT.sub("#", x) for x in core]
    for at in range(len(core) + 1):
        if n > 0 and [_CONSTANT.sub("#", x) for x in lines[:at] + lines[at + n:]] == masked:
            return at, n
    return None


def _forward_params(module: nn.Module) -> list[inspect.Parameter]:
    """The parameters of a module's forward after ``self`` ([] where they cannot be read)."""
    try:
        return [p for p in inspect.signature(type(module).forward).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return []


def _positional(module: nn.Module) -> list[str]:
    """The names of the parameters of a module's forward a call can fill by position."""
    return [p.name for p in _forward_params(module) if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def ref_named(key: str) -> str:
    return f"{MARK}{key}{MARK}"


def _signature(fn: Function, names: dict[str, str]) -> str:
    """The forward's parameter list as written."""
    params = [names[_PACKED]] if fn.packed else [names[p.name] for p in fn.params]
    return ", ".join(["self"] + params + (["memory"] if fn.memory else []))


def _resolve_refs(value, resolved: dict):
    if isinstance(value, BlockRef):
        if id(value.scope) not in resolved:
            raise InternalError(f"the block {value.scope.qual} was used before its class was written.")
        return resolved[id(value.scope)]
    if isinstance(value, Constructor):
        return Constructor(value.callee, [Arg(a.name, _resolve_refs(a.value, resolved), a.positional, a.widen)
                                          for a in value.args], value.imports, value.defaults, value.order)
    if isinstance(value, list):
        return [_resolve_refs(v, resolved) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_refs(v, resolved) for k, v in value.items()}
    return value


def _wrap_doc(text: str, width: int = 88) -> str:
    import textwrap
    lines = textwrap.wrap(docstring(text), width)
    return lines[0] if len(lines) == 1 else "\n    ".join(lines)


def generate(traced: Traced, plan: Plan | None, *, plain: bool = False, flat: bool = False) -> Source:
    return Generator(traced, plan, plain=plain, flat=flat).generate()
