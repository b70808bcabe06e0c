"""aimgen/codegen: the output is structured as a person writes a model. One class per distinct
block, shared by its instances; containers kept; memory threaded through block calls; each
fitted memory computed once; the flat rendering computes the same."""
from __future__ import annotations

import re

import pytest
import torch
import torchvision

import aimgen
from aimgen.api import load_source
from aimgen.loader import InputSpec, load_model
from aimgen.records import recording
from conftest import EXAMPLES


def assert_same_function(conv, model, x: torch.Tensor) -> None:
    """The converted model, with the base weights, computes what the base model computes (the
    memory's reads start at zero) on an input of another size than the example's."""
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-6


@pytest.fixture(scope="module")
def resnet50():
    loaded = load_model(f"{EXAMPLES / 'torchvision_models.py'}:resnet50")
    conv = aimgen.convert(loaded.model, [InputSpec((1, 3, 224, 224))], constructor_args=loaded.constructor_args)
    return loaded, conv


def test_resnet50_has_one_bottleneck_class_used_by_all_16_blocks(resnet50):
    loaded, conv = resnet50
    src = conv.source
    assert conv.code.block_classes == {"Bottleneck": 16}
    assert "class Bottleneck(nn.Module):" in src
    assert "def __init__(self, inplanes, planes, stride, downsample=None):" in src  # the user's own names
    assert "        if self.downsample is not None:" in src and "identity = x" in src
    assert "        out += identity\n        out = self.relu(out)\n" in src   # in place, as torchvision writes it
    assert "self.conv3 = MemoryConv2d(planes, planes * 4, 1, bias=False, memory_channels=1)" in src
    assert "*(Bottleneck(1024, 256, 1) for _ in range(5))," in src  # layer3's five plain blocks
    assert max(len(line) for line in src.splitlines()) < 100
    # about 190 lines of runtime (memory, fit, update block, pooling, layer classes) + the model;
    # the 250-line goal is not met, this keeps it from growing (300 before add_product
    # and the memory_read choice, which made the memory reads 2-3x faster to train; 325 before
    # pool_to_grid, which made a resnet50 training step 7-9% faster)
    assert len(src.splitlines()) <= 344


def test_blocks_and_containers_run_on_their_own(resnet50):
    _, conv = resnet50
    model = conv.build().eval()
    assert type(model.layer1).__name__ == "MemorySequential" and type(model.layer1[0]).__name__ == "Bottleneck"
    module = load_source(conv.source, "resnet50_aim")
    memory = module.MemoryState(model.memory.read())
    x = torch.randn(2, 256, 56, 56)
    with torch.no_grad():
        y, memory2 = model.layer1[1](x, memory)
        z, _ = model.layer1(torch.randn(2, 64, 56, 56), memory)
    assert y.shape == x.shape and z.shape == x.shape and memory2 is memory  # reads, does not rewrite


def test_the_base_state_dict_loads_as_it_is(resnet50):
    loaded, conv = resnet50
    model = conv.build()
    missing, unexpected = model.load_state_dict(loaded.model.state_dict(), strict=False)
    assert not unexpected and all("memory" in k or k.startswith("update_") for k in missing)


def _count_fits(module):
    calls = []
    original = module.fit_memory

    def counting(memory, channels, size):
        calls.append((channels, tuple(size)))
        return original(memory, channels, size)

    module.fit_memory = counting
    return calls


@pytest.mark.parametrize("size", [224, 160])
def test_each_fitted_memory_is_computed_once_and_read_at_its_own_size(resnet50, size):
    """resnet50 reads the memory at 54 layers and needs 9 distinct fits (a memory version, a
    width and a size each); at another input size fits are still only shared where sizes match."""
    _, conv = resnet50
    module = load_source(conv.source, "resnet50_fits")
    model = module.build_model().eval()
    calls = _count_fits(module)
    mismatched = []

    def check(layer, args):
        x, m = args
        if m.shape[2:] != x.shape[2:]:
            mismatched.append(type(layer).__name__)

    hooks = [m.register_forward_pre_hook(check) for m in model.modules() if type(m).__name__ == "MemoryConv2d"]
    with torch.no_grad():
        model(torch.randn(2, 3, size, size))
    for h in hooks:
        h.remove()
    assert not mismatched
    assert len(calls) == 9  # stem; layer1; layer2 at 2 sizes; layer3 at 2; layer4 at 2; the classifier


