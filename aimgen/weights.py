"""Weights: reading a checkpoint (the one ``load_state_dict``), loading it into a model, and base
weights in, same function out.

Reading: ``.pt``/``.pth`` with ``torch.load(weights_only=True)`` (a pickle that is not plain
tensors is refused, never executed) or ``.safetensors``. What training loops save around a
state_dict is recognised and said: a ``{'model': ...}`` or ``{'state_dict': ...}`` wrapper, and
the ``module.`` prefix of DistributedDataParallel (or ``_orig_mod.`` of torch.compile) on every key.

Base weights in: every base tensor is copied under its own key (aimgen keeps the base model's
state_dict keys). A tapped layer's weight is widened: its original values keep their slots and
the slots that read memory start at zero, so the AiM model computes what the base model computed
until it is trained. Tensors the base model did not have (memory, update blocks) are created
with PyTorch's usual initialisation, from a fixed seed so the written file is reproducible.

Partial checkpoints (fine-tuning with a new head): ``Checkpoint(..., partial=True)`` loads every
tensor whose key and shape match the base model and leaves the others at the base model's own
initialisation, listing them, as timm's and torchvision's checkpoint filtering do.
"""
from __future__ import annotations

import copy
import math
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import InternalError, WeightsError
from .loader import flat_tensors
from .taps import REGISTRY, TapSite, TapWidth

#: Entries a training loop wraps a state_dict in, tried in this order.
WRAPPERS = ("state_dict", "model", "model_state_dict", "module")
#: Prefixes a wrapped model puts on every key: DistributedDataParallel / DataParallel, torch.compile.
PREFIXES = ("module.", "_orig_mod.")
#: The AiM model computes the base model's function with base weights in: |aim - base| <=
#: MATCH_ATOL + MATCH_RTOL * |base| on every output element (what the tests hold every model to).
MATCH_ATOL, MATCH_RTOL = 1e-5, 1e-5
SAVE_HINT = "Save the weights with torch.save(model.state_dict(), path) and give that file."


# ----------------------------------------------------------------------------- reading


@dataclass
class Checkpoint:
    """A state_dict and where it came from: ``source`` names it in messages, ``notes`` say what
    was unwrapped or stripped, ``partial`` asks to load only what matches (see the module doc).

    ``Checkpoint.read(path_or_state_dict, partial=True)`` is what ``base_weights=`` takes for
    a partial load; a path or a dict alone means an exact one."""

    state_dict: dict[str, torch.Tensor]
    source: str = "the base weights"
    notes: list[str] = field(default_factory=list)
    partial: bool = False

    @classmethod
    def read(cls, source: "str | Path | Mapping[str, Any] | Checkpoint", *, partial: bool = False,
             where: str | None = None) -> "Checkpoint":
        if isinstance(source, Checkpoint):
            return Checkpoint(source.state_dict, source.source, list(source.notes), partial or source.partial)
        if isinstance(source, (str, Path)):
            data, label = _read_file(Path(source)), str(source)
        else:
            data, label = source, where or "the base weights"
        state, notes = unwrap(data, label)
        return cls(state, label, notes, partial)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The plain state_dict in a weights file, unwrapped (see ``unwrap``); anything else is
    refused with what to do, and nothing from the file is executed."""
    return Checkpoint.read(Path(path)).state_dict


def _read_file(path: Path) -> Any:
    if not path.exists():
        raise WeightsError(f"weights file {path}: no such file.", hint="Give a state_dict saved with torch.save.",
                           field="weights")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"{path}: reading .safetensors needs the safetensors package, which is not "
                               "installed.", hint="pip install safetensors (or 'aimgen[safetensors]'), or save "
                               "the state_dict with torch.save.") from None
        try:
            return dict(load_file(str(path)))
        except Exception as err:
            raise WeightsError(f"{path}: not a readable safetensors file: {_plain(err)}.") from None
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the user's business
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"a pickled {found.group(1)}" if found else "pickled Python objects"
        raise WeightsError(
            f"{path}: refused: it holds {what} (a whole model or other objects), not a plain state_dict of "
            "tensors. Loading it would run code from the file, so aimgen read none of it: nothing from it was "
            "executed.", hint=SAVE_HINT) from None
    except Exception as err:
        raise WeightsError(f"{path}: cannot be read as a state_dict: {_plain(err)}.", hint=SAVE_HINT) from None


def _plain(err: BaseException) -> str:
    """The first line of a library's error, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return (text.splitlines()[0] if text else type(err).__name__).rstrip(".")


