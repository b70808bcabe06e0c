"""The ONNX part of validation: the generated model exports, the export passes onnx.checker, and
onnxruntime computes what PyTorch computes.

For an AiM file, one stateful export is made (aimgen.export) and checked first: onnx.checker,
its self-description (the memory input's default is the initial memory; the metadata names
the memory input and output, the carry rule and aimgen's version), parity with
``forward_with_memory`` at batch 1 and 3, and the memory carried over three calls, the first
without a memory input. Then the same graph with its memory frozen is the stateless export,
checked by onnx.checker and for parity with the eval() model. A plain file gets the stateless
checks only. Inputs come from the generated file's own ``example_inputs(batch)``.

Parity is ``np.allclose`` with ATOL and RTOL, and every check reports the largest absolute
difference it measured.
"""
from __future__ import annotations

import contextlib
import math
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import ExportError
from .export import (CARRY_RULE, MEMORY_INPUT, MEMORY_OUTPUT, SINGLE_FILE_LIMIT, Exported,
                     check_opset, disk_size, export_failed, export_model, first_line, freeze_memory, save,
                     size_text)
from .loader import flat_tensors
from .progress import Check, Progress
from .readback import Generated, load_generated

#: Parity tolerance (np.allclose semantics: |a - b| <= ATOL + RTOL * |b|).
ATOL, RTOL = 1e-4, 1e-3
PARITY_BATCHES = (1, 3)
CARRY_CALLS = 3
#: PyTorch's outputs computed elsewhere (the fresh process): by batch, the stateful ones for an
#: AiM file (outputs, then the new memory) and the eval() ones for a plain file; for an AiM file
#: also the carry's calls under "carry", each from the memory the one before returned.
References = dict[int | str, Any]


def reference_outputs(model: Any, meta: dict, inputs: Callable[[int], tuple], flat: Callable[[Any], list],
                      batches: Sequence[int], carry_calls: int) -> References:
    """PyTorch's outputs the ONNX graphs must match, all at once, in eval(): at each of ``batches``
    on the file's example inputs (``inputs(batch)``), for an AiM file the stateful ones (the
    outputs, ``flat``-tened, then the new memory, from the initial memory) and for a plain file
    the eval() ones; for an AiM file also the carry's ``carry_calls`` calls under "carry": the
    last batch's outputs, then further slices of ``inputs(batch * carry_calls)``, each call from
    the memory the one before returned. Self-contained (torch only): validation's fresh process
    runs this very function, copied by source."""
    import torch

    model.eval()
    refs: dict = {}
    with torch.no_grad():
        if meta.get("kind") != "aim":
            for b in batches:
                refs[b] = tuple(flat(model(*inputs(b))))
            return refs

        def stateful(x, memory):
            outputs, memory = model.forward_with_memory(*x, memory)
            return (*flat(outputs), memory)

        memory = getattr(model, meta["memory"]).read().detach().clone()
        for b in batches:
            refs[b] = stateful(inputs(b), memory)
        b = batches[-1]
        more, chain = inputs(b * carry_calls), [refs[b]]
        for call in range(1, carry_calls):
            chain.append(stateful(tuple(t[call * b:(call + 1) * b] for t in more), chain[-1][-1]))
        refs["carry"] = chain
    return refs


