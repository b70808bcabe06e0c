"""The Python API: ``aimgen.convert(model, example_inputs, **options)``. The CLI is a thin
layer over it.

    import aimgen, torch, torchvision
    result = aimgen.convert(torchvision.models.resnet18(num_classes=10), torch.randn(1, 3, 64, 64))
    print(result.report)                       # per-layer table and the parameter summary
    aim = result.build()                       # the AiM model, built from the generated source
    written = result.write("resnet18_aim.py")  # validated as `aimgen convert` does (ONNX too), then written
"""
from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import capture, report as report_mod
from .codegen import generate
from .errors import AimgenError, ConversionInvalid, KeepWhole, TraceError, ValidationError
from .files import check_targets, staged
from .loader import InputSpec, embedding_limit, example_inputs as make_inputs
from .naming import count
from .onnx_checks import is_onnx_check
from .options import Options
from .plan import Plan, make_plan
from .progress import Check, Progress
from .readback import weights_beside
from .render import FORMAT_VERSION, render_model
from . import shapes
from .tracing import Traced, restore, snapshot, trace, variadic
from .onnx_worker import OnnxWorker
from .validate import validate_file

BUG_HINT = "Nothing was written. This is a bug in aimgen: please report it with the model file."


def invalid_hint(failed: tuple[str, ...]) -> str:
    """What a failed validation of a converted file points at: only ONNX checks failed (the
    PyTorch model passed its own), or eval() was not deterministic, can be the base model's doing."""
    if failed and all(map(is_onnx_check, failed)):
        return ("Nothing was written. The PyTorch model passed its checks and its ONNX graph did not: if the base "
                "model does not export to ONNX either (torch.onnx.export; an operation the exporter lacks), that "
                "is why, and `onnx=False` converts without the ONNX checks. If it does, this is a bug in aimgen: "
                "please report it with the model file.")
    if "eval determinism" in failed:
        return ("Nothing was written. If the base model's eval() forward is random too (two calls differ), that "
                "is why: aimgen holds a converted model to a deterministic eval(). If it is not, this is a bug in "
                "aimgen: please report it with the model file.")
    return BUG_HINT


@dataclass
class Written:
    """What ``Conversion.write`` did: the files written, the checks that passed before they were
    (in the order they ran), and stale files it removed (a weights file of an earlier run)."""

    files: list[Path]
    checks: list[Check] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