def unwrap(data: Any, where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(plain state_dict, notes): a ``{'model': ...}``/``{'state_dict': ...}`` wrapper and a
    ``module.`` prefix on every key are removed, each with a note saying so."""
    notes = []
    if isinstance(data, dict) and not _is_plain(data):
        for key in WRAPPERS:
            if isinstance(data.get(key), dict) and _is_plain(data[key]):
                others = sorted(str(k) for k in data if k != key)
                notes.append(f"took the {key!r} entry of a checkpoint"
                             + (f" (ignored: {', '.join(others[:6])}{', ...' if len(others) > 6 else ''})"
                                if others else ""))
                data = data[key]
                break
    state = check_plain(data, where)
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            kind = "DistributedDataParallel/DataParallel" if prefix == "module." else "torch.compile"
            notes.append(f"stripped the {kind} prefix {prefix!r} from all {len(state)} keys")
    return state, notes


def _is_plain(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


def check_plain(data, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in data.items()):
        kind = type(data).__name__
        hint = "Save model.state_dict() itself."
        if isinstance(data, dict) and any(isinstance(v, dict) for v in data.values()):
            nested = [k for k, v in data.items() if isinstance(v, dict)]
            hint = (f"It looks like a checkpoint, but none of its entries ({', '.join(map(repr, nested[:6]))}) is a "
                    f"state_dict aimgen knows; save the model's entry alone with torch.save.")
        raise WeightsError(f"{where}: not a plain state_dict (a {kind}; a mapping of names to tensors was expected).",
                           hint=hint)
    return data


# ----------------------------------------------------------------------------- fitting


def _listing(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def fit_problems(given: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """What keeps ``given`` from loading strictly where ``expected`` is wanted (both map keys to
    tensors or shapes): the missing, unexpected and misshapen keys, by name."""
    def shape(v):
        return tuple(v.shape) if hasattr(v, "shape") else tuple(v)

    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {shape(given[k])} given, {shape(expected[k])} expected"
              for k in expected if k in given and shape(given[k]) != shape(expected[k])]
    return [f"{what} ({len(names)}): {_listing(names)}" for what, names in
            (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if names]


_fit_errors = fit_problems  # the name convert_weights uses


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
              hint: str = "Give the state_dict written with this file (OUT.pt from `aimgen convert "
              "--weights`), or a checkpoint of this model.") -> None:
    """``model.load_state_dict(state)`` strictly, or one message naming every key that does not fit."""
    problems = fit_problems(state, model.state_dict())
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems) + ".",
                           hint=hint + " Nothing was written.")
    model.load_state_dict(state)


@dataclass
class PartialMatch:
    """What a partial checkpoint gave: every base tensor, from the file where key and shape
    match, else the base model's initialisation (``left``: key -> why)."""

    state_dict: dict[str, torch.Tensor]
    loaded: list[str]
    left: dict[str, str]
    ignored: list[str]

    def lines(self) -> list[str]:
        out = [f"partial load: {len(self.loaded)} of {len(self.state_dict)} base tensors from the file"]
        if self.left:
            out.append(f"left at their initialisation ({len(self.left)}): "
                       + "; ".join(f"{k} ({why})" for k, why in list(self.left.items())[:12])
                       + (f"; ... ({len(self.left) - 12} more)" if len(self.left) > 12 else ""))
        if self.ignored:
            out.append(f"in the file but not in the model, ignored ({len(self.ignored)}): {_listing(self.ignored)}")
        return out


def match_partial(given: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]) -> PartialMatch:
    """Every key of ``base``, from ``given`` where the key and shape match (timm-style filtering)."""
    state, loaded, left = {}, [], {}
    for key, value in base.items():
        if key in given and tuple(given[key].shape) == tuple(value.shape):
            state[key] = given[key].detach().to(value.dtype)
            loaded.append(key)
        else:
            state[key] = value.detach().clone()
            left[key] = (f"{tuple(given[key].shape)} in the file, {tuple(value.shape)} in the model"
                         if key in given else "not in the file")
    if not loaded:
        raise WeightsError("the partial checkpoint has no tensor whose key and shape match the model.",
                           hint="Check that it is a checkpoint of this architecture (its keys look like: "
                           f"{_listing(sorted(given), 4)}; the model's: {_listing(list(base), 4)}).")
    return PartialMatch(state, loaded, left, [k for k in given if k not in base])