def read_references(path: str | Path) -> References:
    """PyTorch's outputs as the fresh process of validation saved them (torch.save)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def references_from(find: Callable[[], Path | None]) -> Callable[[], References | None]:
    """``onnx_checks``' ``references`` from ``find``, which gives the file the fresh process
    saved them to once asked (None where it saved none: they are then computed here)."""
    def read() -> References | None:
        found = find()
        return read_references(found) if found is not None else None
    return read


def onnx_checks(path: str | Path, weights: str | Path | None = None, opset: int | None = None, *,
                random_weights: bool = False, keep_dir: str | Path | None = None,
                progress: Progress | None = None,
                references: Callable[[], References | None] | None = None) -> list[Check]:
    """Every ONNX check of a generated file, in the order they ran, each with its numbers.

    Weights as aimgen.readback chooses them (``weights``, else the file beside, else random).
    The exports go to a temporary folder, or to ``keep_dir`` (as ``stateless.onnx`` and
    ``stateful.onnx``) to inspect them afterwards. ``references``: called once the graphs are
    exported, PyTorch's outputs computed meanwhile elsewhere (the fresh process of validation);
    where it is not given or gives None, they are computed here. Bad input (not an aimgen file,
    weights that do not fit, an impossible opset) raises; a model that fails to export or to
    match is reported as a failed Check."""
    progress = progress or Progress()
    check_opset(opset)
    gen = load_generated(path, weights, random_weights=random_weights)
    run = _Run(gen, progress, files=keep_dir is not None, references=references)
    with contextlib.ExitStack() as stack:
        folder = Path(keep_dir) if keep_dir is not None else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aimgen-onnx-")))
        if not gen.is_aim:
            with progress.step("onnx-export", "ONNX export (stateless)"):
                exported = run.attempt(lambda: export_model(gen, stateful=False, opset=opset), "stateless")
            if exported is not None:
                run.variant(folder, exported, stateful=False)
            return run.checks
        # one trace: the stateful graph is checked and saved first, then frozen into the stateless one
        with progress.step("onnx-export", "ONNX export (stateful graph, traced once; the stateless graph is "
                           "made from it)"):
            try:
                stateful = export_model(gen, stateful=True, opset=opset)
            except ExportError as err:
                reason = not_exportable(gen.meta) or no_onnx_function(err.cause or "")
                if reason:  # the base model cannot be exported either: say why, do not fail
                    run.add(Check("onnx export", False, reason, possible=False))
                    return run.checks
                for kind in ("stateful", "stateless"):  # one failed trace fails both graphs
                    detail = str(export_failed(gen, kind, err.cause)) if err.cause else str(err)
                    run.add(Check(f"onnx export ({kind})", False, detail))
                return run.checks
        if run.variant(folder, stateful, stateful=True):
            frozen = run.attempt(lambda: freeze_memory(stateful, gen), "stateless")
            if frozen is not None:
                run.variant(folder, frozen, stateful=False)
        return run.checks


def not_exportable(meta: dict) -> str:
    """Why no ONNX export of this model can exist, when one of its kept-whole modules has
    data-dependent control flow (the base model does not export either); '' otherwise."""
    for qual, why in (meta.get("kept_whole") or {}).items():
        if "control flow" in why or "cannot be used as inputs to control flow" in why:
            where = why.rsplit(" at ", 1)[1][:-1] if " at " in why and why.endswith(")") else why
            return (f"not possible for this model: {qual} is kept whole because its forward branches on "
                    f"tensor values at {where}; torch.export cannot trace that branch in the base model "
                    "either. torch.cond is the exportable form of such a branch.")
    return ""


def is_onnx_check(name: str) -> bool:
    """Whether a check of that name is one of this module's (of an ONNX graph)."""
    return name.startswith(("onnx", "stateful carry"))


def no_onnx_function(cause: str) -> str:
    """Why the export failed where the exporter has no ONNX function for an operation the model
    computes (``torch.special.i0``: prims.bessel_i0); '' for any other failure. aimgen's own
    layers and update blocks all export (tested), so the operation is the base model's."""
    found = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)'", cause)
    if not found:
        return ""
    return (f"not possible for this model: the ONNX exporter has no function for {found.group(1)}, an operation "
            "the base model computes (aimgen's own layers export), so the base model does not export either")


class _Run:
    """The checks of one file, reported to ``progress`` as each finishes."""

    def __init__(self, gen: Generated, progress: Progress, files: bool = False,
                 references: Callable[[], References | None] | None = None):
        self.gen, self.progress, self.checks = gen, progress, []
        self.files = files   # write each graph to a file (to keep), not only serialize it
        self._references = references
        self._expected: References | None = None

    def expected(self, batch: int | str, stateful: bool) -> Any:
        """PyTorch's outputs (``reference_outputs``), given by ``references`` or else computed
        here, once: at ``batch``, for an AiM model the stateful ones, whose outputs are also the
        stateless graph's (its memory is frozen at the initial memory, which the eval() model
        reads); ``batch="carry"``: the carry's calls."""
        gen = self.gen
        if self._expected is None:
            given = self._references() if self._references is not None else None
            self._expected = given or reference_outputs(gen.model, gen.meta, gen.example_inputs, flat_tensors,
                                                        PARITY_BATCHES, CARRY_CALLS)
        out = self._expected[batch]
        return out if stateful or not gen.is_aim or batch == "carry" else out[:-1]

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.progress.check(check)
        return check

    def attempt(self, export: Callable[[], Exported], kind: str) -> Exported | None:
        try:
            return export()
        except ExportError as err:
            self.add(Check(f"onnx export ({kind})", False, str(err)))
            return None

    def variant(self, folder: Path, exported: Exported, *, stateful: bool) -> bool:
        """Save and check one graph; False if it could not be saved or loaded. The checks read
        the graph as bytes in memory (writing and reading back 100 MB took 0.3 s a graph), or
        from a file where one is asked for or the graph needs its weights beside it (2 GB)."""
        gen, kind = self.gen, "stateful" if stateful else "stateless"
        target = folder / f"{kind}.onnx"
        source: Path | bytes = target
        try:
            if self.files or exported.nbytes >= SINGLE_FILE_LIMIT:
                save(exported, target)
                size = disk_size(target, target.with_name(target.name + ".data"))
            else:
                source = exported.program.model_proto.SerializeToString()
                size = len(source)
        except OSError as err:
            self.add(Check(f"onnx export ({kind})", False, f"could not save the export: {err}"))
            return False
        how = (f"made from the stateful export by freezing the memory in {exported.seconds:.2f} s"
               if exported.derived else f"traced and exported in {exported.seconds:.1f} s")
        ins = ", ".join(n + (" (default: the initial memory)" if stateful and n == MEMORY_INPUT else "")
                        for n in exported.input_names)
        self.add(Check(f"onnx export ({kind})", True,
                       f"{how}; opset {exported.opset}, {size_text(size)}; inputs {ins}; outputs "
                       f"{', '.join(exported.output_names)}",
                       {"seconds": round(exported.seconds, 3), "derived": exported.derived, "bytes": size,
                        "opset": exported.opset}))
        if not self.add(_checker(source, kind)).ok:
            return False
        if stateful and not self.add(_self_description(source, gen)).ok:
            return False
        try:
            session = _session(source)
        except Exception as err:
            self.add(Check(f"onnxruntime load ({kind})", False, first_line(err)))
            return False
        with self.progress.step(f"parity-{kind}", f"onnxruntime vs PyTorch ({kind} graph)"):
            for batch in PARITY_BATCHES:
                self.add(_parity(gen, session, exported, stateful, batch, self.expected(batch, stateful)))
            if stateful:
                self.add(_carry(gen, session, exported, self.expected("carry", True)))
        return True


