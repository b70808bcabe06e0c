"""aimgen/tracing.py: torch.fx tracing in train and eval mode, reconciled; untraceable submodules
kept whole; optional forward arguments traced at their defaults."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimgen
from aimgen.errors import TraceError
from aimgen.loader import load_model
from aimgen.tracing import trace
from conftest import ZOO


class Dropper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, mask=None, scale=1.0):
        p = 0.5 if self.training else 0.0
        y = F.dropout(self.fc(x), p, self.training) * scale
        return y if mask is None else y * mask


def test_constants_that_differ_between_train_and_eval_are_recorded():
    traced = trace(Dropper(), n_inputs=1)
    (node,) = [n for n in traced.graph.nodes if n.target is F.dropout]
    assert traced.training_values[node.name] == {(1, "p"): (0.5, 0.0), (1, "training"): (True, False)}


def test_optional_arguments_keep_their_defaults_and_are_not_inputs():
    traced = trace(Dropper(), n_inputs=1)
    assert [n.target for n in traced.graph.nodes if n.op == "placeholder"] == ["x"]
    assert traced.fixed_inputs == {"mask": None, "scale": 1.0}
    conv = aimgen.convert(Dropper(), torch.randn(2, 4))
    assert "traced with mask=None, scale=1.0" in conv.source and "def forward(self, x):" in conv.source
    model = conv.build().eval()
    assert model(torch.randn(3, 4)).shape == (3, 4)


def test_too_few_inputs_names_the_required_and_optional_ones():
    class Two(nn.Module):
        def forward(self, x, t, mask=None):
            return x + t

    with pytest.raises(TraceError, match=r"2 required input\(s\) \(x, t\) and optional mask, but 1 input shape"):
        trace(Two(), n_inputs=1)


class Untraceable(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.gate = Untraceable()

    def forward(self, x):
        return self.gate(self.conv(x))


def test_an_untraceable_submodule_is_kept_whole_with_the_reason():
    traced = trace(Net())
    assert traced.leaf_names == {"gate"}
    assert "x.sum() > 0" in traced.leaf_reasons["gate"] and "test_tracing.py" in traced.leaf_reasons["gate"]


def test_untraceable_root_code_is_refused_with_its_line():
    with pytest.raises(TraceError, match=r"test_tracing.py:\d+ .*root module"):
        trace(Untraceable())


class ShapeBranch(nn.Module):
    def forward(self, x):
        if x.shape[1] == 3:  # A BRANCH, NOT AN ASSERT
            x = x * 2
        return x


def test_an_assert_on_traced_shapes_is_traced_through_and_left_out_like_python_O():
    model = load_model(f"{ZOO / 'shape_assert.py'}:Net").model.eval()
    traced = trace(model)
    assert not traced.leaf_names    # traced through, so its conv is a layer aimgen can tap
    assert [n.target for n in traced.graph.nodes if n.op == "call_module"] == ["stem", "down.conv"]
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict())
    assert [t.qualname for t in conv.plan.taps] == ["stem", "down.conv"] and "assert" not in conv.source
    x = torch.randn(2, 3, 16, 16)
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-6


class _JitChecked(nn.Module):
    """MONAI's decoder block: an optional skip input, checked with torch.jit.isinstance."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 1)

    def forward(self, x, skip=None):
        if skip is not None and torch.jit.isinstance(skip, torch.Tensor):
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class _WithSkip(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1)
        self.up = _JitChecked()

    def forward(self, x):
        return self.up(self.stem(x), x)


def test_torch_jit_isinstance_of_a_traced_tensor_takes_the_tensor_branch():
    """torch.fx alone records the other branch (a 3-channel input into a 6-channel conv)."""
    model, before = _WithSkip().eval(), torch.jit.isinstance
    traced = trace(model)
    assert torch.jit.isinstance is before   # put back after tracing
    assert torch.cat in [n.target for n in traced.graph.nodes]
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict())
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-6


def test_traces_in_two_threads_put_torch_jit_isinstance_back_once_both_end():
    """Each trace swaps torch.jit.isinstance while it runs. Traces that overlap in two threads
    and end in the order they began must neither put the original back while the second still
    traces nor leave a swapped one behind when both are done."""
    import threading

    from aimgen.tracing import _proxies_are_tensors

    before = torch.jit.isinstance
    entered, release, seen = threading.Event(), threading.Event(), []

    def second():
        with _proxies_are_tensors():
            entered.set()
            release.wait(10)
            seen.append(torch.jit.isinstance is not before)   # the first trace has ended meanwhile

    with _proxies_are_tensors():
        worker = threading.Thread(target=second)
        worker.start()
        entered.wait(10)
    release.set()
    worker.join(10)
    assert seen == [True]                      # still swapped while the second one traced
    assert torch.jit.isinstance is before      # and the original once both ended


