"""The module hierarchy of a captured graph: which nodes each module's forward made, and which
modules can be written as a method call of their own (outlined) rather than inline in their
parent's forward.

torch.fx (and torch.export) record ``nn_module_stack`` on every node: the chain of modules
whose forward was running when the node was made, one key per call (``block@1`` for a second
call). A module's *scope* is the nodes made inside its call. A scope is outlined when it is
one contiguous run of nodes, the module is called once, and its values flow in and out only
through arguments and return values; otherwise its nodes stay inline in the parent (and the
report says why). ``nn.Sequential`` scopes are outlined only as a whole chain (each item takes
the previous item's output): a plain call when no item touches the memory, a
``MemorySequential`` when every item is a memory block, inline otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.fx as fx
from torch import nn


@dataclass
class Scope:
    key: str                          # nn_module_stack key, '' for the root
    qual: str                         # the module's qualified name
    module: nn.Module
    parent: "Scope | None"
    items: list = field(default_factory=list)      # direct nodes and child scopes, in graph order
    nodes: list[fx.Node] = field(default_factory=list)  # every node inside, in graph order
    inputs: list[fx.Node] = field(default_factory=list)
    outputs: list[fx.Node] = field(default_factory=list)
    outlined: bool = False
    chain: str = ""                   # Sequential: "plain" or "memory" when called whole
    why_inline: str = ""
    reads: bool = False               # a tap inside reads the memory
    writes: bool = False              # an update block inside rewrites it
    hosts_update: bool = False        # an update statement is written between its own items

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def memory(self) -> bool:
        return self.reads or self.writes

    @property
    def children(self) -> list["Scope"]:
        return [i for i in self.items if isinstance(i, Scope)]

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def contains(self, other: "Scope") -> bool:
        while other is not None:
            if other is self:
                return True
            other = other.parent
        return False

    def __repr__(self) -> str:  # dataclass repr would recurse through parents
        return f"Scope({self.key or '<root>'}, outlined={self.outlined})"


def container_kind(module: nn.Module) -> str:
    """'sequential', 'list' or 'dict' for torch's containers (and Sequential subclasses that keep
    its forward, like torchvision's Conv2dNormActivation), else ''."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return "sequential"
    plain = type(module).forward is nn.Module.forward  # a container without a forward of its own
    if isinstance(module, nn.ModuleList) and plain:
        return "list"
    if isinstance(module, nn.ModuleDict) and plain:
        return "dict"
    return ""


def _chain(node: fx.Node) -> list[tuple[str, str]]:
    """(key, qualname) of the modules whose forward made ``node``, outermost first (for a
    call_module node, without the called module itself; for an attribute read, down to the
    innermost module that holds the attribute, where there is one)."""
    stack = node.meta.get("nn_module_stack") or {}
    out = [(key, value[0] if isinstance(value, tuple) else key) for key, value in stack.items()]
    if node.op == "call_module" and out and out[-1][1] == node.target:
        out = out[:-1]
    if node.op == "get_attr":
        # torch.fx records an attribute where it is first used: a table a module hands to its
        # own MLP (timm's relative-position MLPs, ``self.mlp(self.rel_coords_log)``) would be
        # read inside that MLP's first layer, whose class cannot reach it; where no module on
        # the way holds it (the model's shared table), the root reads it and hands it in
        holders = [i for i, (_, qual) in enumerate(out) if str(node.target).startswith(qual + ".")]
        out = out[:holders[-1] + 1] if holders else []
    return out


def build(graph: fx.Graph, root: nn.Module, leaves: set[str]) -> tuple[Scope, dict[str, Scope]]:
    """The scope tree, and each node's innermost scope."""
    top = Scope(key="", qual="", module=root, parent=None)
    by_key: dict[str, Scope] = {"": top}
    owner: dict[str, Scope] = {}
    for node in graph.nodes:
        scope = top
        top.nodes.append(node)
        if node.op not in ("placeholder", "output"):
            for key, qual in _chain(node):
                if qual in leaves:
                    break  # made inside a kept leaf (never: its call is one node), be safe
                child = by_key.get(key)
                if child is None:
                    try:
                        module = root.get_submodule(qual)
                    except AttributeError:
                        break
                    child = by_key[key] = Scope(key=key, qual=qual, module=module, parent=scope)
                    scope.items.append(child)
                elif child.parent is not scope:
                    break  # an inconsistent stack: keep the node where it is
                child.nodes.append(node)
                scope = child
        scope.items.append(node)
        owner[node.name] = scope
    _flows(top)
    return top, owner