@dataclass
class Conversion:
    """The result of a conversion: source, plan, report, and ways to build or write it."""

    source: str
    plan: Plan | None
    specs: list[InputSpec]
    source_name: str
    plain: bool = False
    state_dict: dict[str, torch.Tensor] | None = None
    weights_report: dict | None = None
    _traced: Traced | None = field(default=None, repr=False)
    code: object = field(default=None, repr=False)   # the codegen Source (classes, update names)
    validation: list[Check] = field(default_factory=list, repr=False)  # the checks of the last write()

    @property
    def base_model(self) -> nn.Module | None:
        """The model that was converted (as traced: the caller's own module)."""
        return self._traced.root if self._traced is not None else None

    @property
    def report(self) -> str:
        if self.plan is None:
            return f"plain rendering of {self.source_name}"
        notes = [f"{qual} is written inline in its parent's forward: {why}" for qual, why in self.code.inline] \
            if self.code is not None else []
        notes += [n for n in [capture.report_note(self._traced)] if n and self._traced is not None]
        notes += [n for n in [self._traced.mode_note(), size_note(self._traced, self.specs)] if n] \
            if self._traced is not None else []
        return report_mod.table_text(self.plan, title=f"aimgen: {self.source_name}", notes=notes,
                                     update_names=self.code.update_names if self.code is not None else None)

    def report_dict(self) -> dict:
        data = self.plan.to_dict() if self.plan else {}
        data["source"] = self.source_name
        if self._traced is not None:
            data["capture"] = self._traced.capture
            if size_note(self._traced, self.specs):
                data["input_size"] = {"example_only": True,
                                      "fails_larger_at": capture.short_paths(self._traced.size_fixed_at)}
        data["input_shapes"] = [str(s) for s in self.specs]
        if self.weights_report:
            data["weights"] = self.weights_report
        return data

    def example_inputs(self, batch: int | None = None) -> tuple[torch.Tensor, ...]:
        return make_inputs(self.specs, self.base_model, batch=batch)

    def build(self, load_weights: bool = True) -> nn.Module:
        """Build the generated model in this process (from the source text, not from aimgen)."""
        module = load_source(self.source, f"aimgen_generated_{self.source_name}")
        model = module.build_model()
        if load_weights and self.state_dict is not None:
            model.load_state_dict(self.state_dict)
        return model

    def base_match(self) -> Check | None:
        """With base weights: the AiM model computes the base model's function (measured when
        the weights were converted, on the example input); None without base weights."""
        match = (self.weights_report or {}).get("base_match")
        if match is None:
            return None
        return Check("matches the base model", bool(match["ok"]),
                     f"max abs difference {match['max_abs_diff']:.2e} between the base and the AiM model on the "
                     f"example input (bound: {match['atol']:g} + {match['rtol']:g} x |base output|)",
                     {k: match[k] for k in ("max_abs_diff", "atol", "rtol")})

    def targets(self, path: str | Path, report_json: str | Path | None = None) -> list[Path]:
        """The files ``write(path)`` writes: the source, ``OUT.pt`` with weights, the JSON report."""
        path = Path(path)
        return [path] + ([path.with_suffix(".pt")] if self.state_dict is not None else []) + \
            ([Path(report_json)] if report_json is not None else [])

    def write(self, path: str | Path, *, force: bool = False, report_json: str | Path | None = None,
              validate: bool = True, onnx: bool = True, opset: int | None = None,
              progress: Progress | None = None, worker: OnnxWorker | None = None) -> Written:
        """Validate, then write the source (and ``OUT.pt`` when weights were given, and the JSON
        report): all files or none, existing ones only with ``force=True``.

        Validation is what ``aimgen convert`` runs: with base weights, that the AiM model
        computes the base model's function; in a fresh process, that the file imports, builds,
        has the planned parameter count and trains; with ``onnx=True`` (the default; the long
        part), ONNX export and onnxruntime parity. ``progress`` (an ``aimgen.progress.Progress``,
        e.g. ``Lines()``) sees each phase and check as it happens. A weights file beside
        ``path`` from an earlier run (``OUT.pt``/``OUT.safetensors``) would be taken for this
        model's weights by ``aimgen export``: it is refused, or removed with ``force=True``.
        ``worker``: an ``aimgen.onnx_worker.OnnxWorker`` started before the conversion, which
        runs the ONNX checks with its imports already done. Returns the files, the checks, and
        what was removed."""
        path = Path(path)
        progress = progress or Progress()
        targets = self.targets(path, report_json)
        if path.suffix != ".py":
            raise AimgenError(f"{path}: the output is Python source; give a .py file name.")
        check_targets(targets, force)
        stale = [p for p in weights_beside(path) if p.exists() and p not in targets]
        if stale and not force:
            raise AimgenError(f"{stale[0]} lies beside {path} and `aimgen export`/`validate` would take it for the "
                              "new model's weights, but this conversion has none (no base_weights=).",
                              hint="Remove it, or pass `force=True` to delete it with the write.", field="force")
        checks: list[Check] = []
        with staged() as stage:
            tmp = stage.write_text(path, self.source)
            tmp_weights = None
            if self.state_dict is not None:
                tmp_weights = stage.path_for(path.with_suffix(".pt"))
                torch.save(self.state_dict, tmp_weights)
            if validate:
                match = self.base_match()
                if match is not None:
                    checks.append(match)
                    progress.check(match)
                    if not match.ok:
                        raise ConversionInvalid(f"{path}: validation failed: {match.name}: {match.detail}.",
                                                hint=BUG_HINT)
                try:
                    checks += validate_file(tmp, weights=tmp_weights, random_weights=tmp_weights is None,
                                            onnx=onnx, label=str(path), opset=opset, progress=progress,
                                            worker=worker)
                except ValidationError as err:  # aimgen wrote this file: a failed check is aimgen's bug,
                    raise ConversionInvalid(err.message, hint=invalid_hint(err.failed),  # or the model's
                                            field="onnx") from err
            self.validation = checks
            if report_json is not None:
                data = self.report_dict()
                if validate:
                    data["validation"] = [c.to_dict() for c in checks]
                stage.write_text(Path(report_json), report_mod.to_json(self.plan, data) if self.plan else
                                 json.dumps(data, indent=2) + "\n")
            for old in stale:
                stage.remove(old)
        return Written(targets, checks, stale)


