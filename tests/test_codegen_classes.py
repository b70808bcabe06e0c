"""aimgen/codegen/classes.py: what differs between instances of a block becomes a parameter,
named after the user's constructor argument, a multiple of one, or the argument it fills."""
from __future__ import annotations

from aimgen.codegen.classes import BlockClass, Instance, member_lines, parameterise, structure
from aimgen.codegen.members import Member
from aimgen.modules import ValueWriter
from aimgen.taps import Arg, Constructor


def conv(cin, cout, stride=1):
    args = [Arg("in_channels", cin, True), Arg("out_channels", cout, True), Arg("kernel_size", 3, True)]
    if stride != 1:
        args.append(Arg("stride", stride, False))
    return Constructor("nn.Conv2d", args, defaults={"stride": 1} if stride == 1 else {},
                       order=("in_channels", "out_channels", "kernel_size", "stride"))


def block(cin, planes, stride, records=None):
    members = [Member("conv1", conv(cin, planes, stride)), Member("conv2", conv(planes, planes * 4)),
               Member("scale", Constructor("torch.ones", [Arg("size", (planes * 4, 1, 1), True)]))]
    return Instance(scope=None, members=members, records=records)


def test_differences_become_parameters_named_after_the_users_arguments():
    records = [{"inplanes": 64, "planes": 64, "stride": 1}, {"inplanes": 256, "planes": 128, "stride": 2}]
    cls = BlockClass(name="Bottleneck", base="nn.Module",
                     instances=[block(64, 64, 1, records[0]), block(256, 128, 2, records[1])])
    parameterise(cls, set())
    assert cls.params == ["inplanes", "planes", "stride"]
    assert cls.args == [[64, 64, 1], [256, 128, 2]]
    lines = member_lines(cls.instances[0].members, ValueWriter(), cls.slots)
    assert lines == ["self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride)",
                     "self.conv2 = nn.Conv2d(planes, planes * 4, 3)",
                     "self.scale = torch.ones((planes * 4, 1, 1))"]


def test_without_records_parameters_are_named_after_the_argument_they_fill():
    cls = BlockClass(name="B", base="nn.Module", instances=[block(8, 8, 1), block(16, 8, 1)])
    parameterise(cls, set())
    assert cls.params == ["in_channels"] and cls.args == [[8], [16]]


def test_constants_of_the_forward_that_differ_become_attributes():
    cls = BlockClass(name="B", base="nn.Module", instances=[block(8, 8, 1, {"p": 0.1}), block(8, 8, 1, {"p": 0.2})])
    parameterise(cls, set(), constants=[(0.1, 0.2), (3, 3)])
    assert cls.params == ["p"] and cls.attributes == ["p"] and cls.constants == ["self.p", "3"]


def test_a_differing_constant_is_named_after_the_argument_it_fills():
    """F.conv2d(x, w, b, (s, s), ...) with s = 1 or 2: ``self.stride``, not ``self.value``."""
    cls = BlockClass(name="B", base="nn.Module", instances=[block(8, 8, 1), block(8, 8, 1)])
    parameterise(cls, set(), constants=[(1, 2), (1, 2), (0.1, 0.2)], labels=["stride", "stride", ""])
    assert cls.params == ["stride", "value"] and cls.constants == ["self.stride", "self.stride", "self.value"]
    assert cls.args == [[1, 0.1], [2, 0.2]]


def test_a_constant_never_takes_the_name_of_a_layer_of_the_block():
    # MobileViT's attention has a layer named `value`; a differing constant of its forward was
    # named `value` too, and `self.value = value` replaced the layer with an int
    def attention(heads):
        return Instance(scope=None, members=[Member("value", conv(8, 8)), Member("scale", conv(8, 8))],
                        records={"heads": heads})
    cls = BlockClass(name="A", base="nn.Module", instances=[attention(2), attention(4)])
    parameterise(cls, set(), constants=[(2, 4), (0.5, 0.25)])
    assert "value" not in cls.params and "scale" not in cls.params
    assert cls.params == ["heads", "value_1"] and cls.attributes == ["heads", "value_1"]
    assert cls.constants == ["self.heads", "self.value_1"] and cls.args == [[2, 0.5], [4, 0.25]]


def test_a_recorded_argument_named_like_a_layer_gets_an_attribute_of_its_own():
    def attention(n):
        return Instance(scope=None, members=[Member("value", conv(8, 8))], records={"value": n})
    cls = BlockClass(name="A", base="nn.Module", instances=[attention(2), attention(4)])
    parameterise(cls, set(), constants=[(2, 4)])
    assert cls.params == ["value", "value_1"] and cls.attributes == ["value_1"]
    assert cls.constants == ["self.value_1"] and cls.args == [[2, 2], [4, 4]]