def test_vgg16_fits_the_memory_once_per_version_and_size():
    model = torchvision.models.vgg16(num_classes=10)
    conv = aimgen.convert(model, torch.randn(1, 3, 64, 64))
    module = load_source(conv.source, "vgg_fits")
    calls = _count_fits(module)
    with torch.no_grad():
        module.build_model().eval()(torch.randn(1, 3, 64, 64))
    # one fit per stage of 3x3 convs (an update block ends each) and one for the classifier's
    # three Linear layers (16 layers read the memory)
    assert len(conv.plan.taps) == 16 and len(calls) == 6


def test_resnet152_output_does_not_grow_with_depth(resnet50):
    with recording() as records:
        model = torchvision.models.resnet152(num_classes=10)
    conv = aimgen.convert(model, torch.randn(1, 3, 64, 64), constructor_args=records.by_name(model))
    assert conv.code.block_classes == {"Bottleneck": 50}
    assert len(conv.source.splitlines()) <= len(resnet50[1].source.splitlines()) + 10


def test_plain_and_flat_renderings():
    model = torchvision.models.resnet18(num_classes=10)
    plain = aimgen.convert(model, torch.randn(1, 3, 64, 64), plain=True)
    assert "class BasicBlock(nn.Module):" in plain.source and "memory" not in plain.source.split("class BasicBlock")[1]
    flat = aimgen.convert(model, torch.randn(1, 3, 64, 64), flat=True)
    assert "class BasicBlock" not in flat.source and "def forward_with_memory(self, x, memory):" in flat.source
    blocks = aimgen.convert(model, torch.randn(1, 3, 64, 64)).build().eval()
    one = flat.build().eval()
    one.load_state_dict(blocks.state_dict())  # the same keys: update blocks belong to the same modules
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (one(x) - blocks(x)).abs().max() <= 1e-6


def test_locals_are_named_as_in_the_base_forward_and_dead_values_are_released():
    model = torchvision.models.resnet18(num_classes=10)
    src = aimgen.convert(model, torch.randn(1, 3, 64, 64)).source
    block = src.split("class BasicBlock")[1].split("\nclass ")[0]
    assert "out = self.bn1(out)" in block and "identity = x" in block and not re.search(r"\badd\b", block)
    root = src.split("def forward_with_memory")[1]
    assert "x, memory = self.layer1(x, memory)" in root and "x = torch.flatten(x, 1)" in root


