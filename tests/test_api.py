"""aimgen/api.py: ``aimgen.convert`` as a Python caller uses it: options as keywords or as one
``Options`` value, messages in the API's own words, and a conversion that builds and runs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimgen
from aimgen.errors import AimgenError


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def test_options_come_as_keywords_or_as_one_value_not_both():
    a = aimgen.convert(Small(), [(1, 3, 16, 16)], memory_size=512)
    b = aimgen.convert(Small(), [(1, 3, 16, 16)], options=aimgen.Options(memory_size=512))
    assert a.source == b.source and a.plan.memory_shape == (2, 16, 16)
    with pytest.raises(TypeError, match="either options= or option keywords"):
        aimgen.convert(Small(), [(1, 3, 16, 16)], options=aimgen.Options(), memory_size=512)


def test_messages_name_the_api_arguments_not_command_line_flags():
    with pytest.raises(AimgenError) as err:
        aimgen.convert(Small(), [(1, 3, 16, 16)], memory_size=-1)
    assert "memory_size=-1" in str(err.value) and "--memory-size" not in str(err.value)
    with pytest.raises(AimgenError) as err:
        aimgen.convert(Small())
    assert "input_shapes=" in str(err.value) and "--input-shape" not in str(err.value)


def test_a_tensor_and_its_shape_give_the_same_source():
    by_shape = aimgen.convert(Small(), [(1, 3, 16, 16)])
    by_tensor = aimgen.convert(Small(), torch.randn(1, 3, 16, 16))
    assert by_shape.source == by_tensor.source


def test_the_conversion_builds_a_model_that_keeps_the_base_keys_and_runs():
    base = Small()
    conversion = aimgen.convert(base, [(1, 3, 16, 16)], base_weights=base.state_dict())
    model = conversion.build().eval()
    assert set(base.state_dict()) <= set(model.state_dict())
    with torch.no_grad():
        assert (model(torch.randn(2, 3, 16, 16)) - base(torch.randn(2, 3, 16, 16))).shape == (2, 4)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), base.eval()(x), atol=1e-5)
    assert conversion.plan.summary().startswith("base params: ")


class _FirstCallTable(nn.Module):
    """ConViT's GPSA in small: a placeholder buffer, replaced on the first call by a table made
    for the input's length, and a statistic kept in place from call to call."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("table", torch.zeros(1, 1), persistent=False)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        n = x.shape[1]
        if self.table.shape[0] != n:
            self.table = torch.arange(n * n, dtype=x.dtype).view(n, n) / (n * n)
        self.calls += 1
        return self.fc(self.table @ x)


def test_a_layer_whose_first_call_makes_its_table_converts_and_the_model_is_left_as_given():
    import random_models as rm
    from aimgen.loader import InputSpec

    model = nn.Sequential(nn.Linear(4, 4), _FirstCallTable()).eval()
    conv = aimgen.convert(model, [InputSpec((1, 6, 4))], source_name="first_call")
    assert model[1].table.shape == (1, 1) and model[1].calls.item() == 0   # as given, after every run
    assert len(conv.plan.taps) == 2
    rm.check_conversion(model, [InputSpec((1, 6, 4))], source_name="first_call")


class _CachedBias(nn.Module):
    """LeViT's attention in small: a table cached per device in a dict it holds."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.biases = nn.Parameter(torch.randn(4))
        self.cache = {}

    def bias(self, device):
        if str(device) not in self.cache:
            self.cache[str(device)] = self.biases * 1.0
        return self.cache[str(device)]

    def forward(self, x):
        if x.ndim != 3:   # (torch.fx cannot trace this: torch.export captures the model)
            x = x.unsqueeze(0)
        return self.fc(x) + self.bias(x.device)


class _HooksOnFirstCall(nn.Module):
    """transformers' output capturing in small: the first call registers a hook on each layer
    that collects its output, and marks the model so that later calls do not register again."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.head = nn.Linear(8, 2)
        self.hooked = False
        self.collected = []

    def forward(self, x):
        if not self.hooked:
            for layer in self.layers:
                layer.register_forward_hook(lambda m, i, out: self.collected.append(out))
            self.hooked = True
        self.collected.clear()
        for layer in self.layers:
            x = layer(x)
        return self.head(torch.cat(self.collected, -1))


