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
    # memory-reading weights start at zero, the layer's own weight is the base weight
    for site in result.plan.taps:
        memory_weight = aim.get_parameter(result.plan.memory_keys[site.node])
        assert memory_weight.numel() > 0 and torch.equal(memory_weight, torch.zeros_like(memory_weight))
        assert torch.equal(aim.get_parameter(site.weight), base.get_parameter(site.weight))


def test_a_training_step_teaches_the_memory_path():
    base = randomized(TinyCNN())
    result = aimgen.convert(base, torch.randn(1, 3, 32, 32), base_weights=base.state_dict())
    aim = result.build().train()
    opt = torch.optim.SGD(aim.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(aim(torch.randn(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
    loss.backward()
    opt.step()
    for site in result.plan.taps:
        memory_weight = aim.get_parameter(result.plan.memory_keys[site.node])
        assert memory_weight.abs().sum() > 0, f"{site.qualname}: memory weights did not learn"


def test_cli_writes_the_aim_state_dict_beside_the_source(tmp_path, cli):
    base = randomized(TinyCNN())
    torch.save(base.state_dict(), tmp_path / "base.pt")
    code, out, err = cli("convert", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "-o",
                         tmp_path / "aim.py", "--weights", tmp_path / "base.pt", "--no-onnx")
    assert code == 0, err
    assert "6 tensors copied, 3 memory weights (start at zero)" in out
    sd = torch.load(tmp_path / "aim.pt", weights_only=True)
    assert torch.equal(sd["conv1.weight"], base.state_dict()["conv1.weight"])
    assert torch.equal(sd["conv1.memory_weight"], torch.zeros(16, 1, 3, 3))


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
    assert "missing (1): fc.bias" in err and "unexpected (1): extra.weight" in err
    assert "shape mismatch (1): conv2.weight (32, 16, 5, 5) given, (32, 16, 3, 3) expected" in err
    assert "--weights-partial" in err and "partial=True" not in err  # the CLI names its flag
    assert leftovers(tmp_path, {"bad.pt"}) == []


class Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_that_is_not_a_state_dict_is_refused_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"conv1.weight": Evil()}, f)
    with pytest.raises(WeightsError, match="refused: it holds pickled Python objects .*nothing from it was executed"):
        load_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
    torch.save({"optimizer": {"lr": torch.tensor(0.1)}, "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(WeightsError, match="looks like a checkpoint, but none of its entries .'optimizer'. is a state_dict"):
        load_state_dict(tmp_path / "ckpt.pt")


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
    assert [p.name for p in written.files] == ["tiny_aim.py", "tiny_aim.pt"]
    assert result.report_dict()["weights"]["widened"] == 3


# --- issue 12: checkpoints as training loops save them, fine-tuning, the base-function check ----


def test_a_pickled_whole_model_is_refused_in_aimgens_words(tmp_path, cli):
    torch.save(TinyCNN(), tmp_path / "whole.pt")  # the model object, not its state_dict
    code, out, err = cli("convert", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "-o", tmp_path / "a.py",
                         "--weights", tmp_path / "whole.pt", "--no-onnx")
    assert code == 2 and out.startswith("model: ")  # refused after loading the model file, before writing
    assert "\x1b[" not in err and "Weights only load failed" not in err and "weights_only" not in err
    assert "refused: it holds a pickled tiny_cnn.TinyCNN" in err or "refused: it holds a pickled" in err
    assert "nothing from it was executed" in err and "torch.save(model.state_dict(), path)" in err
    assert err.count("\n") == 1 and leftovers(tmp_path, {"whole.pt"}) == []


@pytest.mark.parametrize("wrap", ["ddp", "model", "state_dict+ddp"])
def test_ddp_prefix_and_checkpoint_wrappers_are_stripped_and_said(tmp_path, cli, wrap):
    base = randomized(TinyCNN())
    sd = base.state_dict()
    if "ddp" in wrap:
        sd = {f"module.{k}": v for k, v in sd.items()}
    data = {"model": sd, "epoch": 7} if wrap == "model" else {"state_dict": sd, "optimizer": {}} if "+" in wrap else sd
    torch.save(data, tmp_path / "ckpt.pt")
    code, out, err = cli("convert", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "-o", tmp_path / "aim.py",
                         "--weights", tmp_path / "ckpt.pt", "--no-onnx")
    assert code == 0, err
    if "ddp" in wrap:
        assert "weights: stripped the DistributedDataParallel/DataParallel prefix 'module.' from all 6 keys" in out
    if wrap == "model":
        assert "weights: took the 'model' entry of a checkpoint (ignored: epoch)" in out
    if "+" in wrap:
        assert "weights: took the 'state_dict' entry of a checkpoint (ignored: optimizer)" in out
    aim = torch.load(tmp_path / "aim.pt", weights_only=True)
    assert torch.equal(aim["fc.bias"], base.state_dict()["fc.bias"])


def test_the_matches_the_base_model_line_gives_the_measured_difference(tmp_path, cli):
    base = randomized(TinyCNN())
    torch.save(base.state_dict(), tmp_path / "base.pt")
    code, out, err = cli("convert", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "-o", tmp_path / "aim.py",
                         "--weights", tmp_path / "base.pt", "--no-onnx")
    assert code == 0, err
    (line,) = [ln for ln in out.splitlines() if "matches the base model" in ln]
    diff = float(re.search(r"max abs difference (\S+) between the base and the AiM model", line).group(1))
    assert line.startswith("[ok] ") and 0 <= diff <= 1e-5, line
    assert "bound: 1e-05 + 1e-05 x |base output|" in line
    # and it is a real measurement: the AiM model with the written weights vs the base model
    result = aimgen.convert(base, torch.randn(1, 3, 32, 32), base_weights=tmp_path / "base.pt")
    match = result.weights_report["base_match"]
    aim = result.build().eval()
    x = result.example_inputs()
    with torch.no_grad():
        assert match["max_abs_diff"] == pytest.approx(float((aim(*x).double() - base(*x).double()).abs().max()),
                                                      abs=1e-9)


def _resnet18_file(tmp_path):
    path = tmp_path / "r18.py"
    path.write_text("import torchvision\n\ndef build_model():\n    return torchvision.models.resnet18(num_classes=10)\n")
    return path


def test_a_checkpoint_with_another_head_loads_partially_and_lists_what_was_left(tmp_path, cli):
    """Fine-tuning: an ImageNet-style resnet18 checkpoint (1000 classes) into a 10-class model."""
    imagenet = randomized(torchvision.models.resnet18(num_classes=1000))
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pt")
    model, args = _resnet18_file(tmp_path), ["--input-shape", "1,3,64,64", "--no-onnx"]
    code, _, err = cli("convert", model, *args, "-o", tmp_path / "exact.py", "--weights", tmp_path / "imagenet.pt")
    assert code == 2 and "shape mismatch (2): fc.weight (1000, 512) given, (10, 512) expected" in err
    assert "--weights-partial" in err
    code, out, err = cli("convert", model, *args, "-o", tmp_path / "ft.py", "--weights", tmp_path / "imagenet.pt",
                         "--weights-partial")
    assert code == 0, err
    assert "weights: partial load: 120 of 122 base tensors from the file" in out
    assert ("weights: left at their initialisation (2): fc.weight ((1000, 512) in the file, (10, 512) in the model); "
            "fc.bias ((1000,) in the file, (10,) in the model)") in out
    assert "[ok] matches the base model" in out
    sd = torch.load(tmp_path / "ft.pt", weights_only=True)
    assert torch.equal(sd["layer4.1.bn2.running_var"], imagenet.state_dict()["layer4.1.bn2.running_var"])
    assert sd["fc.weight"].shape[0] == 10  # the model's head (widened or not, depending on the form)
    assert not torch.equal(sd["fc.weight"][:, :512], imagenet.state_dict()["fc.weight"][:10])


def test_partial_loading_in_python(tmp_path):
    imagenet = randomized(torchvision.models.resnet18(num_classes=1000)).state_dict()
    ddp = {f"module.{k}": v for k, v in imagenet.items()}
    base = torchvision.models.resnet18(num_classes=10)
    result = aimgen.convert(base, torch.randn(1, 3, 64, 64),
                            base_weights=aimgen.Checkpoint.read(ddp, partial=True, where="imagenet weights"))
    rep = result.weights_report
    assert rep["partial"] and rep["loaded"] == 120 and sorted(rep["left"]) == ["fc.bias", "fc.weight"]
    assert any("prefix 'module.'" in n for n in rep["notes"]) and rep["base_match"]["ok"]
    with pytest.raises(WeightsError, match=r"no tensor whose key and shape match"):
        aimgen.convert(base, torch.randn(1, 3, 64, 64),
                       base_weights=aimgen.Checkpoint.read({"other.weight": torch.zeros(2)}, partial=True))


def test_fit_problems_names_every_kind_of_misfit():
    from aimgen.weights import fit_problems

    given = {"a": torch.zeros(2, 3), "b": torch.zeros(1), "x": torch.zeros(1)}
    expected = {"a": torch.zeros(2, 4), "b": torch.zeros(1), "c": (5,)}
    assert fit_problems(given, expected) == ["missing (1): c", "unexpected (1): x",
                                             "shape mismatch (1): a (2, 3) given, (2, 4) expected"]
    assert fit_problems(expected, expected) == []


class SharedConvBlock(nn.Module):
    """Holds its stage's shared conv as ``cpe``, as timm's CoaT blocks do."""

    def __init__(self, cpe: nn.Module):
        super().__init__()
        self.cpe = cpe
        self.fc = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.fc(torch.relu(self.cpe(x) + x))


class SharedConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.cpe1 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.blocks = nn.ModuleList([SharedConvBlock(self.cpe1), SharedConvBlock(self.cpe1)])
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def test_a_module_held_under_two_names_keeps_the_base_function():
    """Its memory weight is one tensor under two keys (cpe1.memory_weight and
    blocks.0.cpe.memory_weight): both start at zero, where the key the plan does not name once
    kept its drawn value and, loaded last, changed the function (CoaT: 0.1 at the output)."""
    torch.manual_seed(0)
    base = SharedConvNet().eval()
    conversion = aimgen.convert(base, torch.randn(1, 3, 12, 12), base_weights=base.state_dict())
    assert conversion.weights_report["base_match"]["max_abs_diff"] == 0.0
    state = conversion.state_dict
    assert torch.equal(state["cpe1.memory_weight"], state["blocks.0.cpe.memory_weight"])
    assert not state["blocks.1.cpe.memory_weight"].any()
    assert "getattr(self, '')" not in conversion.source   # the block class reads it as self.cpe
    aim = conversion.build()
    aim.load_state_dict(state)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(aim.eval()(x), base(x))


def test_a_generated_model_that_fails_on_the_example_input_is_reported_as_aimgens_bug(monkeypatch):
    """It was a bare RuntimeError ("shape '[15, 7, 7, 2, 2, -1]' is invalid") with no word on
    what failed or whose fault it was."""
    from aimgen.errors import InternalError
    from aimgen.weights import base_match

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("shape '[15, 7]' is invalid for input of size 12")

    base = MLP()
    conversion = aimgen.convert(base, torch.randn(1, 784))
    monkeypatch.setattr(type(conversion), "build", lambda self, load_weights=True: Broken())
    with pytest.raises(InternalError) as info:
        base_match(base, base.state_dict(), conversion, {})
    assert "the generated model fails on the example input: RuntimeError: shape '[15, 7]' is invalid" in str(info.value)
    assert "bug in aimgen" in info.value.hint