class InPlace(torch.nn.Module):
    """Sums a forward writes in place: after a norm layer (kept in place), after an activation
    whose backward needs its output, and on a value something else still reads (both written
    out of place: in place, they would change what autograd or the other reader sees)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.act = torch.nn.Sigmoid()
        self.bn2 = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        identity = self.conv(x)
        out = self.bn(identity)
        out += identity
        gate = self.act(out)
        gate *= 2.0
        kept = self.bn2(gate)
        twice = kept * 2
        kept -= out
        return kept + twice


def test_a_sum_the_base_forward_writes_in_place_is_written_in_place_where_that_is_safe():
    torch.manual_seed(0)
    model = InPlace()
    conv = aimgen.convert(model, torch.randn(1, 3, 8, 8), base_weights=model.state_dict())
    src = conv.source
    assert "        out += identity\n" in src                      # after a BatchNorm: in place
    assert re.search(r"\n        gate = \w+ \* 2\.0\n", src)       # sigmoid saves its output
    assert re.search(r"\n        kept = \w+ - \w+\n", src)          # `kept` is read again after
    assert conv.base_match().ok
    aim = conv.build()
    loss = aim.train()(torch.randn(2, 3, 8, 8)).square().mean()
    loss.backward()   # autograd accepts the in-place sum
    assert aim.bn.weight.grad is not None


class ReturnsCall(torch.nn.Module):
    def __init__(self, nested=False):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.nested = nested

    def forward(self, x):
        out = self.conv(x)
        out = out + torch.nn.functional.interpolate(out, scale_factor=1.0)
        if self.nested:
            return torch.nn.functional.relu(out + 1)
        return torch.nn.functional.relu(out)


def test_a_returned_call_is_written_in_the_return_line_and_functional_defaults_are_left_out():
    """``return F.relu(out)`` is written in the return line, as the user's forward writes it,
    with what its line computes (``F.relu(out + 1)``). torch.fx records ``F.relu(out)`` as
    ``F.relu(out, inplace=False)``: arguments at their defaults are left out (interpolate's
    mode='nearest'), others kept."""
    src = aimgen.convert(ReturnsCall(), torch.randn(1, 3, 8, 8)).source
    forward = src.split("def forward_with_memory")[1]
    assert "        out = out + F.interpolate(out, scale_factor=1.0)\n" in forward   # one line, as the user's
    assert "        return F.relu(out), memory.final()\n" in forward
    assert "inplace" not in src and "mode=" not in src
    nested = aimgen.convert(ReturnsCall(nested=True), torch.randn(1, 3, 8, 8)).source
    assert "        return F.relu(out + 1), memory.final()\n" in nested


class TiedHead(torch.nn.Module):
    """RoBERTa's LM head: ``bias`` is the decoder's bias under a second name, and the forward
    reads only the decoder."""

    def __init__(self):
        super().__init__()
        self.dense = torch.nn.Linear(8, 8)
        self.decoder = torch.nn.Linear(8, 5)
        self.bias = torch.nn.Parameter(torch.zeros(5))
        self.decoder.bias = self.bias

    def forward(self, x):
        return self.decoder(self.dense(x).relu())


def test_a_parameter_tied_under_a_name_the_forward_never_reads_keeps_its_key_and_its_tie():
    model = TiedHead().eval()
    conv = aimgen.convert(model, [(1, 8)], base_weights=model.state_dict())
    assert "self.decoder.bias = self.bias  # tied, as in the base model" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    assert aim.bias is aim.decoder.bias
    assert set(model.state_dict()) <= set(aim.state_dict())
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-6


class UnreadState(torch.nn.Module):
    """DINOv2's ``mask_token`` (a parameter only another input mode reads) and T5's ``shared``
    (an embedding tied to ``encoder.embed_tokens``, never called under its own name)."""

    def __init__(self):
        super().__init__()
        self.shared = torch.nn.Embedding(10, 8)
        self.encoder = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8))
        self.encoder[0].weight = self.shared.weight
        self.mask_token = torch.nn.Parameter(torch.randn(1, 8))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, ids):
        return self.head(self.encoder(ids).mean(1))


def test_state_the_forward_never_reads_keeps_its_keys_its_values_and_its_ties():
    model = UnreadState().eval()
    conv = aimgen.convert(model, [InputSpec((1, 5), torch.int64)], base_weights=model.state_dict())
    assert "self.shared = self.encoder[0]  # the same module, as in the base model" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    assert set(model.state_dict()) <= set(aim.state_dict())
    assert torch.equal(aim.mask_token, model.mask_token) and aim.shared.weight is aim.encoder[0].weight
    ids = torch.randint(0, 10, (4, 5))
    with torch.no_grad():
        assert (aim.eval()(ids) - model(ids)).abs().max() <= 1e-6


class Window(torch.nn.Module):
    """Pads a sequence to whole windows and adds ``L % (window // 2)``: both the window and its
    half differ between instances."""

    def __init__(self, window: int):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)
        self.window = window

    def forward(self, x):
        pad = (self.window - x.shape[1] % self.window) % self.window
        out = self.proj(torch.nn.functional.pad(x, (0, 0, 0, pad)))[:, :x.shape[1]]
        return out + x.shape[1] % (self.window // 2)


class Windows(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(Window(4), Window(8))

    def forward(self, x):
        return self.blocks(x)


def test_a_block_constant_written_as_an_expression_keeps_its_precedence():
    """Window(4) and Window(8) share a class; their constants 2 and 4 become ``self.window // 2``,
    which must be written ``x % (self.window // 2)``: without the parentheses it is
    ``(x % self.window) // 2`` (timm's sam2_hiera: a reshape to a wrong size)."""
    with recording() as records:
        model = Windows()
    conversion = aimgen.convert(model, torch.randn(1, 6, 8), constructor_args=records.by_name(model),
                                base_weights=model.state_dict())
    src = conversion.source
    assert src.count("class Window(") == 1
    assert re.search(r"% \(self\.\w+ // 2\)", src), src
    aim = conversion.build()
    aim.load_state_dict(conversion.state_dict)
    for length in (6, 7, 9):   # 9 % 4 // 2 == 0 but 9 % (8 // 2) == 1
        x = torch.randn(2, length, 8)
        with torch.no_grad():
            assert torch.equal(aim.eval()(x), model.eval()(x)), length


class PaddedConv(torch.nn.Conv2d):
    """efficientnet_pytorch's Conv2dStaticSamePadding (smp's EfficientNet encoders): a Conv2d
    subclass whose forward pads, then calls F.conv2d with its own weight."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.static_padding = torch.nn.ZeroPad2d(kernel_size // 2)

    def forward(self, x):
        x = self.static_padding(x)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                          self.groups)


class PaddedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = PaddedConv(3, 8, 3, stride=2)
        self.conv1 = PaddedConv(8, 16, 3)
        self.conv2 = PaddedConv(16, 16, 3, stride=2)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(torch.relu(self.stem(x))))))
        return self.head(x.mean((2, 3)))


def test_layers_that_differ_in_their_weights_shapes_and_a_forward_constant_share_a_class():
    """smp's EfficientNet-B0 encoder was 49 classes, one per conv: a weight drawn by the default
    rule was written as code, not as a call whose shape the class could take as a parameter."""
    with recording() as records:
        model = PaddedNet().eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 16, 16))], base_weights=model.state_dict(),
                          constructor_args=records.by_name(model))
    src = conv.source
    # one class; the update blocks end the stages (relu_1, relu_2), not the padded maps inside
    # the convs (a map padded for a conv is no stage size)
    assert conv.code.block_classes == {"PaddedConv": 3}
    assert "    def __init__(self, in_channels, out_channels, stride, fan_in):" in src
    assert [u.label for u in conv.plan.updates] == ["relu_1", "relu_2"]
    assert "self.weight = weight_parameter((out_channels, in_channels, 3, 3))" in src
    assert "(self.stride, self.stride), (0, 0), (1, 1), 1)" in src          # named after F.conv2d's argument
    assert_same_function(conv, model, torch.randn(2, 3, 20, 20))


class Residual(torch.nn.Module):
    def __init__(self, channels: int, shortcut: bool = True):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.shortcut = shortcut

    def forward(self, x):
        out = torch.relu(self.conv(x))
        if self.shortcut:
            out = x + out
        return out


class ResidualByName(Residual):
    """The same branch on a string, not a flag: two classes."""

    def __init__(self, channels: int, shortcut: bool = True):
        super().__init__(channels)
        self.mode = "sum" if shortcut else "plain"

    def forward(self, x):
        out = torch.relu(self.conv(x))
        if self.mode == "sum":
            out = x + out
        return out


class Chain(torch.nn.Module):
    """A stem, six blocks in one nn.Sequential with a plain layer at each end, and a head."""

    def __init__(self, block=Residual):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1),
                                            *(block(8, shortcut=i != 2) for i in range(6)), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = self.features(x)
        return self.head(y.mean((2, 3)))


class Stages(torch.nn.Module):
    """Blocks in an nn.ModuleList the forward loops over; ``collect``: each block's output is
    also read after the loop (a U-Net encoder's skips), so the blocks cannot be a loop."""

    def __init__(self, collect: bool = False):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = torch.nn.ModuleList(Residual(8) for _ in range(4))
        self.collect = collect
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for blk in self.blocks:
            x = blk(x)
            skips.append(x)
        if self.collect:
            x = sum(skips)
        return self.head(x.mean((2, 3)))


def test_a_chain_of_memory_blocks_in_a_container_is_called_in_a_loop():
    model = Chain().eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 16, 16))], base_weights=model.state_dict())
    src = conv.source
    # the container holds plain layers too (it is not a MemorySequential): its blocks are looped over
    assert "        for block in self.features[1:7]:\n            y, memory = block(y, memory)\n" in src
    assert "self.features[1](" not in src and "self.features[6](" not in src
    # the blocks that add their input and the one that does not: one class, branching on the
    # user's flag as their forward does
    assert conv.code.block_classes == {"Residual": 6}
    assert "    def __init__(self, shortcut):" in src and "        self.shortcut = shortcut\n" in src
    assert "        out = torch.relu(out)\n        if self.shortcut:\n            out = x + out\n" \
           "        return out, memory\n" in src
    assert "Residual(shortcut=False)," in src and "*(Residual(shortcut=True) for _ in range(3))," in src
    assert_same_function(conv, model, torch.randn(2, 3, 20, 20))


