"""The three arms: the base model, its AiM version and the base widened to the AiM count.

The base is built from the user's file with the data's input channels and classes when its
class or builder takes them (keywords ``in_channels`` / ``num_classes``, see ``build_base``).
The AiM arm is ``aimgen.convert(base, example, options=...)`` built with ``Conversion.build``
(the public API only). The "wider" arm: aimgen cannot re-parameterise an arbitrary model (it
may come from a zero-argument builder), so the base is widened generically: its output layer
(the last ``Linear`` or ``ConvNd`` whose output is the model's output) gets a parallel
two-layer branch ``in -> h -> classes`` (ReLU between, same kernel geometry as the layer for
convolutions), added to the layer's output. ``h`` is chosen so the total parameter count
matches the AiM model's as closely as one hidden unit allows: "the same network plus an extra
hidden path of matched size", which is capacity without memory.

Within a seed every arm starts from the same weights wherever it shares a layer with the base
(``share_init``).
"""
from __future__ import annotations

import copy
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..taps import REGISTRY
from ..weights import share_base_weights
from .errors import ExperimentError

ARMS = ("base", "aim", "wider")
DATA_KEYWORDS = ("in_channels", "num_classes")


# ------------------------------------------------------------------------------ the base model


@dataclass
class BaseModel:
    """The base model built for the data, and where it came from."""

    model: nn.Module
    label: str            # FILE.py:NAME
    built_with: dict      # the keywords it was built with ({} when built with no argument)
    published_as: str | None  # the file's PUBLISHED_AS (e.g. "FCN"): which published results to show


def _module_of(path: Path):
    """The module aimgen's loader imported ``path`` as (it registers it in sys.modules)."""
    target = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == target:
            return module
    return None


def load_base(target: str):
    """The user's model built with no argument (aimgen's loader), and its file's module."""
    from ..loader import load_model

    loaded = load_model(target)
    return loaded, _module_of(loaded.path)


def build_base(target: str, in_channels: int | None, num_classes: int, loaded=None) -> BaseModel:
    """The model named by ``FILE.py[:NAME]``, built for the data.

    The convention (one for every example in examples/): NAME is a class or a builder function
    callable with no argument (so ``aimgen convert`` can build it); when it also accepts the
    keywords ``in_channels`` and/or ``num_classes``, the experiment passes the data's values.
    Otherwise the zero-argument model is used as it is and ``check_output`` refuses a mismatch."""
    loaded, module = loaded or load_base(target)
    label = f"{loaded.path.name}:{loaded.name}"
    factory = getattr(module, loaded.name, None) if module is not None else None
    published = getattr(module, "PUBLISHED_AS", None) if module is not None else None
    kwargs: dict = {}
    if factory is not None and (inspect.isclass(factory) or inspect.isfunction(factory)):
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        wanted = {"in_channels": in_channels, "num_classes": num_classes}
        kwargs = {k: v for k, v in wanted.items() if k in params and v is not None}
    if not kwargs:
        return BaseModel(loaded.model, label, {}, published)
    try:
        model = factory(**kwargs)
    except Exception as err:
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise ExperimentError(f"{label}: building it for the data ({loaded.name}({args})) failed: "
                              f"{type(err).__name__}: {err}.",
                              hint="Make the class or builder accept these keywords, or drop them from "
                              "its signature to have it built with no argument.") from err
    return BaseModel(model, label, kwargs, published)


def infer_channels(model: nn.Module) -> int | None:
    """The input channels of the first layer that reads channels (a convolution of any kind),
    or None (then the data decides)."""
    for m in model.modules():
        kind = REGISTRY.kind_for(m)
        if kind is not None and kind.in_arg == "in_channels":
            return kind.sizes(m)[0]
    return None


def check_output(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, label: str) -> None:
    """Run the model once on two samples: it must return ``(2, num_classes)`` logits."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except Exception as err:
        raise ExperimentError(f"{label}: running the model on the data's input shape {(2, *input_shape)} "
                              f"failed: {type(err).__name__}: {err}.",
                              hint="Check --input-size and the model's expected input channels (a class or "
                              "builder that takes in_channels= gets the data's).") from err
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ExperimentError(f"{label}: the model returns {shape} for a batch of 2; an experiment needs "
                              "one row of class logits per sample, shape (batch, classes).",
                              hint="Point aimgen at a classifier, or wrap the model so it returns logits.")
    if out.shape[1] != num_classes:
        raise ExperimentError(f"{label}: the model outputs {out.shape[1]} values per sample but the data has "
                              f"{num_classes} classes.",
                              hint=f"Build the model with {num_classes} outputs: give its class or zero-argument "
                              f"builder a num_classes keyword (the experiment passes num_classes={num_classes}), "
                              f"or build it with num_classes={num_classes} in a zero-argument build_model function.")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reinitialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh from ``seed`` (layers
    re-run their own ``reset_parameters``, so each keeps its usual PyTorch init)."""
    torch.manual_seed(seed)
    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()
    return fresh