def load_source(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def _specs_from(example_inputs) -> list[InputSpec]:
    if example_inputs is None:
        return []
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    specs = []
    for t in example_inputs:
        if isinstance(t, InputSpec):
            specs.append(t)
        elif isinstance(t, torch.Tensor):
            specs.append(InputSpec(tuple(t.shape), t.dtype))
        else:
            specs.append(InputSpec(tuple(t)))
    return specs


def convert(model: nn.Module, example_inputs=None, *, input_shapes=None, plain: bool = False,
            source_name: str | None = None, base_weights: dict | str | Path | None = None,
            options: Options | None = None, constructor_args: dict[str, dict] | None = None,
            **option_kwargs) -> Conversion:
    """Trace ``model`` at ``example_inputs`` (tensors, shapes or InputSpecs) and write its AiM
    source (or, with ``plain=True``, the same source without memory).

    ``option_kwargs`` are the fields of ``aimgen.Options`` (memory_size, tap_width, form,
    layers, skip, updates, update_rank, carry_rate, budget, leaf, flat...). ``base_weights``: a
    state_dict (or a path to one) to copy in; every new weight that reads memory then starts
    at zero. ``constructor_args``: {module name: arguments} of the calls that built the model
    (``aimgen.records.recording``), to write kept layers as their true constructor calls."""
    if options is None:
        options = Options(**option_kwargs)
    elif option_kwargs:
        raise TypeError("give either options= or option keywords, not both")
    specs = _specs_from(example_inputs if example_inputs is not None else input_shapes)
    if not specs:
        raise AimgenError("no example input given.", hint="Give example inputs, e.g. `input_shapes=[(1, 3, 224, 224)]` or a tensor such as "
                          "torch.randn(1, 3, 224, 224).", field="input_shapes")
    source_name = source_name or type(model).__name__
    options.check()
    def inputs(batch=None):
        return make_inputs(specs, model, batch=batch)

    leaves, kept = frozenset(options.leaf), {}
    loaded = snapshot(model, values=True)
    while True:  # again with a module kept whole where the capture or codegen asks (errors.KeepWhole)
        try:
            traced = _captured(model, inputs, specs, source_name, leaves, loaded, options.sizes)
            traced.leaf_reasons.update(kept)
            traced.constructor_args = dict(constructor_args or {})
            plan = None if plain else make_plan(traced, options)
            src = generate(traced, plan, plain=plain, flat=options.flat)
        except KeepWhole as err:
            new = {q: why for q, why in err.modules.items() if q and q not in leaves}
            if not new:
                raise
            leaves, kept = leaves | set(new), {**kept, **new}
            continue
        break
    meta = metadata(plan, src, specs, source_name, traced, plain=plain)
    header = _header(plan, src, specs, source_name, options, traced, plain=plain)
    title = (f"Plain rendering of {source_name}" if plain else f"AiM version of {source_name}") + \
        f", traced at input {', '.join(str(tuple(s.shape)) + ('' if s.dtype == torch.float32 else ':' + s.dtype_name) for s in specs)}."
    text = render_model(src, title=title, header=header, shapes=[s.shape for s in specs],
                        dtypes=[s.dtype_name for s in specs], metadata=meta, high=embedding_limit(model))
    result = Conversion(source=text, plan=plan, specs=specs, source_name=source_name, plain=plain,
                        _traced=traced, code=src)
    if base_weights is not None:
        from .weights import convert_weights, load_state_dict

        sd = load_state_dict(base_weights) if isinstance(base_weights, (str, Path)) else base_weights
        result.state_dict, result.weights_report = convert_weights(sd, result)
    return result


def _captured(model: nn.Module, inputs, specs, source_name: str, leaves: frozenset[str], loaded,
              sizes: str = "auto") -> Traced:
    """The model traced and its shapes analysed. Then what running it set on its layers goes (a
    table made on the first call): a layer kept whole is written, and compared with its rebuild,
    as it was ``loaded``, and the caller's model is left as it was given."""
    try:
        traced = _trace(model, inputs, len(specs), source_name, leaves, sizes)
        shapes.analyse(traced, specs, inputs, source_name)
        return traced
    finally:
        restore(loaded)


def _trace(model: nn.Module, inputs, n_inputs: int, source_name: str, leaves: frozenset[str],
           sizes: str = "auto") -> Traced:
    """torch.fx's trace of the model, or the torch.export path where its root cannot be traced,
    or where torch.fx had to keep modules whole that hold weight layers and torch.export sees
    into more of them (diffusers' attention blocks branch on ``input.ndim``). ``sizes``
    (Options.sizes): how long torch.export's sizes besides the batch stay symbolic."""
    limit = {"any": None, "example": 0.0}
    try:
        traced = trace(model, leaves, source=source_name, n_inputs=n_inputs)
        capture.check_fx(traced, source_name)
    except TraceError as fx_error:
        # a root forward(x, *args, **kwargs) that hands them on (ultralytics' YOLO): torch.fx with
        # them empty, before torch.export, which fails there on a head that returns other things in
        # train() and eval() (two exports: a third of the conversion). A forward with **kwargs only
        # (every Hugging Face model's) takes torch.export first, as before.
        traced = _empty_varargs_trace(model, leaves, source_name, n_inputs) if _takes_args(model) else None
        if traced is None:
            try:
                return capture.export_trace(model, inputs, source=source_name, n_inputs=n_inputs, leaf_names=leaves,
                                            fx_error=fx_error,
                                            symbolic_seconds=limit.get(sizes, capture.SYMBOLIC_SECONDS))
            except TraceError as export_error:
                if not variadic(model) or _takes_args(model):   # (that one was tried first)
                    raise
                traced = _empty_varargs_trace(model, leaves, source_name, n_inputs)
                if traced is None:
                    raise export_error from None
    hidden = capture.hidden_layers(traced, leaves)
    if not hidden:
        return traced
    try:
        with capture.time_limit(capture.SEE_MORE_SECONDS):
            exported = capture.export_trace(model, inputs, source=source_name, n_inputs=n_inputs, leaf_names=leaves,
                                            fx_error=capture.HiddenLayers(traced, hidden),
                                            symbolic_seconds=limit.get(sizes, capture.SEE_MORE_SECONDS / 2))
    except TraceError:
        return traced   # torch.fx's graph, with those modules kept whole, stands (also past the time limit)
    return exported if len(capture.hidden_layers(exported, leaves)) < len(hidden) else traced


def _takes_args(model: nn.Module) -> bool:
    """Whether the root's forward has a ``*args`` parameter."""
    return any(k.startswith("*") and not k.startswith("**") for k in variadic(model))


def _empty_varargs_trace(model, leaves, source_name: str, n_inputs: int) -> Traced | None:
    """torch.fx's trace with the root forward's ``*args``/``**kwargs`` empty; None if it fails."""
    try:
        return trace(model, leaves, source=source_name, n_inputs=n_inputs, empty_varargs=True)
    except TraceError:
        return None


def metadata(plan: Plan | None, src, specs, source_name: str, traced: Traced, *, plain: bool) -> dict:
    """The AIMGEN dict of a generated file: built from the plan (and what the file defines)."""
    depends = sorted({m.split(".")[0] for m in src.imports if m.split(".")[0] not in ("math", "operator", "functools")}
                     - set(__import__("sys").stdlib_module_names))
    meta = {"format": FORMAT_VERSION, "kind": "plain" if plain else "aim", "source": source_name,
            "class": src.class_name, "input_shapes": [str(s) for s in specs]}
    if plan is not None:
        meta.update({"memory_shape": list(plan.memory_shape), "memory": src.memory_attr, "form": plan.form,
                     "base_params": plan.base_params, "aim_params": plan.aim_params,
                     "delta": {"memory": plan.memory_params, "taps": plan.tap_params, "updates": plan.update_params},
                     "update_blocks": len(plan.updates)})
    else:
        meta["params"] = sum(p.numel() for p in traced.root.parameters())   # all kept, used or not
    if traced.leaf_reasons:
        meta["kept_whole"] = {q: capture.short_paths(why) for q, why in sorted(traced.leaf_reasons.items())}
    if traced.fixed_inputs:
        meta["fixed_inputs"] = {k: repr(v) for k, v in traced.fixed_inputs.items()}
    meta["depends"] = depends
    return meta


def size_note(traced: Traced, specs) -> str | None:
    """What the report and the header say where the traced forward holds the example's size,
    which the base model does not (see shapes.analyse); None otherwise, or where the capture
    fixed the sizes on purpose (``sizes="example"``, which the header already says)."""
    if traced.size_fixed_at is None or "fixed at the example's" in (getattr(traced, "why", "") or ""):
        return None
    size = " x ".join(str(d) for d in specs[0].shape[2:])
    double = " x ".join(str(2 * d) for d in specs[0].shape[2:])
    return (f"input size: runs at {size} only, as traced; the base model also runs at {double}, where the traced "
            f"forward fails at {capture.short_paths(traced.size_fixed_at)}: tracing took a size the input sets "
            "for a number. Convert at the size you will use.")


def _header(plan, src, specs, source_name, options, traced, *, plain) -> list[str]:
    depends = sorted({m.split(".")[0] for m in src.imports} - set(__import__("sys").stdlib_module_names) - {"torch"})
    header = ["Written by aimgen; edit freely. Standalone: imports torch and the standard library only."
              if not depends else
              f"Written by aimgen. Depends on torch and: {', '.join(depends)} ({capture.depends_for(traced, depends)})."]
    header += capture.header_lines(traced)
    header += [n for n in (traced.mode_note(), size_note(traced, specs)) if n]
    if traced.fixed_inputs:
        header.append("traced with " + ", ".join(f"{k}={v!r}" for k, v in traced.fixed_inputs.items())
                      + " (inputs not given; fixed in this file)")
    if plan is not None:
        tapped, seen = plan.layer_counts()
        header += [
            f"options: {options.describe()}",
            f"memory: {tuple(plan.memory_shape)} = {count(math.prod(plan.memory_shape), 'float')}; taps: "
            f"{tapped} of {seen} weight layers; update blocks: {len(plan.updates)}; carry rate {plan.carry_rate}",
            f"parameters: base {plan.base_params:,} | aim {plan.aim_params:,} | delta +{plan.delta:,} "
            f"(memory {plan.memory_params:,}, taps {plan.tap_params:,}, updates {plan.update_params:,})",
        ] + [f"note: {n}" for n in plan.notes]
    return header
