"""Base weights in, same function out (weights.py), the plain rendering, and aimgen diff."""
from __future__ import annotations

import pickle
import re
import sys

import pytest
import torch
import torchvision
from torch import nn

import aimgen
from aimgen.errors import WeightsError
from aimgen.weights import load_state_dict

sys.path.insert(0, str(__import__("conftest").EXAMPLES))
from mlp import MLP  # noqa: E402
from tiny_cnn import TinyCNN  # noqa: E402

from conftest import EXAMPLES, leftovers  # noqa: E402


def randomized(model: nn.Module) -> nn.Module:
    """Random weights and BatchNorm statistics, so preserving them is a real test."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


MODELS = {
    "resnet50": (lambda: torchvision.models.resnet50(num_classes=120), (3, 96, 96)),
    "vgg16": (lambda: torchvision.models.vgg16(num_classes=120), (3, 64, 64)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(num_classes=120), (3, 64, 64)),
    "small_cnn": (TinyCNN, (3, 32, 32)),
    "mlp": (MLP, (784,)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_converted_and_plain_models_compute_the_base_function(name):
    build, shape = MODELS[name]
    base = randomized(build())
    x1 = torch.randn(1, *shape)
    result = aimgen.convert(base, x1, base_weights=base.state_dict(), source_name=name)
    rep = result.weights_report
    assert rep["widened"] == len(result.plan.taps) and rep["copied"] > 0 and rep["created"] > 0
    aim = result.build().eval()
    plain = aimgen.convert(base, x1, plain=True).build()
    plain.load_state_dict(base.state_dict())
    plain.eval()
    for batch in (1, 3):
        x = torch.randn(batch, *shape)
        with torch.no_grad():
            want = base(x)
            assert (aim(x) - want).abs().max() <= 1e-5
            assert (plain(x) - want).abs().max() <= 1e-5
    # memory-reading weights start at zero, the rest is the base weight
    site = result.plan.taps[0]
    w = aim.get_parameter(site.weight)
    assert torch.equal(w[:, site.in_size // site.groups:], torch.zeros_like(w[:, site.in_size // site.groups:]))


def test_a_training_step_teaches_the_memory_path():
    base = randomized(TinyCNN())
    result = aimgen.convert(base, torch.randn(1, 3, 32, 32), base_weights=base.state_dict())
    aim = result.build().train()
    opt = torch.optim.SGD(aim.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(aim(torch.randn(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
    loss.backward()
    opt.step()
    for site in result.plan.taps:
        w = aim.get_parameter(site.weight)
        new = w[:, site.in_size:] if site.axis == -1 else w[:, site.in_size // site.groups:]
        assert new.abs().sum() > 0, f"{site.qualname}: memory weights did not learn"


def test_cli_writes_the_aim_state_dict_beside_the_source(tmp_path, cli):
    base = randomized(TinyCNN())
    torch.save(base.state_dict(), tmp_path / "base.pt")
    code, out, err = cli("convert", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "-o",
                         tmp_path / "aim.py", "--weights", tmp_path / "base.pt", "--no-onnx")
    assert code == 0, err
    assert "tensors copied" in out and "widened" in out
    sd = torch.load(tmp_path / "aim.pt", weights_only=True)
    assert torch.equal(sd["conv1.weight"][:, :3], base.state_dict()["conv1.weight"])
    assert torch.equal(sd["conv1.weight"][:, 3:], torch.zeros(16, 1, 3, 3))


def test_safetensors_base_weights_give_the_same_function(tmp_path):
    from safetensors.torch import save_file

    base = randomized(TinyCNN())
    save_file(base.state_dict(), str(tmp_path / "base.safetensors"))
    result = aimgen.convert(base, torch.randn(1, 3, 32, 32), base_weights=tmp_path / "base.safetensors")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert (result.build().eval()(x) - base(x)).abs().max().item() <= 1e-5


def test_weights_that_do_not_fit_are_refused_with_names_and_shapes(tmp_path, cli):
    sd = TinyCNN().state_dict()
    sd.pop("fc.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["conv2.weight"] = torch.zeros(32, 16, 5, 5)
    torch.save(sd, tmp_path / "bad.pt")
    code, _, err = cli("convert", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "-o",
                       tmp_path / "aim.py", "--weights", tmp_path / "bad.pt", "--no-onnx")
    assert code != 0
    assert "missing keys: fc.bias" in err and "unexpected keys: extra.weight" in err
    assert "conv2.weight: (32, 16, 5, 5) given, (32, 16, 3, 3) expected" in err
    assert leftovers(tmp_path, {"bad.pt"}) == []


class Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_that_is_not_a_state_dict_is_refused_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"conv1.weight": Evil()}, f)
    with pytest.raises(WeightsError, match="not a plain state_dict.*Nothing from it was executed"):
        load_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
    torch.save({"model": TinyCNN().state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(WeightsError, match="looks like a checkpoint; save its 'model' entry"):
        load_state_dict(tmp_path / "ckpt.pt")


def test_diff_shows_only_memory_lines(cli):
    code, out, err = cli("diff", str(EXAMPLES / "torchvision_models.py") + ":resnet50",
                         "--input-shape", "1,3,224,224", "--color", "never")
    assert code == 0, err
    changed = [l for l in out.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    assert len(changed) > 100
    memory_words = ("memory", "Memory", "fit_", "update", "Aim", "AIMGEN", "aimgen", "AiM", "'kind'", "carry",
                    "'params'", "params'", "'delta'", "'depends'", "'base_params'", "'class'", "outputs", "gate",
                    "folds", "per_fold", "flat", "rank", "channels", "return ((1", "\"\"\"", "m = ", "z = ",
                    "n = ", "def __init__(self, shape", "super().__init__()", "self.seed", "self.register_buffer",
                    "target", "torch.distributed", "@torch.no_grad()", "return", "if not self.training", "def ",
                    "Branch-free", "Frozen in eval", "bottleneck", "Written by aimgen", "options:", "parameters:",
                    "the seed", "self.carry", "over the middle", "of x, so", "so a grouped")
    added = [l[1:] for l in changed if l[0] == "+"]
    def unwiden(line: str) -> str:
        line = re.sub(r" \+ \d+( \* \d+)?", "", line.split("  # ")[0]).replace("AimResNet", "ResNet")
        line = re.sub(r"torch\.cat\(\[(\w+), fit_\w+\(.*?\)\], -?1\)", r"\1", line)
        line = re.sub(r"fit_grouped\((\w+), memory, \d+, \d+\)", r"\1", line)
        return line.replace(", memory.mean(0)", "")

    unwidened = {unwiden(l) for l in added}
    removed_ok = [l for l in changed if l[0] == "-" and (l[1:] in unwidened or "Plain rendering" in l
                                                         or "'kind': 'plain'" in l
                                                         or "'params':" in l)]
    unrelated = [l for l in changed if l[1:].strip() and l not in removed_ok
                 and not (l[0] == "+" and any(w in l for w in memory_words))]
    assert unrelated == [], unrelated[:5]
    assert "+        self.memory = Memory((1024, 7, 7)" in out
    assert "-        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)" in out
    assert "+        self.conv1 = nn.Conv2d(3 + 1, 64, 7, stride=2, padding=3, bias=False)  # + memory" in out


def test_diff_is_coloured_only_when_asked(cli):
    code, out, _ = cli("diff", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "--color", "always")
    assert code == 0 and "\x1b[32m+" in out
    code, out, _ = cli("diff", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32")
    assert code == 0 and "\x1b[" not in out  # piped: plain


def test_python_api_round_trip(tmp_path):
    base = randomized(TinyCNN())
    result = aimgen.convert(base, torch.randn(1, 3, 32, 32), base_weights=base.state_dict(), memory_size=512)
    assert result.plan.memory_params <= 512 and "trainable" not in result.report
    assert "base params: 5,418 || aim params:" in result.report
    written = result.write(tmp_path / "tiny_aim.py", onnx=False)
    assert [p.name for p in written] == ["tiny_aim.py", "tiny_aim.pt"]
    assert result.report_dict()["weights"]["widened"] == 3