def test_variants_of_a_block_say_how_they_differ():
    model = Chain(ResidualByName).eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 16, 16))], base_weights=model.state_dict())
    assert conv.code.block_classes == {"ResidualByName": 5, "ResidualByName2": 1}   # no flag to branch on
    assert "(1 instance: features.3), a variant of ResidualByName: its forward leaves out ``out = x + out``." \
        in " ".join(conv.source.split())


def test_no_loop_where_a_value_inside_the_chain_is_read_after_it():
    for collect, loop in ((False, "        for block in self.blocks:\n            x, memory = block(x, memory)\n"),
                          (True, None)):
        model = Stages(collect).eval()
        conv = aimgen.convert(model, [InputSpec((1, 3, 16, 16))], base_weights=model.state_dict())
        if loop:
            assert loop in conv.source
        else:
            assert "for block in" not in conv.source and "self.blocks[3](" in conv.source
        assert_same_function(conv, model, torch.randn(2, 3, 20, 20))


#: update blocks after the expansion of mobilenet_v3_small's and mobilenet_v2's stride-2 blocks (where
#: they went by default until the stages ended at the block before, 2026-12-06): inside blocks, so
#: that blocks of one structure differ by an update block
V3_EXPANSIONS = "features.0.2,features.2.block.0.2,features.4.block.0.2,features.9.block.0.2,features.12.2"
V2_EXPANSIONS = "features.2.conv.0.2,features.4.conv.0.2,features.7.conv.0.2,features.14.conv.0.2,features.18.2"


