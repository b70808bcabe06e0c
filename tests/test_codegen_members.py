"""aimgen/codegen/members.py: the used module tree, tensors as their initialisation (never as a
copy of a random draw), and members written one per line."""
from __future__ import annotations

import pytest

import torch
from torch import nn

from aimgen.codegen.members import Raw, Tree, init_expression, lines, tensor_member
from aimgen.modules import ValueWriter
from aimgen.taps import Arg, Constructor


def _drawn(dim):
    return torch.randn(dim, dim).sigmoid()


class Holder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 4, dim) * 0.02)
        self.scale = nn.Parameter(torch.full((dim,), 1e-6))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.weird = nn.Parameter(_drawn(dim))
        self.register_buffer("ids", torch.arange(6))


def written(value) -> str:
    return "\n".join(lines(value, lambda path, arg, v: ValueWriter()(v)))


def test_tensors_are_written_as_their_initialisation_not_their_values():
    h = Holder(8)
    rec = {"dim": 8}
    assert written(tensor_member(h.pos, "param", h, "pos", rec)[0]) == "nn.Parameter(torch.randn(1, 4, 8) * 0.02)"
    assert written(tensor_member(h.scale, "param", h, "scale", rec)[0]) == "nn.Parameter(torch.full((8,), 1e-06))"
    assert written(tensor_member(h.cls, "param", h, "cls", rec)[0]) == "nn.Parameter(torch.zeros((1, 1, 8)))"
    weird, note = tensor_member(h.weird, "param", h, "weird", rec)  # cannot be read: the documented rule
    assert written(weird) == "weight_parameter((8, 8))" and "could not be read" in note  # drawn as a layer's
    frozen = nn.Parameter(_drawn(8), requires_grad=False)   # weight_parameter makes a trainable one: not this
    assert written(tensor_member(frozen, "param", h, "weird", rec)[0]) == \
        "nn.Parameter(torch.empty((8, 8)).uniform_(-8 ** -0.5, 8 ** -0.5), requires_grad=False)"
    assert written(tensor_member(h.ids, "buffer", h, "ids", rec)[0]) == "nn.Buffer(torch.arange(6))"  # as registered


def test_an_init_expression_is_checked_by_evaluating_it():
    h = Holder(8)
    assert init_expression(h, "pos", {"dim": 8}, h.pos) == ("torch.randn(1, 4, 8) * 0.02", True)
    assert init_expression(h, "pos", {"dim": 9}, h.pos) is None  # the wrong shape: refused
    assert init_expression(h, "pos", None, h.pos) is None          # `dim` unknown


def test_the_tree_keeps_used_members_and_indexes_list_containers():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Sequential(nn.Linear(1, 1)))
    tree = Tree(model, leaves={"0", "2.0"}, attrs=set(), extra_owners=set())
    assert [e[:2] for e in tree.entries("")] == [("0", "leaf"), ("1", "unused"), ("2", "tree")]
    assert tree.is_list("2") and not tree.is_list("")  # the root is a class of its own
    assert tree.access("2.0", "") == "getattr(self, '2')[0]"


def test_containers_are_written_one_member_per_line_and_repeats_once():
    seq = Constructor("nn.Sequential", [Arg("0", Constructor("Block", [Arg("c", 8, True)]), True)] +
                      [Arg(str(i), Constructor("Block", [Arg("c", 16, True)]), True) for i in range(1, 5)])
    assert written(seq) == "nn.Sequential(\n    Block(8),\n    *(Block(16) for _ in range(4)),\n)"
    assert written(Raw("torch.eye(2)")) == "torch.eye(2)"