def test_a_branch_on_a_traced_shape_is_still_refused():
    with pytest.raises(TraceError, match="A BRANCH, NOT AN ASSERT"):
        trace(ShapeBranch())


class _Variadic(nn.Module):
    """ultralytics' root: forward(x, *args, **kwargs) hands them on to predict()."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, *args, **kwargs):
        return self.predict(x, *args, **kwargs)

    def predict(self, x, profile=False):
        y = self.fc(x)
        return {"y": y, "pair": (y, y + 1)}


def test_a_root_forward_s_star_args_are_traced_empty_and_the_output_keeps_its_structure():
    """Asked to (after torch.export failed too: see aimgen.api._trace); by default they are
    Proxies torch.fx cannot hand on, which sends the model to torch.export."""
    with pytest.raises(TraceError, match="cannot be iterated"):
        trace(_Variadic(), n_inputs=1)
    traced = trace(_Variadic(), n_inputs=1, empty_varargs=True)
    assert [n.target for n in traced.graph.nodes if n.op == "placeholder"] == ["x"]
    (out,) = [n for n in traced.graph.nodes if n.op == "output"]
    y, add = [n for n in traced.graph.nodes if n.op in ("call_module", "call_function")]
    assert out.args == ({"y": y, "pair": (y, add)},)
    assert type(traced.graph._codegen) is torch.fx.graph.CodeGen


class _Pieces(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        y = list(self.fc(x).chunk(2, -1))            # len() first, then iteration
        a, b, c = self.fc(x).split([1, 2, 3], -1)
        y.extend(t * 2 for t in torch.chunk(y[-1], 3, -1))
        return torch.cat(y + [a, b, c], -1)


def test_the_pieces_of_chunk_and_split_by_sizes_are_iterated():
    traced = trace(_Pieces(), n_inputs=1)
    getitems = [n for n in traced.graph.nodes if n.target is __import__("operator").getitem]
    assert len(getitems) == 2 + 3 + 3
    x = torch.randn(2, 4)
    got = torch.fx.Interpreter(traced.root, graph=traced.graph).run(x)
    assert torch.equal(got, _Pieces.forward(traced.root, x))


def test_iterating_a_split_of_unknown_count_is_still_refused():
    class Unbind(nn.Module):
        def forward(self, x):
            return sum(t for t in x.unbind(1))

    with pytest.raises(TraceError, match="cannot be iterated"):
        trace(Unbind(), n_inputs=1)


class _SharedAct(nn.Module):
    act = nn.SiLU()   # a class attribute: every instance holds the same module

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = _SharedAct.act

    def forward(self, x):
        return self.act(self.fc(x))


def test_a_shared_stateless_module_is_named_under_each_caller_and_a_stateful_one_is_not():
    shared_fc = nn.Linear(4, 4)
    model = nn.Sequential(_SharedAct(), _SharedAct(), nn.Sequential(shared_fc), nn.Sequential(shared_fc))
    calls = [n.target for n in trace(model, n_inputs=1).graph.nodes if n.op == "call_module"]
    assert calls == ["0.fc", "0.act", "1.fc", "1.act", "2.0", "2.0"]


def test_tracing_puts_back_the_mode_and_what_a_forward_set_on_its_modules():
    class Caching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.last = None

        def forward(self, x):
            self.last = x.shape   # a traced value, set on the module
            return self.fc(x)

    model = nn.Sequential(Caching(), nn.Dropout(0.1)).train()
    model[1].eval()   # mixed modes stay mixed
    trace(model, n_inputs=1)
    assert [m.training for m in model.modules()] == [True, True, True, False]
    assert model[0].last is None


class _Window(nn.Module):
    """Reshapes a buffer by its own shape (Swin's mask.view(1, mask.shape[0], ...))."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("bias", torch.randn(3, 4), persistent=False)

    def forward(self, x):
        return self.fc(x).view(-1, self.bias.shape[0], 4) + self.bias.view(1, self.bias.shape[0], 4)


class _Counted(nn.Module):
    """Uses a buffer as a Python number, and counts its calls in train() only (BatchNorm's
    num_batches_tracked): both need the buffer's value, not a traced one."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("scale", torch.tensor(2.0))
        self.register_buffer("calls", torch.tensor(0))

    def forward(self, x):
        if self.training:
            self.calls.add_(1)
        return self.fc(x) * float(self.scale)


class _Both(nn.Module):
    def __init__(self):
        super().__init__()
        self.window, self.counted = _Window(), _Counted()

    def forward(self, x):
        return self.counted(self.window(x).flatten(0, 1))


def test_a_buffer_is_a_traced_value_except_where_a_forward_needs_its_number():
    """A buffer read as a traced value records what the forward does with it (torch.fx's
    default runs it and keeps a constant the size of the result); a module that needs the
    number (float(), a train()-only in-place count) reads the tensor, as before, and is still
    traced through, not kept whole."""
    model = _Both()
    traced = trace(model, n_inputs=1)
    assert traced.leaf_names == frozenset()
    nodes = traced.graph.nodes
    assert [n.target for n in nodes if n.op == "get_attr"] == ["window.bias"]
    assert not [n for n in nodes if n.op == "get_attr" and n.target.startswith("_tensor_constant")]
    assert [n.target for n in nodes if n.op == "call_module"] == ["window.fc", "counted.fc"]
    x = torch.randn(6, 4)
    model.eval()
    assert torch.equal(torch.fx.GraphModule(model, traced.graph)(x), model(x))


class FrozenConfig(dict):
    """As diffusers' FrozenDict (a model's ``config``): update and setdefault raise; clear does not."""

    def update(self, *args, **kwargs):
        raise Exception("You cannot use ``update`` on a FrozenConfig instance.")


class Configured(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = FrozenConfig(width=4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if len(x.shape) != 2:   # torch.fx cannot trace len(): torch.export captures it instead
            raise ValueError("2-d input expected")
        return self.fc(x)


def test_a_dict_the_model_holds_that_a_run_did_not_change_is_left_alone():
    """Putting back what a traced run changed cleared diffusers' FrozenDict config, then failed on
    its update(): the model was left without its config and the conversion failed."""
    model = Configured()
    conv = aimgen.convert(model, torch.randn(1, 4))
    assert model.config == {"width": 4} and conv.plan.taps


Outputs = __import__("collections").namedtuple("Outputs", ["logits", "aux"])


class _AuxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(8, 4, 1), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.conv(x), 1), 1))


class _AuxNet(nn.Module):
    """As torchvision's GoogLeNet: an auxiliary head that train() alone runs, between the
    layers both modes run, and returns beside the logits as a namedtuple."""

    def __init__(self):
        super().__init__()
        self.stem, self.body = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.aux, self.fc = _AuxHead(), nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        aux = self.aux(x) if self.training else None
        x = torch.relu(self.body(x))
        x = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        if self.training:
            return Outputs(x, aux)
        return x


def test_a_head_only_train_runs_is_written_under_if_self_training_and_returned_in_train_only():
    """Nodes only train() runs, between nodes both run (torch.fx numbers their names apart),
    are one graph with them marked; the head is called under ``if self.training:``, reads no
    memory (eval() never uses what it reads), and train() returns the namedtuple, written with
    collections; base weights in, both modes compute what the base model computes."""
    torch.manual_seed(0)
    base = _AuxNet()
    traced = trace(base, n_inputs=1)
    assert traced.mode_tail is None and traced.train_heads == ["aux"] and not traced.leaf_names
    assert traced.mode_note() == ("only train() runs aux, and returns other things than eval(): written under "
                                  "`if self.training:`, reading no memory")
    conv = aimgen.convert(base, [(1, 3, 16, 16)], base_weights=base.state_dict())
    assert sorted(t.qualname for t in conv.plan.taps) == ["body", "fc", "stem"]
    assert sorted(s.qualname for s in conv.plan.skipped) == ["aux.conv", "aux.fc"]
    assert all("runs only in train() (for an output eval() does not return)" in s.reason for s in conv.plan.skipped)
    src = conv.source
    assert "Outputs = collections.namedtuple('Outputs', ['logits', 'aux'])" in src and "import collections" in src
    assert "        if self.training:\n            aux = self.aux(x)\n" in src
    assert "        if self.training:\n            return Outputs(x, aux), memory.final()\n" \
           "        return x, memory.final()\n" in src
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(aim.eval()(x), base.eval()(x), atol=1e-6)
        out, want = aim.train()(x), base.train()(x)
    assert type(out).__name__ == "Outputs" and out._fields == ("logits", "aux")
    assert torch.allclose(out.logits, want.logits, atol=1e-6) and torch.allclose(out.aux, want.aux, atol=1e-6)


def test_a_train_only_part_that_eval_computes_otherwise_is_not_taken_for_a_branch():
    """eval() must run a part of train()'s nodes on the same inputs: a forward whose eval()
    path computes its own thing (not a subset) is refused as before."""

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) if self.training else self.fc(x * 2)

    with pytest.raises(TraceError, match="takes a different path in train"):
        trace(Other(), n_inputs=1)
