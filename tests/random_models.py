"""Random valid CNN and MLP models, as *source files*, and the invariants every conversion keeps.

``model_specs()`` is a hypothesis strategy of model descriptions; ``render_source(spec)`` writes
one as a Python file (a ``build_model()`` and an ``nn.Module`` class, the way users write them),
so a conversion goes through the real path: load the file, trace, plan, render, build.

Graphs: a stem conv, then blocks chosen among plain/strided/grouped/depthwise convs, residual
adds, DenseNet-style concats, Inception-style branches, pools, squeeze-excitation, channel
shuffle, U-Net-style long skips over a pooled level, a second input (a conditioning vector)
added into blocks, a user module torch.fx cannot trace (kept whole and copied), a
torch.fx-wrapped helper function; then a pooled Linear head. MLPs take (N, D) or (N, T, D) inputs, with residual Linears
and LayerNorm. Input sizes vary. Shapes are tracked while generating, so every model is valid.

``check_conversion`` asserts the invariants of issue 5: imports only torch and the standard
library, counted parameters equal the plan, forward and backward run, eval() is deterministic;
base weights in, same function out (1e-5); ONNX parity (when asked: it is the slow part).
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hypothesis import strategies as st

from aimgen.loader import flat_tensors

CONV_BLOCKS = ("conv", "strided", "grouped", "depthwise", "residual", "concat", "branches", "pool", "se",
               "shuffle", "leaf", "wrapped", "unet", "cond")
MLP_BLOCKS = ("linear", "residual", "norm", "wrapped", "leaf")


@dataclass
class Spec:
    kind: str                       # "cnn" or "mlp"
    in_shape: tuple[int, ...]       # one input, batch first
    blocks: list[tuple] = field(default_factory=list)
    hidden: int = 0                 # width of an extra hidden Linear in the head (0: none)
    classes: int = 3
    act: str = "ReLU"
    bn: bool = True
    cond: int = 0                   # width of a second input (a conditioning vector, N x cond): 0 = none

    def label(self) -> str:
        return f"{self.kind} {self.in_shape} " + " ".join(b[0] for b in self.blocks)


@st.composite
def conv_specs(draw) -> Spec:
    cin = draw(st.sampled_from([1, 3, 4]))
    h = draw(st.integers(6, 20))
    w = draw(st.sampled_from([h, h, draw(st.integers(6, 20))]))
    spec = Spec("cnn", (1, cin, h, w), act=draw(st.sampled_from(["ReLU", "SiLU", "GELU"])), bn=draw(st.booleans()))
    c = draw(st.sampled_from([4, 6, 8, 12]))
    spec.blocks.append(("stem", cin, c, draw(st.sampled_from([1, 3]))))
    size = min(h, w)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(CONV_BLOCKS))
        if kind in ("strided", "pool") and size < 4:
            kind = "conv"
        if kind == "conv":
            out = draw(st.sampled_from([4, 6, 8, 12, 16]))
            spec.blocks.append(("conv", c, out, draw(st.sampled_from([1, 3, 5]))))
            c = out
        elif kind == "strided":
            out = draw(st.sampled_from([8, 12, 16]))
            spec.blocks.append(("strided", c, out))
            c, size = out, (size + 1) // 2
        elif kind == "grouped":
            groups = draw(st.sampled_from([g for g in (2, 3, 4) if c % g == 0] or [1]))
            spec.blocks.append(("grouped", c, c * draw(st.sampled_from([1, 2])), groups))
            c = spec.blocks[-1][2]
        elif kind == "depthwise":
            spec.blocks.append(("depthwise", c, draw(st.sampled_from([4, 8, 12]))))
            c = spec.blocks[-1][2]
        elif kind == "residual":
            spec.blocks.append(("residual", c))
        elif kind == "concat":
            grow = draw(st.sampled_from([2, 4]))
            spec.blocks.append(("concat", c, grow))
            c += grow
        elif kind == "branches":
            widths = draw(st.lists(st.sampled_from([2, 4, 6]), min_size=2, max_size=3))
            spec.blocks.append(("branches", c, tuple(widths)))
            c = sum(widths)
        elif kind == "pool":
            spec.blocks.append(("pool", draw(st.sampled_from(["max", "avg"]))))
            size //= 2
        elif kind == "se":
            spec.blocks.append(("se", c, max(1, c // 4)))
        elif kind == "shuffle":
            groups = draw(st.sampled_from([g for g in (2, 3, 4) if c % g == 0] or [1]))
            spec.blocks.append(("shuffle", groups))
        elif kind == "unet":  # a long skip over a pooled level: no main path inside
            spec.blocks.append(("unet", c) if size >= 2 else ("residual", c))
        elif kind == "cond":  # a side input that reaches the block
            spec.cond = spec.cond or draw(st.sampled_from([2, 4]))
            spec.blocks.append(("cond", c))
        else:  # "leaf" (untraceable user module) or "wrapped" (fx-wrapped function)
            spec.blocks.append((kind,))
    spec.hidden = draw(st.sampled_from([0, 0, 16]))
    spec.classes = draw(st.integers(2, 6))
    return spec


@st.composite
def mlp_specs(draw) -> Spec:
    d = draw(st.sampled_from([4, 8, 12]))
    shape = draw(st.sampled_from([(1, d), (1, draw(st.integers(2, 6)), d)]))
    spec = Spec("mlp", shape, act=draw(st.sampled_from(["ReLU", "GELU", "Tanh"])))
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(MLP_BLOCKS))
        if kind == "linear":
            out = draw(st.sampled_from([4, 8, 16]))
            spec.blocks.append(("linear", d, out))
            d = out
        elif kind == "residual":
            spec.blocks.append(("residual", d))
        elif kind == "norm":
            spec.blocks.append(("norm", d))
        else:
            spec.blocks.append((kind,))
    spec.hidden = draw(st.sampled_from([0, 8]))
    spec.classes = draw(st.integers(2, 6))
    spec.blocks.insert(0, ("linear", shape[-1], shape[-1]))
    return spec


def model_specs():
    return st.one_of(conv_specs(), conv_specs(), mlp_specs())


# --- source --------------------------------------------------------------------------------

_HEADER = '''"""A random model written by tests/random_models.py: {label}"""
import math
import tempfile

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

LIMIT = 4.0


def soft_clip(x):
    return LIMIT * torch.tanh(x / LIMIT)


torch.fx.wrap("soft_clip")


def _norm_scale(x):
    return x / (1.0 + x.abs().mean())


class DataGate(nn.Module):
    """A Python loop over a traced size: torch.fx cannot trace it, aimgen keeps it whole
    (and, unlike control flow on tensor values, it still exports to ONNX)."""

    def __init__(self, width: int, axis: int = 1):
        super().__init__()
        self.width = width
        self.axis = axis
        self.scale = nn.Parameter(torch.ones(width))

    def forward(self, x):
        shape = [1] * x.dim()
        shape[self.axis] = -1
        out = x * self.scale.view(shape)
        for _ in range(x.shape[self.axis] // 4):
            out = out + 0.1 * _norm_scale(out)
        return out


def channel_shuffle(x, groups: int):
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)

'''


def render_source(spec: Spec) -> str:
    init, fwd = [], []
    act = f"nn.{spec.act}()"

    def add(name, ctor):
        init.append(f"        self.{name} = {ctor}")

    def norm(name, c):
        if spec.kind == "cnn" and spec.bn:
            add(name, f"nn.BatchNorm2d({c})")
            return f"self.{name}"
        return None

    for i, b in enumerate(spec.blocks):
        n = f"b{i}"
        kind = b[0]
        if spec.kind == "cnn":
            if kind in ("stem", "conv"):
                _, cin, cout, k = b
                add(f"{n}_conv", f"nn.Conv2d({cin}, {cout}, {k}, padding={k // 2})")
                bn = norm(f"{n}_bn", cout)
                add(f"{n}_act", act)
                inner = f"self.{n}_conv(x)" if bn is None else f"{bn}(self.{n}_conv(x))"
                fwd.append(f"        x = self.{n}_act({inner})")
            elif kind == "strided":
                _, cin, cout = b
                add(f"{n}_conv", f"nn.Conv2d({cin}, {cout}, 3, stride=2, padding=1)")
                fwd.append(f"        x = F.relu(self.{n}_conv(x))")
            elif kind == "grouped":
                _, cin, cout, g = b
                add(f"{n}_conv", f"nn.Conv2d({cin}, {cout}, 3, padding=1, groups={g})")
                fwd.append(f"        x = torch.relu(self.{n}_conv(x))")
            elif kind == "depthwise":
                _, cin, cout = b
                add(f"{n}_dw", f"nn.Conv2d({cin}, {cin}, 3, padding=1, groups={cin}, bias=False)")
                add(f"{n}_pw", f"nn.Conv2d({cin}, {cout}, 1)")
                fwd.append(f"        x = self.{n}_pw(F.relu6(self.{n}_dw(x)))")
            elif kind == "residual":
                _, c = b
                add(f"{n}_conv1", f"nn.Conv2d({c}, {c}, 3, padding=1)")
                add(f"{n}_conv2", f"nn.Conv2d({c}, {c}, 3, padding=1)")
                bn = norm(f"{n}_bn", c)
                y = f"self.{n}_conv2(F.relu(self.{n}_conv1(x)))"
                fwd.append(f"        x = F.relu(x + {bn + '(' + y + ')' if bn else y})")
            elif kind == "concat":
                _, c, grow = b
                add(f"{n}_conv", f"nn.Conv2d({c}, {grow}, 3, padding=1)")
                fwd.append(f"        x = torch.cat([x, F.relu(self.{n}_conv(x))], 1)")
            elif kind == "branches":
                _, c, widths = b
                outs = []
                for j, wdt in enumerate(widths):
                    if j == 0:
                        add(f"{n}_br{j}", f"nn.Conv2d({c}, {wdt}, 1)")
                        outs.append(f"self.{n}_br{j}(x)")
                    elif j == 1:
                        add(f"{n}_br{j}", f"nn.Sequential(nn.Conv2d({c}, {wdt}, 1), nn.ReLU(), "
                                          f"nn.Conv2d({wdt}, {wdt}, 3, padding=1))")
                        outs.append(f"self.{n}_br{j}(x)")
                    else:
                        add(f"{n}_br{j}", f"nn.Conv2d({c}, {wdt}, 1)")
                        outs.append(f"self.{n}_br{j}(F.max_pool2d(x, 3, stride=1, padding=1))")
                fwd.append(f"        x = torch.relu(torch.cat([{', '.join(outs)}], dim=1))")
            elif kind == "pool":
                fwd.append(f"        x = F.{b[1]}_pool2d(x, 2)")
            elif kind == "se":
                _, c, r = b
                add(f"{n}_se", f"nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d({c}, {r}, 1), nn.ReLU(), "
                               f"nn.Conv2d({r}, {c}, 1), nn.Sigmoid())")
                fwd.append(f"        x = x * self.{n}_se(x)")
            elif kind == "shuffle":
                fwd.append(f"        x = channel_shuffle(x, {b[1]})")
            elif kind == "unet":
                _, c = b
                add(f"{n}_enc", f"nn.Conv2d({c}, {c}, 3, padding=1)")
                add(f"{n}_mid", f"nn.Conv2d({c}, {c}, 3, padding=1)")
                add(f"{n}_dec", f"nn.Conv2d({2 * c}, {c}, 3, padding=1)")
                fwd.append(f"        s = F.relu(self.{n}_enc(x))")
                fwd.append(f"        m = F.relu(self.{n}_mid(F.max_pool2d(s, 2)))")
                fwd.append(f"        x = F.relu(self.{n}_dec(torch.cat([F.interpolate(m, size=s.shape[2:]), s], 1)))")
            elif kind == "cond":
                _, c = b
                add(f"{n}_emb", f"nn.Linear({spec.cond}, {c})")
                add(f"{n}_conv", f"nn.Conv2d({c}, {c}, 3, padding=1)")
                fwd.append(f"        x = x + F.relu(self.{n}_conv(x) + self.{n}_emb(t)[:, :, None, None])")
            elif kind == "leaf":
                add(f"{n}_gate", f"DataGate({_width(spec, i)})")
                fwd.append(f"        x = self.{n}_gate(x)")
            elif kind == "wrapped":
                fwd.append("        x = soft_clip(x)")
        else:
            if kind == "linear":
                _, din, dout = b
                add(f"{n}_fc", f"nn.Linear({din}, {dout})")
                add(f"{n}_act", act)
                fwd.append(f"        x = self.{n}_act(self.{n}_fc(x))")
            elif kind == "residual":
                _, d = b
                add(f"{n}_fc", f"nn.Linear({d}, {d})")
                fwd.append(f"        x = x + self.{n}_fc(x)")
            elif kind == "norm":
                add(f"{n}_ln", f"nn.LayerNorm({b[1]})")
                fwd.append(f"        x = self.{n}_ln(x)")
            elif kind == "leaf":
                add(f"{n}_gate", f"DataGate({_width(spec, i)}, axis=-1)")
                fwd.append(f"        x = self.{n}_gate(x)")
            elif kind == "wrapped":
                fwd.append("        x = soft_clip(x)")
    width = _width(spec, len(spec.blocks))
    if spec.kind == "cnn":
        fwd.append("        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)")
    elif len(spec.in_shape) == 3:
        fwd.append("        x = x.mean(1)")
    if spec.hidden:
        add("hidden", f"nn.Sequential(nn.Linear({width}, {spec.hidden}), nn.ReLU(), nn.Dropout(0.1))")
        fwd.append("        x = self.hidden(x)")
        width = spec.hidden
    add("head", f"nn.Linear({width}, {spec.classes})")
    fwd.append("        return self.head(x)")
    return (_HEADER.format(label=spec.label()) + "\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n" + "\n".join(init) + f"\n\n    def forward(self, x{', t' if spec.cond else ''}):\n"
            + "\n".join(fwd)
            + "\n\n\ndef build_model():\n    torch.manual_seed(0)\n    return Net()\n")


def _width(spec: Spec, upto: int) -> int:
    """Channels (features) after the first ``upto`` blocks."""
    c = spec.in_shape[1] if spec.kind == "cnn" else spec.in_shape[-1]
    for b in spec.blocks[:upto]:
        if b[0] in ("stem", "conv", "strided", "grouped", "depthwise", "linear"):
            c = b[2]
        elif b[0] == "concat":
            c += b[2]
        elif b[0] == "branches":
            c = sum(b[2])
    return c


# --- invariants ----------------------------------------------------------------------------

def check_conversion(model: torch.nn.Module, specs, *, tmp: Path | None = None, **kwargs):
    """Convert ``model`` with its own weights and assert the invariants; returns the Conversion.
    Files go to ``tmp``, or to a temporary directory removed afterwards."""
    if tmp is not None:
        return _check_conversion(model, specs, tmp=tmp, **kwargs)
    with tempfile.TemporaryDirectory(prefix="aimgen-random-") as name:
        return _check_conversion(model, specs, tmp=Path(name), **kwargs)


def _check_conversion(model: torch.nn.Module, specs, *, tmp: Path, source_name: str = "model",
                      onnx: bool = False, atol: float = 1e-5, depends: tuple[str, ...] = (), flat: bool = True,
                      twice: bool = False, constructor_args: dict | None = None, **options):
    """``depends``: packages besides torch the output may import (a library's layer kept in it).
    ``flat``: the one-forward rendering must compute the same. ``twice``: a second conversion,
    under another global seed, must write the same bytes."""
    import aimgen
    from aimgen.validate import imported_modules

    conv = aimgen.convert(model, specs, source_name=source_name, constructor_args=constructor_args,
                          base_weights=model.state_dict(), **options)
    path = tmp / "generated_model.py"
    path.write_text(conv.source, encoding="utf-8")
    allowed = {"torch", *depends} | set(__import__("sys").stdlib_module_names)
    assert imported_modules(path) <= allowed, f"{source_name}: imports {imported_modules(path) - allowed}"

    aim = conv.build()
    counted = sum(p.numel() for p in aim.parameters())
    assert counted == conv.plan.aim_params, f"{source_name}: counted {counted} != planned {conv.plan.aim_params}"
    base_keys, aim_keys = set(model.state_dict()), set(aim.state_dict())
    assert base_keys <= aim_keys, f"{source_name}: base keys lost: {sorted(base_keys - aim_keys)[:5]}"
    new = [k for k in aim_keys - base_keys if "memory" not in k and ".update_" not in f".{k}"]
    assert not new, f"{source_name}: keys that are neither the base model's nor the memory's: {new[:5]}"
    x = conv.example_inputs(batch=3)
    model.eval()  # same function as the base model until trained
    aim.eval()
    with torch.no_grad():
        want, got = flat_tensors(model(*x)), flat_tensors(aim(*x))
    assert len(want) == len(got)
    for a, b in zip(want, got):
        err = (a - b).abs().max().item() if a.numel() else 0.0
        assert err <= atol, f"{source_name}: base weights in, output differs by {err:.3g}"
    aim.train()
    loss = sum(t.float().square().mean() for t in flat_tensors(aim(*x)) if t.is_floating_point())
    loss.backward()
    assert math.isfinite(loss.item())
    grads = [p.grad for p in aim.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    aim.eval()
    with torch.no_grad():
        a, b = flat_tensors(aim(*x)), flat_tensors(aim(*x))
    assert all(torch.equal(p, q) for p, q in zip(a, b)), f"{source_name}: eval() is not deterministic"
    if flat and not options.get("flat"):
        one = aimgen.convert(model, specs, source_name=source_name, constructor_args=constructor_args,
                             flat=True, **options).build()
        one.load_state_dict(aim.state_dict())
        with torch.no_grad():
            for p, q in zip(flat_tensors(one.eval()(*x)), flat_tensors(aim(*x))):
                assert (p - q).abs().max().item() <= 1e-6 if p.numel() else True, f"{source_name}: flat != blocks"
    if twice:
        with torch.random.fork_rng():
            torch.manual_seed(12345)
            again = aimgen.convert(model, specs, source_name=source_name, constructor_args=constructor_args,
                                   base_weights=model.state_dict(), **options)
        assert again.source == conv.source, f"{source_name}: a second conversion wrote other bytes"
    if onnx:
        from aimgen.onnx_checks import onnx_checks

        weights = None
        if conv.state_dict is not None:
            weights = tmp / "generated_model.pt"
            torch.save(conv.state_dict, weights)
        failed = [c.line() for c in onnx_checks(path, weights=weights) if not c.ok]
        assert not failed, f"{source_name}: ONNX: {failed}"
    return conv


def convert_spec(spec: Spec, tmp: Path, *, onnx: bool = False):
    """Write the spec as a model file, load it the way the CLI does, convert and check it."""
    from aimgen.loader import InputSpec, load_model

    text = render_source(spec)
    path = tmp / f"random_model_{hashlib.sha1(text.encode()).hexdigest()[:12]}.py"
    path.write_text(text, encoding="utf-8")
    loaded = load_model(f"{path}:build_model")
    specs = [InputSpec(spec.in_shape)] + ([InputSpec((1, spec.cond))] if spec.cond else [])
    conv = check_conversion(loaded.model, specs, source_name=spec.label(), tmp=tmp, onnx=onnx,
                            constructor_args=loaded.constructor_args)
    if any(b[0] in ("unet", "cond") for b in spec.blocks):  # long skips and side inputs do not hide the stages
        assert conv.plan.updates, f"{spec.label()}: no update block"
    return conv
