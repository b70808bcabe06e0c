"""Leaf modules are written as constructor calls (the recorded call where aimgen saw it, else read
back from their attributes), each verified by rebuilding it: any module class, not a fixed list."""
from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

from aimgen.errors import RenderError
from aimgen.modules import ValueWriter, constructor
from aimgen.records import recording


def source(ctor) -> str:
    return ctor.source(lambda a: ValueWriter()(a.value))

LEAVES = [
    nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.Conv1d(4, 8, 5, dilation=2, padding_mode="reflect", padding=4),
    nn.ConvTranspose3d(2, 4, 3, stride=2, output_padding=1), nn.BatchNorm2d(64, momentum=0.01),
    nn.BatchNorm1d(7, affine=False), nn.LayerNorm((5, 6), elementwise_affine=False), nn.GroupNorm(4, 32),
    nn.InstanceNorm2d(3, affine=True), nn.ReLU(inplace=True), nn.GELU(approximate="tanh"), nn.SiLU(),
    nn.Hardswish(), nn.LeakyReLU(0.2), nn.PReLU(8), nn.Softmax(dim=1), nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    nn.AvgPool2d(2, count_include_pad=False), nn.AdaptiveAvgPool2d((1, 1)), nn.Dropout(0.3), nn.Dropout2d(0.1),
    nn.Linear(10, 3, bias=False), nn.Bilinear(3, 4, 5), nn.Embedding(100, 16, padding_idx=0),
    nn.EmbeddingBag(10, 3, mode="max"), nn.Flatten(1, -1), nn.Unflatten(1, (2, 3)), nn.Identity(),
    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.PixelShuffle(2),
    nn.MultiheadAttention(32, 4, batch_first=True), nn.LSTM(8, 16, num_layers=2, batch_first=True),
    nn.GRU(4, 4, bidirectional=True), nn.RNN(4, 4, nonlinearity="relu"),
    nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), nn.ZeroPad2d((1, 2, 3, 4)), nn.ChannelShuffle(2),
    nn.MaxPool3d((2, 2, 2), (2, 2, 2), (0, 0, 0)),   # a tuple kept as given (torchvision's S3D)
]


@pytest.mark.parametrize("module", LEAVES, ids=lambda m: type(m).__name__)
def test_constructor_rebuilds_the_module(module):
    ctor = constructor(module, "layer")
    rebuilt = eval(source(ctor), {"nn": nn, "torch": torch})
    assert repr(rebuilt) == repr(module)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in module.state_dict().items()}


def test_an_argument_can_be_widened_and_the_signature_defaults_are_known():
    ctor = constructor(nn.Conv2d(64, 128, 3, padding=1, groups=2), "layer1.conv")
    assert source(ctor.widened("in_channels", 2)) == "nn.Conv2d(64 + 2, 128, 3, padding=1, groups=2)"
    assert ctor.value("stride") == 1 and ctor.value("groups") == 2  # left out at its default, still known
    assert [a.name for a, given in ctor.full_args() if not given][:2] == ["stride", "dilation"]


class Attention(nn.Module):
    """Stores none of its constructor arguments under their own names (like timm's LeViT)."""

    def __init__(self, dim, heads=2, ratio=2):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * ratio * 3)
        self.h = heads


def test_a_module_whose_arguments_are_not_stored_is_written_from_its_recorded_call():
    with recording() as records:
        module = Attention(8, heads=4)
    with pytest.raises(RenderError, match="'dim' is not stored on the module"):
        constructor(module, "attn")
    ctor = constructor(module, "attn", recorded=records.of(module))
    assert source(ctor).endswith("Attention(8, heads=4)")


def test_a_submodule_passed_as_an_argument_and_a_containers_items_are_written_as_their_own_calls():
    """torchvision's BasicBlock takes its downsample path as an argument; a kept-whole
    nn.Sequential is its items (smp's encoder stages that a shallow decoder never calls)."""
    from torchvision.models.resnet import BasicBlock

    with recording() as records:
        stage = nn.Sequential(BasicBlock(8, 16, 2, downsample=nn.Sequential(
            nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))), BasicBlock(16, 16))
    by_name = {f"layer3.{q}": args for q, args in records.by_name(stage).items()}   # as in a model
    ctor = constructor(stage, "layer3", records=by_name)
    text = source(ctor)
    assert text == ("nn.Sequential(torchvision.models.resnet.BasicBlock(8, 16, stride=2, downsample="
                    "nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))), "
                    "torchvision.models.resnet.BasicBlock(16, 16))")
    assert ctor.imports == {"torchvision.models.resnet"}
    import torchvision
    rebuilt = eval(text, {"nn": nn, "torchvision": torchvision})
    assert repr(rebuilt) == repr(stage)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in stage.state_dict().items()}
    items = constructor(nn.ModuleList([nn.Linear(2, 3), nn.ReLU()]), "blocks")
    assert source(items) == "nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])"


def test_a_module_that_cannot_be_rebuilt_is_refused_by_name():
    class Local(nn.Module):  # defined in a function: not importable by name
        def forward(self, x):
            return x

    with pytest.raises(RenderError, match=r"layer blocks.0 \(Local\): its class is not importable"):
        constructor(Local(), "blocks.0")


