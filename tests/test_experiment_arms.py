"""The arms: the base built for the data (in_channels / num_classes), the parameter-matched
wider arm, shared initialisation, and the AiM arm through the public API."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import aimgen
from aimgen.experiment import (ParallelBranch, build_base, check_output, count_params, make_arms,
                               reinitialised, share_init, widened)
from aimgen.experiment.errors import ExperimentError
from aimgen.loader import load_model
from aimgen.taps import REGISTRY
from conftest import EXAMPLES

DIGITS = str(EXAMPLES / "digits_cnn.py")
FCN = str(EXAMPLES / "fcn_tsc.py")
RESNET = str(EXAMPLES / "resnet_tsc.py")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("target,shape", [(DIGITS, (1, 8, 8)), (str(EXAMPLES / "tiny_cnn.py"), (3, 32, 32)),
                                          (FCN, (1, 40))])
def test_wider_arm_matches_aim_parameter_count(target, shape):
    base = load_model(target).model
    aim = aimgen.convert(base, torch.zeros(1, *shape)).plan.aim_params
    wider, hidden = widened(base, aim - count_params(base), shape, seed=0)
    assert hidden >= 1
    assert abs(count_params(wider) - aim) / aim < 0.03
    assert wider(torch.zeros(2, *shape)).shape == base(torch.zeros(2, *shape)).shape


@pytest.mark.parametrize("form", ["sum", "literal"])
def test_arms_share_init(form):
    """Within a seed the arms start from the base's weights wherever they share a layer; the
    memory's weights keep their own (non-zero) init."""
    base = load_model(DIGITS).model
    seeded = reinitialised(base, 3)
    conversion = aimgen.convert(base, torch.zeros(1, 1, 8, 8), options=aimgen.Options(form=form))
    aim = conversion.build(load_weights=False)
    assert share_init(seeded, aim, conversion) == len(seeded.state_dict())
    in_ch = seeded.conv1.weight.shape[1]
    assert torch.equal(aim.conv1.weight[:, :in_ch], seeded.conv1.weight)
    if form == "literal":
        assert aim.conv1.weight[:, in_ch:].abs().sum() > 0
    else:
        assert aim.conv1.memory_weight.abs().sum() > 0
    assert torch.equal(aim.fc.bias, seeded.fc.bias)
    again = reinitialised(base, 3)
    assert torch.equal(again.conv1.weight, seeded.conv1.weight)
    assert not torch.equal(reinitialised(base, 4).conv1.weight, seeded.conv1.weight)


class UpSampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 3, 2, stride=2)

    def forward(self, x):
        return self.up(torch.relu(self.conv(x)))


def test_a_transposed_convolution_is_shared_in_its_own_layout():
    """A ConvTranspose weight widens on dim 0 in the literal form; its base slice is shared."""
    base = reinitialised(UpSampler(), 5)
    conversion = aimgen.convert(base, torch.zeros(1, 2, 6, 6), options=aimgen.Options(form="literal"))
    aim = conversion.build(load_weights=False)
    assert aim.up.weight.shape[0] > 4 and aim.up.weight.shape[1] == 3
    assert share_init(base, aim, conversion) == len(base.state_dict())
    site = next(t for t in conversion.plan.taps if t.qualname == "up")
    kind = REGISTRY.get(site.kind)
    weight, _ = kind.to_sum(site, aim.up.weight.detach(), conversion.plan.width(site))
    assert torch.equal(weight, base.up.weight)


def test_the_wider_branch_is_built_by_the_layers_kind():
    layer = nn.ConvTranspose2d(4, 3, 2, stride=2)
    branch = ParallelBranch(layer, 5)
    assert isinstance(branch.down, nn.ConvTranspose2d) and branch.down.out_channels == 5
    assert branch(torch.zeros(1, 4, 3, 3)).shape == layer(torch.zeros(1, 4, 3, 3)).shape
    assert ParallelBranch(nn.Linear(6, 2), 3)(torch.zeros(4, 6)).shape == (4, 2)
    conv = nn.Conv1d(4, 3, 5, stride=2, padding=2)
    branch = ParallelBranch(conv, 6)
    assert (branch.down.kernel_size, branch.down.stride, branch.down.out_channels) == ((5,), (2,), 6)
    assert branch(torch.zeros(2, 4, 17)).shape == conv(torch.zeros(2, 4, 17)).shape
    # a grouped conv cannot host the branch, so it is never chosen as the output layer
    assert REGISTRY.kind_of(nn.Conv2d(4, 4, 3, groups=4)).parallel_branch(nn.Conv2d(4, 4, 3, groups=4), 2) is None


def test_fcn_and_resnet_are_built_for_the_data():
    fcn = build_base(FCN, in_channels=6, num_classes=4)
    assert fcn.built_with == {"in_channels": 6, "num_classes": 4} and fcn.published_as == "FCN"
    convs = [m for m in fcn.model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(6, 128, 8), (128, 256, 5),
                                                                                   (256, 128, 3)]
    assert fcn.model(torch.zeros(2, 6, 100)).shape == (2, 4)
    res = build_base(RESNET, in_channels=1, num_classes=3)
    assert res.published_as == "ResNet"
    kernels = [m.kernel_size[0] for m in res.model.modules() if isinstance(m, nn.Conv1d)]
    assert kernels == [8, 5, 3, 1, 8, 5, 3, 1, 8, 5, 3]  # 3 blocks of 8/5/3; 1x1 shortcuts where widths change
    assert [b.convs[0].out_channels for b in res.model.blocks] == [64, 128, 128]
    assert isinstance(res.model.blocks[2].shortcut, nn.BatchNorm1d)
    assert res.model(torch.zeros(3, 1, 50)).shape == (3, 3)
    assert 260_000 < count_params(fcn.model) < 275_000 and 500_000 < count_params(res.model) < 510_000


def test_a_model_without_the_keywords_is_used_as_built(tmp_path):
    (tmp_path / "m.py").write_text("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n"
                                   "        super().__init__()\n        self.fc = torch.nn.Linear(4, 3)\n"
                                   "    def forward(self, x):\n        return self.fc(x.flatten(1))\n")
    base = build_base(str(tmp_path / "m.py"), in_channels=1, num_classes=5)
    assert base.built_with == {} and base.published_as is None
    with pytest.raises(ExperimentError, match="outputs 3 values per sample but the data has 5 classes"):
        check_output(base.model, (1, 4), 5, "m.py:Net")


def test_digits_cnn_gets_the_number_of_classes():
    base = build_base(DIGITS, in_channels=1, num_classes=7)
    assert base.built_with == {"num_classes": 7}
    assert base.model(torch.zeros(2, 1, 8, 8)).shape == (2, 7)


def test_make_arms_checks_every_arm_before_training():
    base = build_base(FCN, in_channels=1, num_classes=2).model
    arms, info = make_arms(base, (1, 24), 2, aimgen.Options(), ["base", "aim", "wider"], "fcn")
    assert [a.name for a in arms] == ["base", "aim", "wider"]
    assert info["memory_floats"] >= 1000  # FCN's default memory is thousands of floats, not a token 16
    assert abs(info["wider_params"] - info["aim_params"]) / info["aim_params"] < 0.01
    models = [a.build(0) for a in arms]
    assert [count_params(m) for m in models] == [info["base_params"], info["aim_params"], info["wider_params"]]
    # same seed: the shared first conv starts from the same weights in all three arms
    first = [dict(m.named_parameters())[k] for m, k in zip(models, ["blocks.0.conv.weight"] * 3)]
    assert torch.equal(first[0], first[2]) and torch.equal(first[0], first[1][:, :1])
