"""aimgen/shapes.py: shapes at the example, batch axes, and sizes as symbolic expressions (or,
where a model cannot run symbolically, as the sizes of two concrete runs)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aimgen import shapes
from aimgen.loader import InputSpec, example_inputs
from aimgen.tracing import trace


def fit_window(window: list[int], size: list[int]) -> list[int]:
    """Changes its argument in place, as torchvision's swin3d window sizing does."""
    for i in range(len(window)):
        window[i] = min(window[i], size[i])
    return window


torch.fx.wrap("fit_window")


class Windowed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        # a list in the graph (the call reads traced sizes): torch.fx keeps it immutable
        window = fit_window([4, 4], [x.shape[2] // 2, x.shape[3]])
        return F.avg_pool2d(self.conv(x), window[0], stride=1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        z = self.b(y)
        return F.adaptive_avg_pool2d(z, 7).transpose(0, 1)


def analysed(model, shape):
    traced = trace(model, n_inputs=1)
    specs = [InputSpec(shape)]
    shapes.analyse(traced, specs, lambda batch=None: example_inputs(specs, model, batch=batch), "net")
    return {n.name: n for n in traced.graph.nodes}


def test_sizes_are_symbolic_so_equal_sizes_are_equal_at_every_input_size():
    nodes = analysed(Net(), (1, 3, 16, 16))
    assert shapes.size_key(nodes["a"]) == shapes.size_key(nodes["relu"]) == shapes.size_key(nodes["x"])
    assert shapes.size_key(nodes["b"]) != shapes.size_key(nodes["a"])
    assert shapes.size_key(nodes["adaptive_avg_pool2d"]) == ("7", "7")  # fixed, whatever the input
    assert tuple(shapes.tensor_meta(nodes["b"]).shape) == (1, 4, 8, 8)
    assert nodes["b"].meta["batch_axis_ok"] and not nodes["transpose"].meta["batch_axis_ok"]


class Gate(nn.Module):
    def forward(self, x):
        return x if x.mean() > 0 else -x  # data-dependent: kept whole, and no symbolic run


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = Gate()

    def forward(self, x):
        return self.gate(self.conv(x))


def test_without_symbolic_sizes_a_second_run_gives_the_batch_axis_and_the_sizes():
    nodes = analysed(DataDependent(), (1, 3, 8, 8))  # nonzero: no symbolic run
    conv = next(n for n in nodes.values() if n.op == "call_module")
    assert conv.meta["batch_axis_ok"]
    assert conv.meta["size"][1] == "4" and "|" in conv.meta["size"][2]  # channels fixed, spatial follows


def test_a_wrapped_function_that_changes_its_list_argument_runs():
    """The graph's runs give each call fresh lists, as the model's own code does."""
    model = Windowed()
    traced = trace(model)
    x = torch.randn(1, 3, 8, 8)
    shapes.propagate_shapes(traced, (x,), "windowed")
    assert torch.equal(traced.outputs, model.eval()(x))
    assert shapes.symbolic_sizes(traced, (x,))


def test_a_symbolic_run_past_its_time_budget_gives_way_to_a_second_run(monkeypatch):
    """timm's gcvit made torch's symbolic shape simplification run for over ten minutes."""
    monkeypatch.setattr(shapes, "SYMBOLIC_SECONDS", 0.0)
    traced = trace(Net(), n_inputs=1)
    assert not shapes.symbolic_sizes(traced, (torch.randn(1, 3, 16, 16),))
    assert not any("size" in n.meta for n in traced.graph.nodes)   # nothing half-recorded
    nodes = analysed(Net(), (1, 3, 16, 16))
    assert "|" in nodes["a"].meta["size"][2]   # the second run's (size here | size there)
    assert nodes["b"].meta["batch_axis_ok"]



def test_a_symbolic_run_gives_way_at_a_size_expression_too_long_whatever_the_time(monkeypatch):
    """torchvision's MaxViT doubles its size expressions' length every few reshapes, each node
    slower than the last: the run stops at the first longer than the limit, the same node on
    every machine, so the sizes (and the update blocks' places) never depend on its load."""
    monkeypatch.setattr(shapes, "SYMBOLIC_SECONDS", 1e9)
    traced = trace(Net(), n_inputs=1)
    assert shapes.symbolic_sizes(traced, (torch.randn(1, 3, 16, 16),))
    longest = max(len(s) for n in traced.graph.nodes for s in n.meta.get("size", ()))
    assert longest > 10   # the stride-2 conv's size: an expression of the input's size
    monkeypatch.setattr(shapes, "SYMBOLIC_EXPRESSION_CHARS", longest - 1)
    traced = trace(Net(), n_inputs=1)
    assert not shapes.symbolic_sizes(traced, (torch.randn(1, 3, 16, 16),))
    assert not any("size" in n.meta for n in traced.graph.nodes)
    monkeypatch.setattr(shapes, "SYMBOLIC_EXPRESSION_CHARS", longest)
    assert shapes.symbolic_sizes(trace(Net(), n_inputs=1), (torch.randn(1, 3, 16, 16),))

class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.SiLU()
        self.ln = nn.LayerNorm(4)

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return self.ln(y.flatten(2).transpose(1, 2))


def test_norms_and_activations_take_their_input_sizes_without_running_on_fake_tensors(monkeypatch):
    """Only sizes are recorded by the symbolic run, and a BatchNorm on fake tensors with symbolic
    sizes is slow (resnet50's 106 took 60% of it): layers whose output has their input's shape
    pass the input on; their sizes are still right, and the concrete run still runs them."""
    calls = []
    real = F.batch_norm
    monkeypatch.setattr(F, "batch_norm", lambda *a, **k: calls.append(type(a[0]).__name__) or real(*a, **k))
    nodes = analysed(Normed(), (1, 3, 16, 16))
    assert calls == ["Tensor"]   # the concrete run's; none on fake tensors (nor larger_rows': no regrouping)
    assert shapes.size_key(nodes["bn"]) == shapes.size_key(nodes["act"]) == shapes.size_key(nodes["conv"])
    assert nodes["ln"].meta["size"] == nodes["transpose"].meta["size"] and nodes["ln"].meta["batch_axis_ok"]
    assert tuple(shapes.tensor_meta(nodes["ln"]).shape) == (1, 64, 4)
    assert shapes.size_key(nodes["conv"]) != shapes.size_key(nodes["x"])   # still symbolic: not "8"
    assert not shapes.size_key(nodes["conv"])[0].isdigit()


class _Windows(nn.Module):
    """(B, C, H, W) -> (B * windows, 16 cells, C): one 4 x 4 window a sample at 4 x 4, more at
    larger sizes (MaxViT's last stage at 256 x 256)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        b, c, h, w = x.shape
        return self.fc(x.reshape(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(-1, 16, c))


def test_one_window_a_sample_at_the_example_is_still_windows_of_the_samples():
    """Where the size analysis finds that a first axis does not follow the batch, and the
    example has one window a sample, the rows are still the samples' windows in turn: marked
    (MaxViT-nano's last stage was left untapped, 'input is not batched')."""
    model = _Windows()
    traced = trace(model, n_inputs=1)
    specs = [InputSpec((1, 8, 4, 4))]
    shapes.analyse(traced, specs, lambda batch=None: example_inputs(specs, batch=batch), "windows")
    (rows,) = [n for n in traced.graph.nodes if n.op == "call_module"]
    windows = rows.args[0]
    windows.meta["batch_axis_ok"] = False   # as the symbolic analysis finds it in MaxViT
    shapes.sample_rows(traced, lambda batch=None: example_inputs(specs, batch=batch))
    assert windows.meta["sample_rows"] is True and windows.meta["sample_free"] is False


class _SmallWindows(nn.Module):
    """Windows of the samples whose values are small (1e-4: a stage at random weights), then a
    LayerNorm whose rows are all equal: it gives zeros, the same for every sample."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        b, c, h, w = x.shape
        windows = (x * 1e-4).reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(-1, 4, c)
        flat = self.norm(windows.mean(-1, keepdim=True).expand(-1, -1, c))
        return self.fc(flat + windows)


def test_windows_are_found_at_the_values_scale_and_through_rows_that_cannot_tell_samples_apart():
    """Hugging Face's MobileViT at random weights: its unfolded patches hold values of 1e-3 and a
    LayerNorm of them gives zeros, so an absolute tolerance took every row for every sample's
    (36 of its 90 layers tapped, 72 now). Compared at their own scale, and where a row-for-row
    operation gives the same rows for every sample, the rows its input holds in turn."""
    traced = trace(_SmallWindows(), n_inputs=1)
    specs = [InputSpec((1, 8, 4, 4))]
    shapes.analyse(traced, specs, lambda batch=None: example_inputs(specs, batch=batch), "small")
    nodes = {n.name: n for n in traced.graph.nodes}
    assert nodes["reshape_1"].meta["batch_axis_ok"] is False
    assert nodes["reshape_1"].meta["sample_rows"] is True     # values of 1e-4, told apart
    assert nodes["norm"].meta["sample_rows"] is True          # zeros for every sample: its input's rows
    assert nodes["add"].meta["sample_rows"] is True


class _PaddedWindows(nn.Module):
    """Swin's window partition: the (N, H, W, C) map padded up to whole 7 x 7 windows, which a
    3 x 3 map and a 6 x 6 one both fill one of."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        b, h, w, c = x.shape
        x = F.pad(x, (0, 0, 0, (7 - w % 7) % 7, 0, (7 - h % 7) % 7))
        _, ph, pw, _ = x.shape
        windows = x.view(b, ph // 7, 7, pw // 7, 7, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 49, c)
        return self.fc(windows)


def test_windows_are_found_where_a_map_is_padded_to_one_window_at_both_runs():
    """torchvision's Swin-T converted at 96 x 96: its last stage's 3 x 3 map (6 x 6 at the
    second run) is padded to one 7 x 7 window, so its windows' rows were taken for the batch and
    the model failed at 288 x 288 and batch 2. The probe for windows runs where the padded map
    outgrows a window: 7 // 3 + 1 = 3 times the example's size."""
    traced = trace(_PaddedWindows(), n_inputs=1)
    specs = [InputSpec((1, 8, 3, 3))]
    make = lambda batch=None: example_inputs(specs, batch=batch)  # noqa: E731
    shapes.analyse(traced, specs, make, "padded")
    assert shapes.outgrowing_scale(traced) == 3
    (fc,) = [n for n in traced.graph.nodes if n.op == "call_module" and n.target == "fc"]
    windows = fc.args[0]
    assert windows.meta["batch_axis_ok"] is False
    assert windows.meta["sample_rows"] is True


class _ZeroPatches(nn.Module):
    """Hugging Face's MobileViT at random weights: its last stage's map is all zeros, unfolded
    into (N * 4, 1, C) patches that a LayerNorm and a Linear read."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)
        return self.fc(self.norm(x.reshape(-1, 1, 8)))


def test_a_reshape_of_samples_into_rows_holds_them_in_turn_whatever_the_values():
    """Values cannot tell the samples apart where every row is zero (MobileViT's last stage:
    18 of its 90 layers were left untapped). A reshape keeps the values' order, so the rows
    of a batch-first tensor come sample after sample, and the rows read from it too."""
    traced = trace(_ZeroPatches(), n_inputs=1)
    specs = [InputSpec((1, 3, 2, 2))]
    shapes.analyse(traced, specs, lambda batch=None: example_inputs(specs, batch=batch), "zeros")
    nodes = {n.name: n for n in traced.graph.nodes}
    assert nodes["permute"].meta["batch_axis_ok"] is True
    assert nodes["reshape"].meta["sample_rows"] is True
    assert nodes["norm"].meta["sample_rows"] is True
