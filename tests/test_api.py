"""aimgen/api.py: ``aimgen.convert`` as a Python caller uses it: options as keywords or as one
``Options`` value, messages in the API's own words, and a conversion that builds and runs."""
from __future__ import annotations

import pytest
import torch
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