# ----------------------------------------------------------------------------- base weights in


def convert_weights(base, conversion, where: str = "the base weights") -> tuple[dict[str, torch.Tensor], dict]:
    """(AiM state_dict, report) from base weights: a path, a state_dict or a ``Checkpoint``
    (partial or not). The report counts what was copied, widened and created, says what was
    unwrapped and, for a partial checkpoint, what was left at its initialisation, and holds the
    measured difference between the base and the AiM model on the example input."""
    ckpt = Checkpoint.read(base, where=where)
    base_model = conversion.base_model
    state, extra = ckpt.state_dict, {"source": ckpt.source, "notes": list(ckpt.notes)}
    if ckpt.partial:
        match = match_partial(state, base_model.state_dict())
        state = match.state_dict
        extra.update(partial=True, loaded=len(match.loaded), left=match.left, ignored=match.ignored)
        extra["notes"] += match.lines()
    out, counts = map_base_weights(state, conversion, ckpt.source)
    counts.update(extra)
    counts["base_match"] = base_match(base_model, state, conversion, out)
    return out, counts


def base_match(base_model: nn.Module, base_state: Mapping[str, torch.Tensor], conversion,
               aim_state: Mapping[str, torch.Tensor]) -> dict:
    """The base model (with ``base_state``) and the AiM model (with ``aim_state``) in eval() on
    the conversion's example input: the largest absolute difference over all outputs, and
    whether every element is within MATCH_ATOL + MATCH_RTOL * |base|."""
    reference = copy.deepcopy(base_model)
    reference.load_state_dict(base_state)
    with torch.random.fork_rng(devices=[]):  # building draws random weights: leave the caller's RNG alone
        aim = conversion.build(load_weights=False)
    aim.load_state_dict(aim_state)
    x = conversion.example_inputs()
    with torch.no_grad():
        want = flat_tensors(reference.eval()(*x))
        try:
            got = flat_tensors(aim.eval()(*x))
        except Exception as err:
            raise InternalError(f"the generated model fails on the example input{_generated_line(err)}: "
                                f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}",
                                hint="This is a bug in aimgen: please report it with the model; "
                                "--no-validate or --flat may get past it meanwhile.") from err
    worst, ok = 0.0, len(want) == len(got)
    for a, b in zip(want, got):
        if a.shape != b.shape:
            ok, worst = False, math.inf
            break
        if a.numel() and a.is_floating_point():
            diff = (b.double() - a.double()).abs()
            worst = max(worst, float(diff.max()))
            ok = ok and bool((diff <= MATCH_ATOL + MATCH_RTOL * a.double().abs()).all())
        elif a.numel():
            ok = ok and torch.equal(a, b)
    return {"max_abs_diff": worst, "ok": ok, "atol": MATCH_ATOL, "rtol": MATCH_RTOL,
            "inputs": [list(t.shape) for t in x]}


def _generated_line(err: BaseException) -> str:
    """' at line N of the generated source' for the innermost frame of generated code, if any."""
    import traceback

    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<aimgen_generated")]
    return f" at line {lines[-1]} of the generated source" if lines else ""


def map_base_weights(base: dict[str, torch.Tensor], conversion,
                     where: str = "the base weights") -> tuple[dict[str, torch.Tensor], dict]:
    """(AiM state_dict, counts) from a base state_dict; refuses weights that do not fit.

    Every base tensor keeps its key. In the sum form a tapped layer's weight keeps its shape and
    its memory weights (their own keys) start at zero; in the literal form the widened weight
    holds the base weight in its original slots and zeros in the memory's. Either way the AiM
    model computes what the base model computed until it is trained."""
    base = check_plain(base, where)
    base_model = conversion.base_model
    errors = _fit_errors(base, base_model.state_dict())
    if errors:
        raise WeightsError(f"{where} do not fit {conversion.source_name}: " + "; ".join(errors) + ".",
                           hint="Give the state_dict of the same model (same constructor arguments), or load only "
                           "what matches with `partial=True` (fine-tuning with a new head).",
                           field="partial")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = conversion.build(load_weights=False)
    return _base_into(base, fresh.state_dict(), conversion.plan, memory="zeros", groups=_same_tensors(fresh))