class _DeepSupervision(nn.Module):
    """MONAI's BasicUNetPlusPlus: heads that only deep supervision calls, off by default."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 2, 1)
        self.aux_head = nn.Conv2d(4, 2, 1)     # never called
        self.aux_norm = nn.LayerNorm(4)         # never called
        self.aux_stage = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))   # never called

    def forward(self, x):
        return self.head(self.body(x))


def test_a_stateful_module_the_forward_never_calls_is_kept_with_its_state():
    import aimgen

    model = _DeepSupervision().eval()
    conv = aimgen.convert(model, [(1, 3, 8, 8)], base_weights=model.state_dict())
    aim = conv.build()
    assert set(model.state_dict()) <= set(aim.state_dict())
    assert isinstance(aim.aux_head, nn.Conv2d) and isinstance(aim.aux_norm, nn.LayerNorm)
    assert "self.aux_stage = nn.Sequential(" in conv.source   # a container: built from its items
    assert [type(m) for m in aim.aux_stage] == [nn.Conv2d, nn.BatchNorm2d]
    # kept, so counted: the validation's parameter count is the plan's, and the report says which
    assert conv.plan.base_params == sum(p.numel() for p in model.parameters())
    assert conv.plan.unused_params == sum(p.numel() for n, p in model.named_parameters() if n.startswith("aux_"))
    assert conv.plan.never_called == ("aux_head", "aux_norm", "aux_stage")
    assert sum(p.numel() for p in aim.parameters()) == conv.plan.aim_params
    assert f"note: {conv.plan.unused_params:,} parameters of the base model are never used by its forward " \
           "(aux_head, aux_norm, aux_stage): kept, so base checkpoints load" in conv.report
    missing, unexpected = aim.load_state_dict(model.state_dict(), strict=False)
    assert unexpected == [] and set(missing) == set(aim.state_dict()) - set(model.state_dict())
    x = torch.randn(2, 3, 8, 8)
    aim.load_state_dict(conv.state_dict)
    with torch.no_grad():
        assert (aim.eval()(x) - model(x)).abs().max() <= 1e-6
    assert [t.qualname for t in conv.plan.taps] == ["body.0", "head"]   # nothing taps a dead layer


def _sincos(cells: int, dim: int) -> torch.Tensor:
    angle = torch.arange(cells)[:, None] / 10000 ** (torch.arange(dim)[None] / dim)
    return torch.cat([angle.sin(), angle.cos()], 1)


class Table(nn.Module):
    def __init__(self, size: int, patch: int = 4):
        super().__init__()
        cells = (size // patch) ** 2
        self.table = _sincos(cells, 8)   # a plain attribute: no checkpoint restores it
        self.register_buffer("index", torch.arange(cells * cells) % 7, persistent=False)
        pos = _sincos(cells, 4)
        self.register_buffer("pos", pos, persistent=False)
        self.register_buffer("noise", torch.randn(2, 3), persistent=False)   # drawn, and no checkpoint has it


def test_an_init_expression_reads_the_init_s_locals_and_calls_its_module_s_functions():
    """``self.table = _sincos(cells, 8)``: ``cells``, a local of the recorded call, is written as
    its value and the function is copied into the generated file; a buffer registered from a
    local is written as what made the local; a value that draws nothing at random must come out
    equal (a function of the module that returns another value is refused)."""
    from aimgen.records import recording
    from aimgen.sourcecopy import SourceCopier

    with recording() as records:
        t = Table(32)
    copier = SourceCopier()
    assert init_expression(t, "table", records.of(t), t.table, copier) == ("_sincos(64, 8)", False)
    assert [name for name, _ in copier.copied.definitions] == ["test_codegen_members.py"]
    assert "def _sincos(cells: int, dim: int)" in copier.copied.text()
    assert init_expression(t, "index", records.of(t), t.index) == ("torch.arange(64 * 64) % 7", False)
    assert init_expression(t, "pos", records.of(t), t.pos, copier) == ("_sincos(64, 4)", False)  # what made `pos`
    assert init_expression(t, "table", records.of(t), t.table) is None   # no copier: no function calls
    assert init_expression(t, "table", records.of(t), t.table * 2, SourceCopier()) is None  # not its value
    written_member, note = tensor_member(t.table, "tensor", t, "table", records.of(t), copier)
    assert written(written_member) == "nn.Buffer(_sincos(64, 8), persistent=False)"
    assert note == "as its module's __init__ computes it"
    noise, _ = tensor_member(t.noise, "buffer", t, "noise", records.of(t), copier)   # its values, not a new draw
    assert written(noise) == f"nn.Buffer(torch.tensor({t.noise.tolist()}), persistent=False)"


class LateInit(nn.Module):
    """timm's way: ``torch.empty`` in ``__init__`` (device and dtype spread from ``**dd``), the
    values drawn or computed later in ``reset_parameters()`` -> ``_init_buffers()``; and one
    tensor filled where no expression can say how (every parameter in a loop)."""

    def __init__(self, n: int, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.n = n
        self.bias_table = nn.Parameter(torch.empty(n, 2, **dd))
        self.scale = nn.Parameter(torch.ones(n, **dd))
        self.looped = nn.Parameter(torch.empty(n, 3, **dd))
        self.register_buffer("index", torch.empty(n * n, device=device, dtype=torch.long), persistent=False)
        self.register_buffer("coords", torch.empty(n, 2, **dd), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        for p in [self.looped]:
            p.data.normal_()
        self._init_buffers()

    def _init_buffers(self) -> None:
        self.index.copy_(torch.arange(self.n * self.n, device=self.index.device) % self.n)
        coords, _ = self._pairs()   # Swin V2: table, index = self._make_pair_wise_relative_positions()
        self.coords.copy_(coords)

    def _pairs(self):
        return torch.arange(self.n * 2.0).view(self.n, 2), None


def test_a_tensor_made_empty_and_filled_later_is_written_as_both():
    """MaxViT's relative-position tables were written as `torch.empty(225, 2, **{'device': None,
    'dtype': None})`: no values at all (timm fills them in reset_parameters), so the converted
    model computed NaN in one fresh process out of two. The fill is read where it can be
    (``nn.init.trunc_normal_(self.x, ...)``, ``self.index.copy_(...)``: BEiT's index, kept whole
    before); where it cannot, the documented rule stands in. A constructor's ``**dd`` is written
    as plain keywords, torch's defaults left out."""
    from aimgen.records import recording
    from aimgen.sourcecopy import SourceCopier

    with recording() as records:
        m = LateInit(5)
    assert init_expression(m, "bias_table", records.of(m), m.bias_table) == \
        ("nn.init.trunc_normal_(torch.empty(5, 2), std=0.02)", True)
    assert init_expression(m, "index", records.of(m), m.index) == ("torch.arange(5 * 5) % 5", False)
    assert init_expression(m, "coords", records.of(m), m.coords, SourceCopier()) == ("pairs(n=5)[0]", False)
    assert init_expression(m, "looped", records.of(m), m.looped) is None   # p.data.normal_() in a loop
    looped, note = tensor_member(m.looped, "param", m, "looped", records.of(m))
    assert written(looped) == "weight_parameter((5, 3))" and "could not be read" in note
    assert init_expression(m, "scale", records.of(m), m.scale) == ("torch.ones(5)", False)
    with recording() as records:
        half = LateInit(5, dtype=torch.float16)
    assert init_expression(half, "scale", records.of(half), half.scale) == ("torch.ones(5, dtype=torch.float16)", False)


class Reassigned(torch.nn.Module):
    """timm's Swin V2-CR fills its table from locals its method assigns line after line."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.register_buffer("table", torch.empty(n * n, 2), persistent=False)
        self.register_buffer("twice", torch.empty(n * n), persistent=False)
        self._fill()

    def _fill(self):
        coords = torch.arange(self.n * self.n * 2, dtype=torch.float32)
        coords = coords.reshape(self.n * self.n, 2)
        coords = coords.flip(1)
        self.table.copy_(coords * 2)
        total = coords.sum(1)
        self.twice.copy_(total * total)


def test_a_local_assigned_again_line_after_line_reads_its_value_at_that_line():
    m = Reassigned(3)
    expr = init_expression(m, "table", None, m.table)
    assert expr == ("torch.arange(3 * 3 * 2, dtype=torch.float32).reshape(3 * 3, 2).flip(1) * 2", False)
    assert init_expression(m, "twice", None, m.twice) is None   # a local read twice is not computed twice


def test_a_plain_file_writes_out_the_draw_of_a_parameter_whose_init_cannot_be_read():
    """torchvision's ViT's pos_embedding (its init is an nn.init call aimgen does not read): the
    AiM file draws it with the runtime's weight_parameter; a plain file has no runtime, so the
    draw is written out (it failed to build: NameError weight_parameter)."""
    import aimgen
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=3)
    plain = aimgen.convert(model, [(1, 3, 32, 32)], plain=True)
    assert "weight_parameter" not in plain.source
    assert "self.pos_embedding = nn.Parameter(\n            torch.empty((1, 17, 16)).uniform_(-272 ** -0.5, " \
           "272 ** -0.5),\n        )" in plain.source
    built = plain.build()
    assert built.encoder.pos_embedding.shape == (1, 17, 16) and built.encoder.pos_embedding.requires_grad
    assert built(torch.randn(2, 3, 32, 32)).shape == (2, 3)


class _Windowed(nn.Module):
    """torchvision's Swin layout: ``__init__`` calls a method that computes an index in place
    (``+=`` on slices: no expression of it can be read) and ends by registering it."""

    def __init__(self, window: int):
        super().__init__()
        self.window = window
        self.define_index()

    def define_index(self) -> None:
        """A docstring."""
        coords = torch.arange(self.window)
        relative = coords[:, None] - coords[None, :]
        relative += self.window - 1
        self.register_buffer("index", relative.flatten())


class _WindowedV2(_Windowed):
    """V2 overrides the method its parent's ``__init__`` calls, and calls only ``super()``."""

    def __init__(self, window: int):
        super().__init__(window)
        self.scale = nn.Parameter(torch.ones(1))

    def define_index(self) -> None:
        coords = torch.arange(self.window)
        relative = coords[:, None] * 2 - coords[None, :]
        self.register_buffer("index", relative.flatten(), persistent=False)


def test_a_method_that_ends_by_registering_the_buffer_is_copied_as_a_function_returning_it():
    from aimgen.records import recording
    from aimgen.sourcecopy import SourceCopier

    with recording() as records:
        m, v2 = _Windowed(5), _WindowedV2(4)
    copier = SourceCopier()
    assert init_expression(m, "index", records.of(m), m.index, copier) == ("define_index(window=5)", False)
    text = copier.copied.text()
    assert "def define_index(*, window):" in text   # no '-> None': it returns the value and "    return relative.flatten()\n" in text
    assert "register_buffer" not in text
    namespace = {}
    exec(compile("import torch\n" + text, "copied", "exec"), namespace)
    assert torch.equal(namespace["define_index"](window=5), m.index)
    # the override the parent's __init__ calls, found through super().__init__
    other = SourceCopier()
    assert init_expression(v2, "index", records.of(v2), v2.index, other) == ("define_index(window=4)", False)
    assert "coords[:, None] * 2" in other.copied.text()
    assert init_expression(m, "index", records.of(m), m.index) is None   # no copier: nothing to call


def test_a_float_table_no_checkpoint_restores_is_written_as_a_literal_up_to_1024_values():
    """Hugging Face Swin V2's (1, 7, 7, 2) coordinate table, a non-persistent buffer made in a
    way no expression reads: written out, where its attention was kept whole (and its Linear
    layers left without memory). A saved one is restored by a checkpoint and stays a draw."""
    from aimgen.errors import KeepWhole

    class Coords(nn.Module):
        def __init__(self):
            super().__init__()
            table = torch.zeros(1, 7, 7, 2)
            for i in range(7):
                table[0, i, :, 0] = torch.linspace(-1, 1, 7) * (i + 1) / 7
            self.register_buffer("table", table, persistent=False)
            self.register_buffer("big", torch.rand(2000), persistent=False)

    m = Coords()
    text = written(tensor_member(m.table, "buffer", m, "table", None)[0])
    assert text.startswith("nn.Buffer(torch.tensor(") and text.endswith(", persistent=False)")
    assert torch.equal(eval(text, {"torch": torch, "nn": nn}), m.table)
    with pytest.raises(KeepWhole, match="too large to write"):
        tensor_member(m.big, "buffer", m, "big", None)
