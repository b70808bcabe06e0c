"""aimgen/codegen/functions.py: locals named after the user's own variables, reused once dead."""
from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from aimgen.codegen.expressions import ref
from aimgen.codegen.functions import Function, Naming, Stmt, render, source_name


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        out = self.conv(x)
        skip = out * 2
        out = torch.relu(out)
        return out + skip


def test_source_names_come_from_the_line_that_made_the_value():
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(Net())
    names = {n.name: source_name(n) for n in graph.nodes if n.op not in ("placeholder", "output")}
    assert names == {"conv": "out", "mul": "skip", "relu": "out", "add": None}


class Unpacking(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, feats):
        h, w = feats[0].shape[2:]
        a, _ = self.conv(feats[1]).chunk(2, 1)
        self.scale = a * h
        return self.scale + w


def test_a_line_that_unpacks_names_each_item_and_an_attribute_target_names_its_value():
    """``h, w = feats[0].shape[2:]`` names the two items (not ``feats[0]``, an item of a value
    made elsewhere, though it is also an item 0); ``self.scale = ...`` names the value scale."""
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(Unpacking())
    names = {n.name: source_name(n) for n in graph.nodes if n.op not in ("placeholder", "output")}
    assert names == {"getitem": None, "getattr_1": None, "getitem_1": None, "getitem_2": "h", "getitem_3": "w",
                     "getitem_4": None, "conv": None, "chunk": None, "getitem_5": "a", "getitem_6": None,
                     "mul": "scale", "add": None}
    first = next(n for n in graph.nodes if n.name == "getitem")
    assert first.args[0].op == "placeholder" and first.args[1] == 0   # feats[0]: an item 0, not unpacked


def test_a_name_is_reused_only_once_its_value_is_dead():
    graph = fx.Graph()
    x = graph.placeholder("x")
    a, b, c = (graph.call_function(torch.relu, (x,)) for _ in range(3))
    fn = Function("forward", [x], memory=False, body=[
        Stmt([a], f"f({ref(x)})"), Stmt([b], f"g({ref(a)})"), Stmt([c], f"h({ref(b)}, {ref(a)})")],
        returns=ref(c))
    names = Naming(set(), lambda n: "out").assign(fn, {x.name: "x"})
    # a is still needed when b is made: b cannot take its name; c can take b's
    assert [names[v.name] for v in (a, b, c)] == ["out", "relu", "out"]
    assert render(fn, names, lambda k: None, indent="") == [
        "out = f(x)", "relu = g(out)", "out = h(relu, out)", "return out"]


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, 8).permute(2, 0, 1, 3)
        parts = torch.split(q, 4, dim=-1)
        y = (q @ k.transpose(1, 2)).softmax(-1) @ v + torch.cat([parts[1], parts[0]], -1)
        return self.proj(y)


def test_a_value_only_taken_apart_is_written_as_one_unpacking_where_its_length_is_sure():
    """``shape = x.shape; b = shape[0]; n = shape[1]`` is ``b, n, _ = x.shape`` (a shape has
    the tensor's rank at every size); ``q, k, v = ...permute(...)`` as the user unpacked it;
    torch.split's pieces, whose number the user's line does not fix, stay indexed."""
    import aimgen

    base = Heads().eval()
    plain = aimgen.convert(base, torch.randn(1, 3, 8), plain=True)
    source = plain.source
    assert "        b, n, _ = x.shape\n" in source
    assert "        q, k, v = self.qkv(x).reshape(b, n, 3, 8).permute(2, 0, 1, 3)\n" in source
    assert "        parts = torch.split(q, 4, dim=-1)\n" in source and "parts[1]" in source and "parts[0]" in source
    model = plain.build().eval()
    model.load_state_dict(base.state_dict())
    x = torch.randn(2, 5, 8)   # another batch and length than traced
    torch.testing.assert_close(model(x), base(x), rtol=0, atol=0)



def pairs(x):
    return (x * 2, x + 1), x - 1, x * 3


torch.fx.wrap("pairs")   # one call_function whose value is a nested tuple


class Nested(nn.Module):
    def forward(self, x):
        (a, b), c, d = pairs(x)
        return a * b + c - d


def test_an_item_of_a_value_its_line_unpacks_is_not_given_the_lines_length():
    """``(a, b), c, d = pairs(x)``: the inner pair's items are named a and b (not a and c, the
    line's items 0 and 1), and it is not unpacked into the line's 3 items (``a, b, _``)."""
    import aimgen

    base = Nested()
    plain = aimgen.convert(base, torch.randn(1, 4, 3), plain=True)
    for line in ("getitem, c, d = pairs(x)", "a = getitem[0]", "b = getitem[1]"):   # (not c = getitem[1])
        assert f"        {line}\n" in plain.source
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(plain.build()(x), base(x), rtol=0, atol=0)


