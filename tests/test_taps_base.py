"""aimgen/taps/base.py: the registry, constructor values, and the extension story: a tap kind of
one's own (here a toy layer class with its own kind, defined in this file) converts end to end
with no file of aimgen touched."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import aimgen
from aimgen.errors import InternalError
from aimgen.taps import REGISTRY, Arg, Constructor, TapKind, TapSite, TapWidth
from aimgen.taps.base import batched_input
from tapcheck import forms_agree


def test_the_registry_lists_every_tappable_type_and_runtime_name():
    for name in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
                 "Linear", "F.conv2d", "F.linear"):
        assert name in REGISTRY.layer_types
    assert {"MemoryConv2d", "GroupedMemoryConv2d", "MemoryLinear", "read_conv_memory"} <= REGISTRY.runtime_names()
    assert REGISTRY.kind_of(nn.Linear(2, 2)).key == "linear" and REGISTRY.kind_of(nn.ReLU()) is None


def test_a_kind_registers_once():
    with pytest.raises(InternalError, match="registered twice"):
        REGISTRY.register(type(REGISTRY.get("linear")))


def test_constructor_arguments_are_values_written_at_the_end():
    ctor = Constructor("nn.Conv2d", [Arg("in_channels", 3, True), Arg("out_channels", 8, True)],
                       defaults={"stride": 1}, order=("in_channels", "out_channels", "stride"))
    wide = ctor.widened("in_channels", 1).with_arg("memory_channels", 1)
    assert wide.source(lambda a: repr(a.value)) == "nn.Conv2d(3 + 1, 8, memory_channels=1)"
    assert ctor.value("stride") == 1
    with pytest.raises(InternalError, match="no constructor argument 'groups'"):
        ctor.widened("groups", 1)


# --- a tap kind of one's own ----------------------------------------------------------------

class Pointwise(nn.Module):
    """A weight layer aimgen does not know: a 1x1 channel mix written with einsum."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels) * 0.1)

    def forward(self, x):
        return torch.einsum("oc,nc...->no...", self.weight, x)


class MemoryPointwise(Pointwise):
    """Pointwise that also reads the memory: its sum form."""

    def __init__(self, *args, memory_channels: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.memory_weight = nn.Parameter(torch.randn(self.out_channels, memory_channels) * 0.1)

    def forward(self, x, m):
        return super().forward(x) + torch.einsum("oc,nc...->no...", self.memory_weight, m)


class PointwiseKind(TapKind):
    key = "toy_pointwise"
    module_types = (Pointwise,)
    runtime_objects = (MemoryPointwise,)
    in_arg = "in_channels"

    def inspect(self, node, root):
        layer = root.get_submodule(node.target)
        shape = batched_input(node)
        return TapSite(node=node.name, qualname=node.target, layer_type="Pointwise", kind=self.key, axis=1,
                       in_size=layer.in_channels, out_size=layer.out_channels, groups=1, kernel=(),
                       spatial=tuple(shape[2:]), weight=f"{node.target}.weight")

    def runtime(self, site, form, width):
        return super().runtime(site, form, width) if form == "literal" else (MemoryPointwise,)

    def layer_sum(self, site, ctor, width: TapWidth):
        return ctor.renamed("MemoryPointwise").with_arg("memory_channels", width.k)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = Pointwise(4, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.mix(torch.relu(self.stem(x))).mean((2, 3)))


@pytest.fixture
def pointwise_kind():
    REGISTRY.register(PointwiseKind)
    yield
    REGISTRY.unregister("toy_pointwise")


def test_a_tap_kind_of_ones_own_works_end_to_end(pointwise_kind, tmp_path):
    x = torch.randn(2, 3, 8, 8)
    model = Net()
    conv = aimgen.convert(model, x[:1])
    assert [t.kind for t in conv.plan.taps] == ["conv", "toy_pointwise", "linear"]
    assert "class MemoryPointwise(Pointwise):" in conv.source  # its runtime class, copied in
    assert conv.source.count("class Pointwise(nn.Module):") == 1
    assert "self.mix = MemoryPointwise(4, 6, memory_channels=1)" in conv.source
    written = conv.write(tmp_path / "net_aim.py", onnx=False)  # validated in a fresh process
    assert written.checks and all(c.ok for c in written.checks)
    forms_agree(model, x)  # both forms, base weights kept, convert_form between them


def test_no_module_outside_the_tap_kinds_names_a_weight_layer_type():
    """Layer-kind knowledge lives in aimgen/taps/ only: no other module names nn.Conv*, nn.Linear
    or ConvTranspose in code (the registry lists the types; prose may mention them)."""
    import ast
    import re
    from pathlib import Path

    package = Path(aimgen.__file__).resolve().parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.parent.name == "taps":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Attribute, ast.Name)):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                if re.fullmatch(r"Conv\d?d|ConvTranspose\d?d|Linear|LazyConv\w*|LazyLinear", name):
                    offenders.append(f"{path.relative_to(package)}:{node.lineno} {name}")
    assert offenders == []


def test_per_dimension_makes_one_class_per_base_that_writes_itself_as_two_lines():
    import pickle
    import re

    from aimgen.sourcecopy import SourceCopier
    from aimgen.taps.base import per_dimension
    from aimgen.taps.conv import MemoryConv2d, _MemoryConv

    assert issubclass(MemoryConv2d, nn.Conv2d) and MemoryConv2d.__mro__[1] is _MemoryConv
    assert MemoryConv2d.__module__ == "aimgen.taps.conv" and MemoryConv2d.__qualname__ == "MemoryConv2d"
    layer = pickle.loads(pickle.dumps(MemoryConv2d(3, 4, 3, memory_channels=2)))
    assert type(layer) is MemoryConv2d and layer.memory_weight.shape == (4, 2, 3, 3)
    assert MemoryConv2d.__aimgen_source__ == ('class MemoryConv2d(_MemoryConv, nn.Conv2d):\n'
                                              '    """nn.Conv2d that also reads ``memory_channels`` fitted memory '
                                              'channels."""')
    copier = SourceCopier()
    assert copier.add(MemoryConv2d, "test") == "MemoryConv2d"
    names = [re.search(r"^(?:class|def) (\w+)", code, re.M).group(1) for _, code in copier.copied.definitions]
    assert names[-2:] == ["_MemoryConv", "MemoryConv2d"]  # the mixin first, then the two lines
    with pytest.raises(InternalError, match="not a torch.nn class"):
        per_dimension(_MemoryConv, "X", (Pointwise,), "{base}")