def test_two_blocks_that_differ_both_by_an_update_block_and_a_residual_share_a_class():
    """mobilenet_v3_small's features.2 rewrites the memory and has no residual sum, features.3
    the other way round: one class with both branches (merged last, when no other merge is left:
    merged first, it kept mobilenet_v2's 16 blocks in two classes); the blocks with
    squeeze-excitation, whatever they hold of either, one class too."""
    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 64, 64))], base_weights=model.state_dict(),
                          options=aimgen.Options(updates=V3_EXPANSIONS))
    assert conv.code.block_classes["InvertedResidual2"] == 2 and conv.code.block_classes["InvertedResidual3"] == 8
    block = conv.source.split("class InvertedResidual2(nn.Module):")[1].split("\nclass ")[0]
    assert "        if self.update_block_0 is not None:\n" in block and "        if self.use_res_connect:\n" in block
    assert_same_function(conv, model, torch.randn(2, 3, 48, 48))


def test_mobilenet_v2_blocks_that_differ_by_an_update_block_and_a_residual_share_a_class():
    """torchvision's InvertedResidual: with and without the residual sum (its flag
    use_res_connect), and with an update block after the expansion or without: one class with
    the update block as an optional member (as ``downsample`` in resnet's Bottleneck) and a
    branch on the user's flag, as torchvision writes it."""
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 64, 64))], base_weights=model.state_dict(),
                          options=aimgen.Options(updates=V2_EXPANSIONS))
    src = conv.source
    # features.1 (no expansion layer) is another structure
    assert conv.code.block_classes == {"InvertedResidual": 1, "InvertedResidual2": 16}
    assert "    def __init__(self, in_channels, stride, out_channels, use_res_connect, update_conv_0=None):" in src
    assert "        if self.update_conv_0 is not None:\n" \
           "            memory = self.update_conv_0(memory, pool_to_grid(relu6, " in src
    assert "        if self.use_res_connect:\n            batchnorm2d = x + batchnorm2d\n" \
           "        return batchnorm2d, memory\n" in src
    assert "InvertedResidual2(16, 2, 24, use_res_connect=False,\n" in src
    assert "InvertedResidual2(24, 1, 24, use_res_connect=True)," in src
    assert "        for block in self.features[1:18]:\n" in src
    flat = aimgen.convert(model, [InputSpec((1, 3, 64, 64))], options=aimgen.Options(flat=True, updates=V2_EXPANSIONS))
    a, b = conv.build(), flat.build()
    a.load_state_dict(conv.state_dict)
    b.load_state_dict(conv.state_dict)   # the same keys: the flat model takes the same weights
    assert set(model.state_dict()) < set(a.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (a.eval()(x) - b.eval()(x)).abs().max() <= 1e-6


def tokens(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c, h * w).transpose(1, 2)


class Tokens(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.proj = torch.nn.Linear(8, 4)

    def forward(self, x):
        h = x.shape[2]
        out = tokens(self.conv(x))
        return self.proj(out)[:, :h]


def test_values_a_helper_function_names_keep_its_names():
    """torch.fx inlines a helper function: its unpacked sizes keep the names its line gives
    them (a name the forward already uses, with a suffix), not torch.fx's ``getitem``."""
    model = Tokens().eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 8, 8))], base_weights=model.state_dict())
    forward = conv.source[conv.source.index("def forward_with_memory"):]
    assert "        b, c, h_1, w = out.shape\n" in forward
    assert "getitem" not in forward
    assert_same_function(conv, model, torch.randn(2, 3, 6, 6))