def test_structure_ignores_values_but_not_shape():
    assert structure(conv(1, 2), str) == structure(conv(3, 4), str)
    assert structure(conv(1, 2, 2), str) == structure(conv(1, 2), str)  # a default left out is still there
    assert structure(Constructor("nn.ReLU", []), str) != structure(conv(1, 2), str)


def test_a_zero_is_not_taken_for_false():
    """False == 0 in Python: a padding of 0 in one slot must not be written as another slot's
    bias=False (Inception's 1x7 / 7x1 convs: padding=(0, 3) and (3, 0), bias=False)."""
    def layer(kernel, padding):
        return Instance(scope=None, records=None, members=[Member("conv", Constructor("nn.Conv2d", [
            Arg("in_channels", 8, True), Arg("out_channels", 8, True), Arg("kernel_size", kernel, True),
            Arg("padding", padding, False), Arg("bias", False, False)],
            order=("in_channels", "out_channels", "kernel_size", "padding", "bias")))])

    cls = BlockClass(name="B", base="nn.Module", instances=[layer((1, 7), (0, 3)), layer((7, 1), (3, 0))])
    parameterise(cls, set())
    assert cls.args == [[1, 7, 0, 3], [7, 1, 3, 0]]
    assert all(type(v) is int for args in cls.args for v in args)


def test_a_zero_is_not_taken_for_a_float_zero():
    """0 == 0.0 in Python: EfficientViT's blocks hold Dropout(p=0.0) and a conv whose padding is
    0 in some instances and 1 in others; the padding parameter must be written as the int 0."""
    def layer(kernel, padding):
        return Instance(scope=None, records=None, members=[
            Member("dropout", Constructor("nn.Dropout", [Arg("p", 0.0, False)], order=("p",))),
            Member("conv", Constructor("nn.Conv2d", [
                Arg("in_channels", 8, True), Arg("out_channels", 8, True), Arg("kernel_size", kernel, True),
                Arg("padding", padding, False)], order=("in_channels", "out_channels", "kernel_size", "padding")))])

    cls = BlockClass(name="B", base="nn.Module", instances=[layer(1, 0), layer(3, 1)])
    parameterise(cls, set())
    assert cls.args == [[1, 0], [3, 1]]
    assert all(type(v) is int for args in cls.args for v in args)


def test_the_numbers_of_a_member_written_as_its_init_wrote_it_are_values_like_arguments():
    """Swin's ``nn.Parameter(trunc_normal_(torch.empty(169, num_heads)))``: instances that differ
    only by such a number share one class, the number a parameter (in parentheses where it is
    an expression); the numbers they share stay as written."""
    from aimgen.codegen.members import Raw

    def attention(heads, dim):
        table = Raw(f"nn.Parameter(trunc_normal_(torch.empty((2 * 7 - 1) ** 2, {heads}), std=0.02))")
        return Instance(scope=None, members=[Member("table", table), Member("proj", conv(dim, dim))],
                        records={"dim": dim, "num_heads": heads})

    a, b = attention(3, 96), attention(6, 192)
    assert structure(a.members[0].value, None) == structure(b.members[0].value, None)
    assert structure(a.members[0].value, None) != structure(Raw("nn.Parameter(torch.zeros(3))"), None)
    cls = BlockClass(name="WindowAttention", base="nn.Module", instances=[a, b])
    parameterise(cls, set())
    assert cls.params == ["dim", "num_heads"] and cls.args == [[96, 3], [192, 6]]
    assert member_lines(cls.instances[0].members, ValueWriter(), cls.slots)[0] == \
        "self.table = nn.Parameter(trunc_normal_(torch.empty((2 * 7 - 1) ** 2, num_heads), std=0.02))"
    doubled = BlockClass(name="B", base="nn.Module", instances=[
        Instance(None, [Member("proj", conv(8, 8)), Member("t", Raw("torch.zeros(8 * 2, 2 ** 32)"))], {"dim": 8}),
        Instance(None, [Member("proj", conv(16, 16)), Member("t", Raw("torch.zeros(16 * 2, 2 ** 64)"))], {"dim": 16})])
    parameterise(doubled, set())
    assert member_lines(doubled.instances[0].members, ValueWriter(), doubled.slots)[1] == \
        "self.t = torch.zeros(dim * 2, 2 ** (dim * 4))"