@pytest.mark.parametrize("make, shape", [(_CachedBias, (1, 3, 4)), (_HooksOnFirstCall, (1, 4))])
def test_what_a_run_changes_in_place_is_put_back_whole(make, shape):
    """A dict a layer fills (LeViT's cache kept the exporter's fake tensors: the capture's check
    failed), hooks a first call registers (SegFormer: the mark was put back without the hooks,
    so the next call registered them twice and the model failed on its own input)."""
    import random_models as rm
    from aimgen.loader import InputSpec

    torch.manual_seed(0)
    model = make().eval()
    conv = aimgen.convert(model, [InputSpec(shape)], source_name=make.__name__)
    assert conv.plan.taps
    state = {k: v for k, v in vars(model).items() if k in ("cache", "hooked")}
    assert state in ({"cache": {}}, {"hooked": False})   # as given
    assert not any(m._forward_hooks for m in model.modules())
    rm.check_conversion(model, [InputSpec(shape)], source_name=make.__name__)


class _IntSizes(nn.Module):
    """Hugging Face's MobileViT unfolds its maps into patches of a size it computes with
    ``int(math.ceil(h / p) * p)``: torch.export takes that size as a number, so the captured
    forward runs at the example's size only, where the model itself runs at any even size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        x = self.conv(x)
        b, c, h, w = x.shape
        h = int(math.ceil(h / 2) * 2)
        x = x.reshape(b, c, h // 2, 2, w).mean(3)
        return self.fc(x.flatten(2).transpose(1, 2))


class _PaddedIntSizes(_IntSizes):
    """The same behind a pad by a size (Swin's to whole windows), which a run on symbolic sizes
    cannot take: shapes are then found by a second run at twice the size, which fails."""

    def forward(self, x, **kwargs):
        x = self.conv(x)
        x = F.pad(x, (0, (2 - x.shape[-1] % 2) % 2))
        b, c, h, w = x.shape
        h = int(math.ceil(h / 2) * 2)
        x = x.reshape(b, c, h // 2, 2, w).mean(3)
        return self.fc(x.flatten(2).transpose(1, 2))


class _OneSize(nn.Module):
    """A model for one input size (torchvision's ViT asserts its image size)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        torch._assert(x.shape[-1] == 8, "8 x 8 inputs only")
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("model", [_IntSizes(), _PaddedIntSizes()], ids=["symbolic-sizes", "second-run"])
def test_a_forward_traced_for_the_example_size_only_is_said_where_the_model_runs_at_others(model):
    """The generated model would fail at 16 x 16 with no word of why: the report and the header
    say which size it runs at, where the traced forward first reads a size as a number, and
    what to do. Not said where the base model runs at one size itself, nor for a CNN."""
    result = aimgen.convert(model, torch.randn(1, 3, 8, 8), source_name="intsizes")
    note = ("input size: runs at 8 x 8 only, as traced; the base model also runs at 16 x 16, where the traced "
            "forward fails at test_api.py:")
    assert f"note: {note}" in result.report
    assert ("(`x = x.reshape(b, c, h // 2, 2, w).mean(3)`): tracing took a size the input sets for a number. "
            "Convert at the size you will use.") in result.report
    header = " ".join(line[1:].strip() for line in result.source.splitlines() if line.startswith("#"))
    assert note in header
    said = result.report_dict()["input_size"]   # --report-json
    assert said["example_only"] is True and said["fails_larger_at"].startswith("test_api.py:")
    with pytest.raises(RuntimeError):
        result.build()(torch.randn(1, 3, 16, 16))
    for model, shape in ((_OneSize(), (1, 3, 8, 8)), (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), (1, 3, 8, 8))):
        other = aimgen.convert(model, torch.randn(shape), source_name="other")
        assert "input size:" not in other.report and "input size:" not in other.source
        assert "input_size" not in other.report_dict()