def _flows(top: Scope) -> None:
    """Inputs and outputs of every scope (values crossing its boundary)."""
    for scope in top.walk():
        if scope.is_root:
            continue
        inside = set(scope.nodes)
        prefix = scope.qual + "."
        ins: dict[fx.Node, None] = {}
        outs: dict[fx.Node, None] = {}
        for n in scope.nodes:
            for a in n.all_input_nodes:
                # a value from outside, or an attribute of a module outside this one (a weight
                # tied to another module's): both come in as arguments
                if a not in inside or (a.op == "get_attr" and not str(a.target).startswith(prefix)):
                    ins[a] = None
            if any(u not in inside for u in n.users):
                outs[n] = None
        scope.inputs, scope.outputs = list(ins), list(outs)


def decide(top: Scope, flat: bool) -> None:
    """Which scopes are outlined (a class of their own, or a whole-Sequential call); after
    ``mark_memory``."""
    calls: dict[str, int] = {}
    for scope in top.walk():
        if not scope.is_root:
            calls[scope.qual] = calls.get(scope.qual, 0) + 1
    order = {id(n): i for i, n in enumerate(top.nodes)}
    for scope in _postorder(top):
        if scope.is_root:
            continue
        if flat:
            scope.why_inline = "flat=True"
            continue
        span = [order[id(n)] for n in scope.nodes]
        if calls[scope.qual] > 1:
            scope.why_inline = f"{scope.qual} is called {calls[scope.qual]} times"
        elif max(span) - min(span) + 1 != len(span):
            scope.why_inline = "its nodes are not one contiguous run"
        elif not scope.outputs:
            scope.why_inline = "nothing it computes is used after it"
        elif any(n.op in ("placeholder", "output") for n in scope.nodes):
            scope.why_inline = "it holds the model's inputs or outputs"
        elif container_kind(scope.module) == "sequential":
            _decide_sequential(scope)
        elif not scope.module._modules and not scope.module._parameters and not scope.module._buffers:
            scope.why_inline = ""  # holds nothing (a Permute, a StochasticDepth): its code reads best inline
        else:
            scope.outlined = True


def _decide_sequential(scope: Scope) -> None:
    """A Sequential is called whole only as a chain of outlined blocks or leaf layers."""
    items = scope.items
    prev = None
    for item in items:
        if isinstance(item, Scope):
            if not item.outlined or len(item.outputs) != 1:
                scope.why_inline = f"its item {item.qual} is not called as a whole"
                return
            value_in = [i for i in item.inputs if i.op != "get_attr"]
            out = item.outputs[0]
        else:
            if item.op != "call_module":
                scope.why_inline = "it holds operations between its items"
                return
            value_in = [a for a in item.all_input_nodes]
            out = item
        expected = [prev] if prev is not None else scope.inputs
        if value_in != expected or (prev is None and len(scope.inputs) != 1):
            scope.why_inline = "its items are not a chain (each taking the previous one's output)"
            return
        prev = out
    if prev is None or scope.outputs != [prev]:
        scope.why_inline = "its last item's output is not its own"
        return
    if scope.hosts_update:
        scope.why_inline = "an update block rewrites the memory between its items"
        return
    if not scope.memory:
        scope.chain = "plain"
    elif all(isinstance(i, Scope) and i.memory for i in items):
        scope.chain = "memory"
    else:
        scope.why_inline = "some of its items read the memory and others do not"
        return
    scope.outlined = True


def mark_memory(top: Scope, tap_nodes: set[str], update_hosts: list[Scope]) -> None:
    """Mark the scopes that read the memory (a tap inside) or rewrite it (an update block is
    written inside)."""
    for scope in top.walk():
        scope.reads = any(n.name in tap_nodes for n in scope.nodes)
    for host in update_hosts:
        host.hosts_update = True
        s = host
        while s is not None:
            s.writes = True
            s = s.parent


def _postorder(scope: Scope):
    for c in scope.children:
        yield from _postorder(c)
    yield scope


def outlined_ancestor(scope: Scope) -> Scope:
    """The nearest scope at or above ``scope`` whose forward is written as its own function."""
    while not scope.is_root and not scope.outlined:
        scope = scope.parent
    return scope