def _checker(source: Path | bytes, kind: str) -> Check:
    import onnx

    try:
        onnx.checker.check_model(source if isinstance(source, bytes) else str(source), full_check=True)
    except Exception as err:
        return Check(f"onnx checker ({kind})", False, first_line(err))
    return Check(f"onnx checker ({kind})", True, "onnx.checker.check_model passed (full check)")


def _self_description(source: Path | bytes, gen: Generated) -> Check:
    """The stateful file says how to use it: the memory input defaults to the initial memory,
    and metadata_props name the memory input and output, the carry rule and aimgen's version."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(source))
    name = "onnx self-description (stateful)"
    props = {p.key: p.value for p in proto.metadata_props}
    wanted = {"aimgen.memory_input": MEMORY_INPUT, "aimgen.memory_output": MEMORY_OUTPUT, "aimgen.carry": CARRY_RULE}
    wrong = [k for k, v in wanted.items() if props.get(k) != v] + \
        [k for k in ("aimgen.version",) if not props.get(k)]
    if wrong:
        return Check(name, False, f"metadata_props lack or misstate {', '.join(wrong)}")
    defaults = [t for t in proto.graph.initializer if t.name == MEMORY_INPUT]
    if MEMORY_INPUT not in [v.name for v in proto.graph.input] or len(defaults) != 1:
        return Check(name, False, f"the {MEMORY_INPUT} input has no default value (an initializer of its name)")
    memory = gen.initial_memory().numpy()
    if not np.array_equal(numpy_helper.to_array(defaults[0]), memory):
        return Check(name, False, f"the {MEMORY_INPUT} input's default is not the initial memory (seed + carry)")
    return Check(name, True, f"{MEMORY_INPUT} defaults to the initial memory {list(memory.shape)}; metadata "
                 f"names {MEMORY_INPUT}/{MEMORY_OUTPUT}, the carry rule and aimgen {props['aimgen.version']}")


def _session(source: Path | bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # two threads: the fresh process has finished by the time the graphs run (it computed their
    # references), and a second thread takes a quarter off the checks' time on resnet50
    options.intra_op_num_threads = 2
    return onnxruntime.InferenceSession(source if isinstance(source, bytes) else str(source), options,
                                        providers=["CPUExecutionProvider"])


def _feeds(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> dict[str, Any]:
    return {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}


def compare(ort_outs: Sequence[Any], torch_outs: Sequence[torch.Tensor]) -> tuple[bool, float, str, str]:
    """(within tolerance, max abs difference, what differed, a note) over all outputs. Rows that
    only come in another order (equal scores a top-k or sort ranks either way: RT-DETR's 300
    detections on random weights) are the same rows: the note says which."""
    import numpy as np

    if len(ort_outs) != len(torch_outs):
        return False, math.inf, f"onnxruntime gave {len(ort_outs)} outputs, PyTorch {len(torch_outs)}", ""
    worst, ok, notes = 0.0, True, []
    for i, (got, ref) in enumerate(zip(ort_outs, torch_outs)):
        ref_np = ref.detach().cpu().numpy()
        if got.shape != ref_np.shape:
            return False, math.inf, f"shape {list(got.shape)} in onnxruntime, {list(ref_np.shape)} in PyTorch", ""
        if not ref_np.size:
            continue
        got64, ref64 = got.astype(np.float64), ref_np.astype(np.float64)
        if not np.allclose(got64, ref64, atol=ATOL, rtol=RTOL, equal_nan=True):
            reordered = _reordered_rows(got64, ref64)
            if reordered is None:
                ok = False
            else:
                which, got64 = reordered
                notes.append(f"output {i}: {which} in another order (equal values ranked either way)")
        worst = max(worst, float(np.max(np.abs(got64 - ref64))))
    return ok, worst, "", "; ".join(notes)


def _reordered_rows(got, ref):
    """Where the outputs differ only by rows (the second-to-last axis) that are the same rows in
    another order: (which, as text; ``got`` with those rows put back in the reference's order);
    None where they differ otherwise."""
    import numpy as np

    if got.ndim < 2:
        return None
    got, said = got.copy(), []
    for index in np.ndindex(*got.shape[:-2]):
        g, r = got[index], ref[index]
        bad = [k for k in range(g.shape[0]) if not np.allclose(g[k], r[k], atol=ATOL, rtol=RTOL, equal_nan=True)]
        order: list[int] = []
        for k in bad:   # each reference row, matched to one of the differing rows onnxruntime gave
            match = next((m for m in bad if m not in order and
                          np.allclose(g[m], r[k], atol=ATOL, rtol=RTOL, equal_nan=True)), None)
            if match is None:
                return None
            order.append(match)
        if bad:
            g[bad] = g[order]
            said.append(f"rows {', '.join(map(str, bad))}" + (f" of item {', '.join(map(str, index))}" if index else ""))
    return ("; ".join(said), got) if said else None


def _parity(gen: Generated, session: Any, exported: Exported, stateful: bool, batch: int,
            expected: Sequence[torch.Tensor]) -> Check:
    kind = "stateful" if stateful else "stateless"
    name = f"onnxruntime parity ({kind}, batch {batch})"
    x = gen.example_inputs(batch)
    args = (*x, gen.initial_memory()) if stateful else x
    try:
        got = session.run(exported.output_names, _feeds(exported.input_names, args))
    except Exception as err:
        return Check(name, False, f"onnxruntime failed: {first_line(err)}")
    ok, worst, why, note = compare(got, expected)
    detail = why or f"max abs difference {worst:.2e} (atol {ATOL:g}, rtol {RTOL:g})" + (f"; {note}" if note else "")
    return Check(name, ok, detail, {"batch": batch, "max_abs_diff": worst, "atol": ATOL, "rtol": RTOL})


def _carry(gen: Generated, session: Any, exported: Exported, calls: Sequence[Sequence[torch.Tensor]]) -> Check:
    """Feed each call's new_memory back as the next call's memory, in onnxruntime, over three
    different batches: the parity check's example inputs, then two more slices of the file's
    example inputs; ``calls``: PyTorch's forward_with_memory on the same, each from the memory the
    one before returned (``reference_outputs``). The first onnxruntime call gives no memory, so
    the graph's default is used."""
    name = f"stateful carry ({CARRY_CALLS} calls)"
    batch = PARITY_BATCHES[-1]
    more = gen.example_inputs(batch * CARRY_CALLS)
    ort_memory = None
    worst, ok, notes = 0.0, True, []
    for call in range(CARRY_CALLS):
        x = gen.example_inputs(batch) if call == 0 else tuple(t[call * batch:(call + 1) * batch] for t in more)
        expected = calls[call]
        feeds = _feeds(exported.input_names[:-1], x)
        if ort_memory is not None:
            feeds[MEMORY_INPUT] = ort_memory
        try:
            got = session.run(exported.output_names, feeds)
        except Exception as err:
            return Check(name, False, f"onnxruntime failed on call {call + 1}: {first_line(err)}")
        good, diff, why, note = compare(got, expected)
        if why:
            return Check(name, False, f"call {call + 1}: {why}")
        ok, worst = ok and good, max(worst, diff)
        notes += [f"call {call + 1}: {note}"] if note else []
        ort_memory = got[-1]
    moved = float((calls[-1][-1] - gen.initial_memory()).abs().max())
    detail = (f"max abs difference {worst:.2e} over {CARRY_CALLS} calls (outputs and memory; the first call "
              f"without a memory input); the memory moved by up to {moved:.2e}") + "".join(f"; {n}" for n in notes)
    return Check(name, ok, detail, {"calls": CARRY_CALLS, "max_abs_diff": worst, "memory_moved": moved,
                                    "atol": ATOL, "rtol": RTOL})
