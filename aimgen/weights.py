"""Base weights in, same function out.

Every base tensor is copied under its own key (aimgen keeps the base model's state_dict keys).
A tapped layer's weight is widened: its original values keep their slots and the slots that
read memory start at zero, so the AiM model computes what the base model computed until it is
trained. Tensors the base model did not have (memory, update blocks) are created with
PyTorch's usual initialisation, from a fixed seed so the written file is reproducible.

Weights are loaded with ``torch.load(weights_only=True)`` (or safetensors): a pickle that is
not a plain state_dict is refused, never executed.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import InternalError, WeightsError
from .taps import REGISTRY, TapSite, TapWidth

if TYPE_CHECKING:
    from .api import Conversion


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file.", hint="Give a state_dict saved with torch.save.")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"{path}: reading .safetensors needs the safetensors package.",
                               hint="pip install safetensors, or save the state_dict with torch.save.") from None
        try:
            return dict(load_file(str(path)))
        except Exception as err:
            raise WeightsError(f"{path}: not a readable safetensors file: {err}.") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"{path}: refused: it is not a plain state_dict of tensors (torch.load with weights_only=True "
            f"would have to run code from the pickle: {str(err).splitlines()[0][:160]}). Nothing from it was executed.",
            hint="Save the weights with torch.save(model.state_dict(), path).") from None
    except Exception as err:
        raise WeightsError(f"{path}: cannot be read as a state_dict: {type(err).__name__}: {err}.",
                           hint="Save the weights with torch.save(model.state_dict(), path).") from None
    return check_plain(data, str(path))


def check_plain(data, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in data.items()):
        kind = type(data).__name__
        hint = "Save model.state_dict() itself."
        if isinstance(data, dict) and any(isinstance(v, dict) for v in data.values()):
            nested = [k for k, v in data.items() if isinstance(v, dict)]
            hint = f"It looks like a checkpoint; save its {nested[0]!r} entry alone with torch.save."
        raise WeightsError(f"{where}: not a plain state_dict (a {kind} mapping names to tensors was expected).",
                           hint=hint)
    return data


def _fit_errors(given: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = sorted(f"{k}: {tuple(given[k].shape)} given, {tuple(expected[k].shape)} expected"
                    for k in set(given) & set(expected) if given[k].shape != expected[k].shape)

    def listing(items):
        return ", ".join(items[:8]) + (f" (and {len(items) - 8} more)" if len(items) > 8 else "")

    out = []
    if missing:
        out.append(f"missing keys: {listing(missing)}")
    if unexpected:
        out.append(f"unexpected keys: {listing(unexpected)}")
    if shapes:
        out.append(f"shape mismatches: {listing(shapes)}")
    return out


def convert_weights(base: dict[str, torch.Tensor], conversion: "Conversion",
                    where: str = "the base weights") -> tuple[dict[str, torch.Tensor], dict]:
    """(AiM state_dict, counts) from a base state_dict; refuses weights that do not fit.

    Every base tensor keeps its key. In the sum form a tapped layer's weight keeps its shape and
    its memory weights (their own keys) start at zero; in the literal form the widened weight
    holds the base weight in its original slots and zeros in the memory's. Either way the AiM
    model computes what the base model computed until it is trained."""
    base = check_plain(base, where)
    errors = _fit_errors(base, conversion.base_model.state_dict())
    if errors:
        raise WeightsError(f"{where} do not fit {conversion.source_name}: " + "; ".join(errors) + ".",
                           hint="Give the state_dict of the same model (same constructor arguments).")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = conversion.build(load_weights=False)
    target = fresh.state_dict()
    plan = conversion.plan
    widened, memory_keys = {}, set()
    if plan is not None:
        for t in plan.taps:
            if plan.form == "literal":
                widened[t.weight] = t
            else:
                memory_keys.add(plan.memory_keys[t.node])
    out: dict[str, torch.Tensor] = {}
    counts = {"copied": 0, "widened": 0, "created": 0, "dropped": 0}
    for key, value in target.items():
        if key in widened and key in base:
            site = widened[key]
            kind = REGISTRY.get(site.kind)
            width = plan.width(site)
            zeros = torch.zeros(kind.memory_shape(site, width), dtype=value.dtype)
            new = kind.to_literal(site, base[key].to(value.dtype), zeros, width)
            if new.shape != value.shape:
                raise InternalError(f"{key}: widened to {tuple(new.shape)} but the model has {tuple(value.shape)}.")
            out[key] = new
            counts["widened"] += 1
        elif key in memory_keys:
            out[key] = torch.zeros_like(value)
            counts["widened"] += 1
        elif key in base:
            if base[key].shape != value.shape:
                raise WeightsError(f"{key}: {tuple(base[key].shape)} given, {tuple(value.shape)} expected.")
            out[key] = base[key].detach().clone().to(value.dtype)
            counts["copied"] += 1
        else:
            out[key] = value.detach().clone()
            counts["created"] += 1
    counts["dropped"] = len(set(base) - set(target))
    return out, counts


def convert_form(state_dict: dict[str, torch.Tensor], model: torch.nn.Module, to: str) -> dict[str, torch.Tensor]:
    """The same weights in the other form of a generated model, so the two compute the same
    outputs: ``to='literal'`` folds each layer's memory weights into its widened weight,
    ``to='sum'`` splits them out again. ``model`` is the sum form of the model (the default
    output of ``aimgen convert``; its layers tell which weights read the memory and how)::

        sum_model = build_model()                       # from the generated file
        literal_sd = convert_form(sum_model.state_dict(), sum_model, to="literal")
        sum_sd = convert_form(literal_sd, sum_model, to="sum")
    """
    if to not in ("sum", "literal"):
        raise WeightsError(f"to={to!r}: the forms are 'sum' and 'literal'.")
    out = dict(state_dict)
    for weight, memory, site, width in _sum_layout(model):
        kind = REGISTRY.get(site.kind)
        if to == "literal":
            if memory not in out:
                raise WeightsError(f"{memory}: missing; these weights are not in the sum form.")
            out[weight] = kind.to_literal(site, out[weight], out.pop(memory), width)
        else:
            if memory in out:
                raise WeightsError(f"{memory}: present already; these weights are in the sum form.")
            out[weight], out[memory] = kind.to_sum(site, out[weight], width)
    return out


def _sum_layout(model: torch.nn.Module):
    """(weight key, memory key, site, width) of every layer of a sum-form model that reads the
    memory: its memory-reading layers (``memory_weight``) and functional ones (``X_memory``)."""
    params = dict(model.named_parameters())
    for name, module in model.named_modules():
        memory = getattr(module, "memory_weight", None)
        kind = REGISTRY.kind_for(module)
        prefix = f"{name}." if name else ""
        if isinstance(memory, torch.nn.Parameter) and kind is not None:
            base = module.weight
            transpose = kind.key == "conv_transpose"
            k = memory.shape[0] if transpose else memory.shape[1]
            kernel = tuple(base.shape[2:])
            pointwise = bool(kernel) and tuple(memory.shape[2:]) != kernel
            groups = getattr(module, "groups", 1)
            in_size = base.shape[0] if transpose else base.shape[1] * groups
            out_size = base.shape[1] * groups if transpose else base.shape[0]
            site = TapSite(node="", qualname=name, layer_type=type(module).__name__, kind=kind.key,
                           axis=-1 if not kernel else 1, in_size=in_size, out_size=out_size, groups=groups,
                           kernel=kernel, spatial=(), weight=prefix + "weight")
            yield prefix + "weight", prefix + "memory_weight", site, TapWidth(k, "pointwise" if pointwise else "full")
    for key, memory in params.items():
        if key.endswith("_memory") and key[: -len("_memory")] in params:
            base = params[key[: -len("_memory")]]
            kernel = tuple(base.shape[2:])
            site = TapSite(node="", qualname=key, layer_type="functional",
                           kind="functional_conv" if kernel else "functional_linear", axis=1 if kernel else -1,
                           in_size=base.shape[1], out_size=base.shape[0], groups=1, kernel=kernel, spatial=(),
                           weight=key[: -len("_memory")], functional=True)
            pointwise = bool(kernel) and tuple(memory.shape[2:]) != kernel
            yield site.weight, key, site, TapWidth(memory.shape[1], "pointwise" if pointwise else "full")