class OneLiners(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.head = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))

    def forward(self, x, y):
        a = (x @ y.transpose(-2, -1)) * (x.shape[-1] // 2) ** -0.5
        b = -(a - 1) ** 2
        c = a - (b - a) / 2
        d = torch.relu(self.fc(x))
        return self.head(c.mean(-1, keepdim=True) + d)


def test_a_line_of_several_operations_is_written_as_one_line_with_the_parentheses_it_needs():
    """What one line of the user's forward computes is one line again (a value read once, by the
    next operation of the same line), with parentheses only where precedence needs them or two
    operators of one precedence meet; the layers a container runs keep a line each."""
    import aimgen

    base = OneLiners().eval()
    plain = aimgen.convert(base, [torch.randn(1, 4, 6), torch.randn(1, 3, 6)], plain=True)
    forward = plain.source[plain.source.index("    def forward"):]
    for line in ("a = (x @ y.transpose(-2, -1)) * (x.shape[-1] // 2) ** -0.5", "b = -(a - 1) ** 2",
                 "c = a - (b - a) / 2", "d = torch.relu(self.fc(x))", "return self.head(c.mean(-1, keepdim=True) + d)"):
        assert f"        {line}\n" in forward, forward
    aim = aimgen.convert(base, [torch.randn(1, 4, 6), torch.randn(1, 3, 6)]).source   # head's layers read memory
    assert "        relu = self.head[1](linear)\n" in aim, aim   # (not self.head[1](self.head[0](...)))
    model = plain.build().eval()
    model.load_state_dict(base.state_dict())
    x, y = torch.randn(2, 5, 6), torch.randn(2, 7, 6)   # other sizes than traced
    torch.testing.assert_close(model(x, y), base(x, y), rtol=0, atol=0)


def test_an_operation_is_written_into_a_line_only_where_that_line_writes_it():
    """Read from the statement's code, so torch.export's ``aten.view`` (written ``.view(``)
    counts as the user's ``.view(``; a layer a container runs is not its caller's line's; an
    in-place or random aten operation is never moved."""
    from aimgen.codegen.expressions import MARK
    from aimgen.codegen.functions import _pure, _visible

    def ref(name):   # a value, as statements refer to it
        return f"{MARK}{name}{MARK}"

    line = "query = self.query(x).view(shape).transpose(1, 2) @ key * 0.25"
    for code, seen in ((f"{ref('a')}.view({ref('s')})", True), (f"{ref('a')}.transpose(1, 2)", True),
                       (f"self.query({ref('x')})", True), (f"{ref('a')} @ {ref('k')}", True),
                       (f"{ref('a')} * 0.25", True), (f"{ref('a')} + 1", False), (f"{ref('a')}.reshape(-1)", False),
                       (f"self.classifier[1]({ref('x')})", False)):
        assert _visible(Stmt([], code), line) is seen, code
    graph = fx.Graph()
    x = graph.placeholder("x")
    ops = {op: graph.call_function(op, (x, x) if "Tensor" in str(op) else (x,))
           for op in (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor, torch.ops.aten.bernoulli.default)}
    assert [_pure(n) for n in ops.values()] == [True, False, False]


class Spanning(nn.Module):
    def forward(self, x):
        y = torch.relu(
            x.transpose(1, 2)
            * 2
        ).sum(-1)
        return y + 1


def test_a_statement_over_several_lines_is_one_line_of_the_users_code():
    """Its operations' stack traces name different lines of it (the product's, relu's): they
    are still one statement, written as one line."""
    import aimgen

    plain = aimgen.convert(Spanning(), torch.randn(1, 3, 4), plain=True)
    assert "        y = torch.relu(x.transpose(1, 2) * 2).sum(-1)\n" in plain.source, plain.source


class Gelu(nn.Module):
    def forward(self, hidden_states):
        return 0.5 * hidden_states * (1.0 + torch.tanh(0.7978845608028654 * (hidden_states + 0.044715 * hidden_states ** 3.0)))


def test_a_joined_line_is_measured_with_its_numbers_written_out():
    """GPT-2's GELU: its numbers are long; a line counted with short ones went over the width
    (and was wrapped, once into a one-item tuple): the joins stop where a line would."""
    import aimgen

    base = Gelu()
    plain = aimgen.convert(base, torch.randn(1, 4), plain=True)
    forward = plain.source[plain.source.index("    def forward"):plain.source.index("def build_model")]
    lines = forward.splitlines()
    assert max(map(len, lines)) <= 99 and not any(line.endswith("(") for line in lines), forward   # none wrapped
    x = torch.randn(3, 4)
    torch.testing.assert_close(plain.build()(x), base(x), rtol=0, atol=0)


class Starred(nn.Module):
    def __init__(self):
        super().__init__()
        self.to_q = nn.Linear(4, 4)
        self.to_kv = nn.Linear(4, 8)

    def forward(self, x):
        q, k, v = (self.to_q(x), *self.to_kv(x).chunk(2, dim=-1))   # lucidrains' CvT
        return q * k + v


def test_items_of_a_value_inside_a_tuple_the_line_builds_are_not_the_targets_items():
    """``q, k, v = (a, *kv.chunk(2))``: chunk's two items are the target's second and third, so
    the line's three names neither count its items (``_, k, v = chunk`` failed: 2 values, not 3)
    nor name them (its item 0 is not q)."""
    import aimgen

    base = Starred()
    plain = aimgen.convert(base, torch.randn(1, 3, 4), plain=True)
    assert "_, " not in plain.source and "q = chunk[0]" not in plain.source, plain.source
    model = plain.build()
    model.load_state_dict(base.state_dict())
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(model(x), base(x), rtol=0, atol=0)
