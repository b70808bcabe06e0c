"""What the breadth sweeps (timm_sweep.py, hf_sweep.py, torchvision_sweep.py) share: write the
model builders to a file, as a user's model file, then convert and check each model in turn, one
line per model."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

import aimgen
from aimgen.loader import InputSpec, flat_tensors, load_model


def run(file_text: str, checks: list[tuple[str, Callable[[Path], str]]], file_name: str = "models.py") -> int:
    """Write ``file_text`` to a temporary ``file_name``; run each (name, check(path)) and print
    ``name ok ...`` or ``name refused: <first line of the reason>``. Returns how many passed."""
    torch.set_num_threads(1)
    ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / file_name
        source.write_text(file_text)
        for name, check in checks:
            try:
                line = check(source)
                ok += 1
            except Exception as err:  # noqa: BLE001 - a sweep reports every failure and goes on
                text = str(err).strip().splitlines()
                line = f"refused: {text[0][:400] if text else type(err).__name__}"
            print(f"{name} {line}", flush=True)
    print(f"{ok} of {len(checks)} converted")
    return ok


def run_table(header: str, models: dict, names: list[str], file_name: str, every_output: bool = True) -> int:
    """The sweeps' common case: ``models`` {name: (constructor call, inputs)}, each written as a
    builder ``def name(): return <call>`` below the ``header`` imports, converted and checked."""
    text = header + "".join(f"def {n}():\n    return {models[n][0]}\n" for n in names)
    return run(text, [(n, lambda path, n=n: check(path, n, models[n][1], every_output)) for n in names], file_name)


def example(spec: InputSpec, batch: int) -> torch.Tensor:
    """A seeded input like ``spec`` at ``batch``: ids below 100 for int64 inputs."""
    g = torch.Generator().manual_seed(1)
    if spec.dtype == torch.int64:
        return torch.randint(0, 100, (batch, *spec.shape[1:]), generator=g)
    return torch.randn(batch, *spec.shape[1:], generator=g)


def check(source: Path, name: str, specs: InputSpec | list[InputSpec], every_output: bool = True) -> str:
    """Convert ``source:name`` as ``aimgen convert`` does (constructor calls recorded) and check:
    every base state_dict key kept, base weights in -> the base function out at batch 2 (max abs
    difference over every output tensor, or the first one only), and one training step."""
    start = time.time()
    specs = specs if isinstance(specs, list) else [specs]
    torch.manual_seed(0)
    loaded = load_model(f"{source}:{name}")
    base = loaded.model.eval()
    conv = aimgen.convert(base, specs, source_name=name, constructor_args=loaded.constructor_args,
                          base_weights=base.state_dict())
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    missing = set(base.state_dict()) - set(aim.state_dict())
    if missing:
        raise AssertionError(f"base state_dict keys not kept: {sorted(missing)[:5]}")
    x = [example(spec, 2) for spec in specs]
    with torch.no_grad():
        pairs = list(zip(flat_tensors(aim.eval()(*x)), flat_tensors(base(*x))))
        diff = max((a - b).abs().max().item() for a, b in (pairs if every_output else pairs[:1]))
    sum(t.float().square().mean() for t in flat_tensors(aim.train()(*x)) if t.is_floating_point()).backward()
    if not diff <= 1e-4:
        raise AssertionError(f"base weights in, output differs by {diff:.2e}")
    tapped, seen = conv.plan.layer_counts()
    return (f"ok taps={tapped}/{seen} updates={len(conv.plan.updates)} diff={diff:.1e} "
            f"lines={len(conv.source.splitlines())} "
            + ("size=example-only " if "input_size" in conv.report_dict() else "")
            + f"{time.time() - start:.0f}s")