def test_settings_changed_after_a_module_was_built_are_set_again_after_its_call():
    """ultralytics sets every BatchNorm's eps and momentum after building the model: rebuilding
    a layer from its recorded call gives the defaults, so the call comes with the settings that
    differ, which the generated model sets after it (a call that needs none is preferred)."""
    from torchvision.models.resnet import BasicBlock

    with recording() as records:
        block = BasicBlock(4, 4)
    block.bn2.eps = 1e-3
    ctor = constructor(block, "layer1.0", recorded=records.of(block))
    assert source(ctor) == "torchvision.models.resnet.BasicBlock(4, 4)" and ctor.settings == {"bn2": {"eps": 1e-3}}
    bn = nn.BatchNorm2d(4)
    bn.eps = 1e-3
    with recording() as records:
        fresh = nn.BatchNorm2d(4)
    ctor = constructor(bn, "bn", recorded=records.of(fresh))   # read back from its attributes
    assert source(ctor) == "nn.BatchNorm2d(4, eps=0.001)" and ctor.settings == {}


def test_a_module_changed_after_it_was_built_is_refused_with_the_first_line_that_differs():
    """A submodule replaced after building is not a setting: the message says where, from the
    recorded call."""
    from torchvision.models.resnet import BasicBlock

    with recording() as records:
        block = BasicBlock(4, 4)
    block.bn2 = nn.Identity()
    with pytest.raises(RenderError) as err:
        constructor(block, "layer1.0", recorded=records.of(block))
    assert "rebuilding it from the recorded constructor call does not give the same module (it has " \
        "'(bn2): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)' " \
        "where the model has '(bn2): Identity()')" in err.value.message


def test_non_float32_modules_keep_their_dtype():
    ctor = constructor(nn.Linear(3, 2).double(), "fc")
    assert source(ctor) == "nn.Linear(3, 2, dtype=torch.float64)"


def test_classes_and_partials_in_arguments_are_written_by_their_import_path():
    import functools
    writer = ValueWriter()
    assert writer(nn.BatchNorm2d) == "nn.BatchNorm2d"
    assert writer(functools.partial(nn.LayerNorm, eps=1e-6)) == "functools.partial(nn.LayerNorm, eps=1e-06)"
    assert writer.imports == {"functools"}


BlockArgs = collections.namedtuple("BlockArgs", ["kernel_size", "expand_ratio", "id_skip"])


def test_a_namedtuple_argument_keeps_its_class():
    """smp's EfficientNet blocks take a BlockArgs namedtuple and read its fields by name."""
    writer = ValueWriter()
    text = writer(BlockArgs(3, 6, id_skip=True))
    assert text.endswith("BlockArgs(kernel_size=3, expand_ratio=6, id_skip=True)")
    value = eval(text.rsplit(".", 1)[-1], {"BlockArgs": BlockArgs})
    assert type(value) is BlockArgs and value.expand_ratio == 6


def test_a_config_dataclass_argument_is_written_as_its_class_with_the_fields_that_differ():
    """timm's MobileViT blocks take a LayerFn dataclass of layer classes."""
    import functools

    from timm.models.byobnet import LayerFn

    writer = ValueWriter()
    value = LayerFn(conv_norm_act=functools.partial(nn.Conv2d, bias=False), act=nn.SiLU)
    text = writer(value)
    assert text == ("timm.models.byobnet.LayerFn(conv_norm_act=functools.partial(nn.Conv2d, bias=False), "
                    "act=nn.SiLU)")
    assert writer.imports == {"functools", "timm.models.byobnet"}
    import timm  # the name the text uses
    rebuilt = eval(text, {"functools": functools, "nn": nn, "timm": timm})
    assert rebuilt.act is nn.SiLU and rebuilt.conv_norm_act.keywords == {"bias": False} and rebuilt.attn is None


class _LateInit(nn.Module):
    """transformers' MambaMixer in small: built with ``initialize=False`` by its parent, whose
    own initialisation fills the weights afterwards (``torch.empty`` until then: NaN here, so
    that the test does not depend on what memory held)."""

    def __init__(self, width, initialize=True):
        super().__init__()
        self.A_log = nn.Parameter(torch.full((width,), float("nan")))
        if initialize:
            nn.init.zeros_(self.A_log)


def test_a_recorded_call_that_leaves_weights_uninitialised_is_made_with_its_defaults():
    """Rebuilt from its recorded call, the kept mixer had garbage weights, and the converted
    Mamba's first training step gave non-finite gradients (validation refused it)."""
    from aimgen.sourcecopy import SourceCopier

    layer = _LateInit(4, initialize=False)
    with torch.no_grad():
        layer.A_log.fill_(1.0)   # what the parent's initialisation did
    ctor = constructor(layer, "mixer", copier=SourceCopier(), why="kept", recorded={"width": 4, "initialize": False})
    assert ctor.source(lambda a: repr(a.value)) == "_LateInit(4)"