class Dense(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)

    def forward(self, inputs):   # torchvision's DenseLayer: every earlier output, as one list
        return torch.relu(self.conv(torch.cat(inputs, 1)))


class DenseStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.layers = torch.nn.ModuleList(Dense(4 * (i + 1)) for i in range(4))
        self.head = torch.nn.Linear(20, 4)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(features))
        return self.head(torch.cat(features, 1).mean((2, 3)))


def test_a_block_called_with_a_list_takes_the_list():
    """Each Dense layer reads one more input than the one before; handed over as the user's
    code hands them (one list), they are one class, not one class per length, called in a loop
    that grows the list as torchvision's DenseBlock does."""
    model = DenseStack().eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 8, 8))], base_weights=model.state_dict())
    src = conv.source
    assert conv.code.block_classes == {"Dense": 4}
    assert "    def forward(self, inputs, memory):\n        cat = torch.cat(inputs, 1)\n" in src
    # each handed every earlier value, then one operation on them all: the user's own loop
    assert "        features = [stem]\n        for layer in self.layers:\n" \
           "            new_features, memory = layer(features, memory)\n            features.append(new_features)\n" \
           "        cat = torch.cat(features, 1)\n" in src
    assert_same_function(conv, model, torch.randn(2, 3, 6, 6))