def share_init(src: nn.Module, dst: nn.Module, conversion) -> int:
    """Copy ``src``'s weights (a base model) into the AiM model ``dst`` built from
    ``conversion``, so arms differ only in what they add: every base tensor goes to its own key,
    and a tapped layer's kind puts it into its (possibly widened) weight; the memory's weights
    keep ``dst``'s own init. Returns how many base tensors were placed."""
    counts = share_base_weights(dst, src.state_dict(), conversion)
    return counts["copied"] + (counts["widened"] if conversion.plan.form == "literal" else 0)


# -------------------------------------------------------------------------------- wider arm


class ParallelBranch(nn.Module):
    """``layer(x) + up(relu(down(x)))``: the output layer plus an extra hidden path of
    ``hidden`` units (its tap kind builds ``down`` and ``up``). The wider arm's extra
    parameters."""

    def __init__(self, layer: nn.Module, hidden: int):
        super().__init__()
        self.layer = layer
        self.down, self.up = _branch(layer, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) + self.up(torch.relu(self.down(x)))


def _branch(layer: nn.Module, hidden: int):
    kind = REGISTRY.kind_for(layer)
    return None if kind is None else kind.parallel_branch(layer, hidden)


def _per_hidden_unit(layer: nn.Module) -> int:
    """Parameters one hidden unit of the branch costs (the count is linear in the width)."""
    return sum(count_params(m) for m in _branch(layer, 1))


def output_layer(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """The qualified name of the last weight layer called whose output has the model's output
    shape and whose tap kind can host a parallel branch (found by running the model once)."""
    calls: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: calls.append((name, tuple(out.shape))))
             for name, m in model.named_modules() if _branch(m, 1) is not None]
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    for name, shape in reversed(calls):
        if shape == tuple(out.shape) and name:
            return name
    raise ExperimentError("the wider arm needs the model's output to come from a weight layer that can take "
                          "a parallel branch (a Linear, or a convolution with groups=1), and none was found.",
                          hint="Run with --arms base,aim to compare without the wider control.")


def widened(base: nn.Module, extra: int, input_shape: tuple[int, ...], seed: int) -> tuple[nn.Module, int]:
    """``base`` plus a parallel hidden branch on its output layer with about ``extra``
    parameters (see the module docstring). Returns the model and the branch's width."""
    name = output_layer(base, input_shape)
    model = copy.deepcopy(base)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    layer = getattr(parent, attr)
    hidden = max(1, round(extra / _per_hidden_unit(layer)))
    torch.manual_seed(seed + 7919)  # the branch's own draw; the shared layers are the base's
    setattr(parent, attr, ParallelBranch(layer, hidden))
    return model, hidden


# ------------------------------------------------------------------------------- the factories


@dataclass
class Arm:
    """How to build one arm's model for a seed."""

    name: str
    build: Callable[[int], nn.Module]


def make_arms(base: nn.Module, input_shape: tuple[int, ...], num_classes: int, options,
              names: Sequence[str], label: str) -> tuple[list[Arm], dict]:
    """Build the arm factories and check each arm once on the data's shape, before any
    training (a conversion or shape error must not surface after the base arm trained).
    ``options`` is an ``aimgen.Options``."""
    import aimgen

    check_output(base, input_shape, num_classes, label)
    info: dict = {"base_params": count_params(base)}
    arms = [Arm("base", lambda seed: reinitialised(base, seed))]
    conversion = None
    if "aim" in names or "wider" in names:
        conversion = aimgen.convert(base, torch.zeros(1, *input_shape), options=options, source_name=label)
        info["aim_params"] = conversion.plan.aim_params
        info["aim_plan"] = conversion.plan.summary()
        info["memory_shape"] = list(getattr(conversion.plan, "memory_shape", None) or [])
        info["memory_floats"] = getattr(conversion.plan, "memory_params", None)

    def build_aim(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = conversion.build(load_weights=False)
        share_init(reinitialised(base, seed), model, conversion)
        return model

    if "aim" in names:
        check_output(build_aim(0), input_shape, num_classes, f"{label} (AiM)")
        arms.append(Arm("aim", build_aim))
    if "wider" in names:
        extra = conversion.plan.aim_params - count_params(base)
        probe, hidden = widened(base, extra, input_shape, 0)
        check_output(probe, input_shape, num_classes, f"{label} (wider)")
        info["wider_params"], info["wider_hidden"] = count_params(probe), hidden
        info["wider_layer"] = output_layer(base, input_shape)
        arms.append(Arm("wider", lambda seed: widened(reinitialised(base, seed), extra, input_shape, seed)[0]))
    return [a for a in arms if a.name in names], info