def share_base_weights(model: nn.Module, base: Mapping[str, torch.Tensor], conversion) -> dict:
    """Copy a base state_dict into an AiM model built from ``conversion``, in place, keeping the
    model's own initial memory weights (where ``map_base_weights`` zeroes them): two models that
    differ only by memory then start from the same base weights. Returns the counts."""
    out, counts = _base_into(dict(base), model.state_dict(), conversion.plan, memory="keep",
                             groups=_same_tensors(model))
    model.load_state_dict(out)
    return counts


def _same_tensors(model: nn.Module) -> list[list[str]]:
    """Groups of state_dict keys that are one tensor: a module the model holds under two names
    (timm's CoaT blocks hold their stage's shared conv as ``cpe``, the root as ``cpe1``)."""
    groups: dict[int, list[str]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(value), []).append(key)
    return [g for g in groups.values() if len(g) > 1]


def _base_into(base: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], plan,
               memory: str, groups: list[list[str]] = ()) -> tuple[dict[str, torch.Tensor], dict]:
    """``target`` with every base tensor put in its place: same key, and for a tapped layer in
    the literal form the base weight in the original slots of the widened one (its kind knows
    the layout). The memory's weights are zero (``memory="zeros"``) or ``target``'s own. Keys of
    one tensor (``groups``) all get the value decided for one of them: loading them in turn
    would otherwise leave the tensor with whichever came last (a memory weight the plan names
    under one key and zeroes, left at its drawn value under the other)."""
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
            if memory == "zeros":
                mem = torch.zeros(kind.memory_shape(site, width), dtype=value.dtype)
            else:
                mem = kind.to_sum(site, value, width)[1]
            new = kind.to_literal(site, base[key].to(value.dtype), mem, width)
            if new.shape != value.shape:
                raise InternalError(f"{key}: widened to {tuple(new.shape)} but the model has {tuple(value.shape)}.",
                                    hint="This is a bug in aimgen; please report it.")
            out[key] = new
            counts["widened"] += 1
        elif key in memory_keys:
            out[key] = torch.zeros_like(value) if memory == "zeros" else value.detach().clone()
            counts["widened"] += 1
        elif key in base:
            if base[key].shape != value.shape:
                raise WeightsError(f"{key}: {tuple(base[key].shape)} given, {tuple(value.shape)} expected.")
            out[key] = base[key].detach().clone().to(value.dtype)
            counts["copied"] += 1
        else:
            out[key] = value.detach().clone()
            counts["created"] += 1
    decided = {k for k in out if k in base or k in memory_keys or k in widened}
    for group in groups:
        source = next((k for k in group if k in decided), None)
        for key in group if source is not None else ():
            if key not in decided:
                out[key] = out[source]
                counts["created"] -= 1
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
        if not kind.literal:   # the literal form leaves the layer untapped: its memory weights are zero
            if to == "sum":
                out.setdefault(memory, torch.zeros_like(model.get_parameter(memory)))
            elif memory in out and out.pop(memory).any():
                raise WeightsError(f"{memory}: a {site.layer_type} reads the memory only in the sum form; the literal "
                                   "form has no weights for that.", hint="Keep these weights in the sum form.")
            continue
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
        if isinstance(memory, torch.nn.Parameter) and kind is not None and not kind.literal:
            site = TapSite(node="", qualname=name, layer_type=type(module).__name__, kind=kind.key, axis=-1,
                           in_size=0, out_size=0, groups=1, kernel=(), spatial=(), weight="")
            yield "", prefix + "memory_weight", site, TapWidth(memory.shape[1])
        elif isinstance(memory, torch.nn.Parameter) and kind is not None:
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