class Masked(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, hidden, mask=None, cache=None):
        return torch.relu(self.lin(hidden)) * mask


class Encoder(torch.nn.Module):
    """Hugging Face's encoders: the first layer is called with the embeddings, the others with
    the hidden states, and every one with the same attention mask."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(4, 8)
        self.layers = torch.nn.ModuleList(Masked() for _ in range(4))

    def forward(self, x):
        mask = (x[..., :1] > 0).float()
        emb = self.embed(x)
        h = self.layers[0](emb, mask)
        for layer in self.layers[1:]:
            h = layer(h, mask)
        return h.mean(1)


def test_instances_share_a_class_whatever_their_callers_name_their_inputs():
    model = Encoder().eval()
    conv = aimgen.convert(model, [InputSpec((1, 6, 4))], base_weights=model.state_dict())
    src = conv.source
    assert conv.code.block_classes == {"Masked": 4}
    # a loop also where each block takes the same mask besides the value handed on
    # (the update block after the third ends the loop)
    assert "        for block in self.layers[:3]:\n            emb, memory = block(emb, mask, memory)\n" in src
    assert_same_function(conv, model, torch.randn(3, 5, 4))


class Wrapped(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Masked()

    def forward(self, x):
        mask = torch.ones_like(x[..., :1])
        encoded = self.encoder(
            x,
            mask=mask,
        )
        return encoded.sum(-1)


def test_a_statement_over_several_lines_names_its_value_and_its_callees_parameters():
    """``encoded = self.encoder(\\n x,\\n mask=mask,\\n)``: the value is ``encoded`` and the
    block's parameters take the names its forward declares for what the call hands them."""
    model = Wrapped().eval()
    conv = aimgen.convert(model, [InputSpec((1, 5, 8))], base_weights=model.state_dict())
    src = conv.source
    assert "    def forward(self, hidden, mask, memory):\n" in src
    assert "        encoded, memory = self.encoder(x, mask, memory)\n" in src


class FromShape(torch.nn.Module):
    """timm's EdgeNeXt: a positional encoding made from a (B, H, W) tuple of sizes."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Conv2d(1, 4, 1)

    def forward(self, shape):
        return self.proj(torch.zeros(shape).cumsum(1).unsqueeze(1))


class WithPositions(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pos = FromShape()

    def forward(self, x):
        x = self.conv(x)
        b, _, h, w = x.shape
        return (x + self.pos((b, h, w))).mean((2, 3))


def test_a_block_called_with_a_tuple_of_sizes_takes_the_tuple():
    model = WithPositions().eval()
    conv = aimgen.convert(model, [InputSpec((1, 3, 6, 6))], base_weights=model.state_dict())
    assert "    def forward(self, shape, memory):\n        unsqueeze = torch.zeros(shape).cumsum(1).unsqueeze(1)\n" \
        in conv.source
    assert "self.pos((b, h, w), memory)" in conv.source
    assert_same_function(conv, model, torch.randn(2, 3, 5, 7))


class PreNorm(torch.nn.Module):
    """timm's Block: each sub-block's value is used inside one long line."""

    def __init__(self):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(8)
        self.attn = Masked()
        self.ls1 = torch.nn.Identity()

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x), mask=torch.ones_like(x[..., :1])))
        return x.mean(1)


def test_a_blocks_value_inside_a_longer_line_is_named_after_the_block():
    model = PreNorm().eval()
    conv = aimgen.convert(model, [InputSpec((1, 5, 8))], base_weights=model.state_dict())
    forward = conv.source[conv.source.index("def forward_with_memory"):]
    assert "        attn, memory = self.attn(norm1, ones_like, memory)\n        x = x + self.ls1(attn)\n" in forward, forward
