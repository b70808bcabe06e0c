"""Issue 5, case 8: random valid CNN/MLP models (tests/random_models.py), converted through
the real file path, with the invariants checked on every one.

    pytest tests/test_random_models.py               # the fixed-seed quick set (15 models)
    pytest -m slow tests/test_random_models.py       # the large set (200 models); last result in README.md

ONNX parity costs about 10 s a model on this machine's CPU, so it runs on every 10th model of
the large set and on 2 of the quick set; every other invariant runs on every model.
"""
from __future__ import annotations

import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings

import random_models as rm

_SETTINGS = dict(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                 print_blob=True)


def _run(n: int, tmp_path, onnx_every: int) -> tuple[int, float]:
    seen = []
    start = time.time()

    @settings(max_examples=n, **_SETTINGS)
    @given(spec=rm.model_specs())
    def check(spec):
        torch.manual_seed(0)
        rm.convert_spec(spec, tmp_path, onnx=len(seen) % onnx_every == 0)
        seen.append(spec.label())

    check()
    assert len(seen) == n
    return len(seen), time.time() - start


def test_random_models_quick(tmp_path):
    count, _ = _run(15, tmp_path, onnx_every=8)
    assert count == 15


@pytest.mark.slow
def test_random_models_large(tmp_path):
    count, seconds = _run(200, tmp_path, onnx_every=10)
    print(f"\nrandom models: {count} of {count} passed in {seconds:.0f} s")


# --- regressions: every failure the random runs found, fixed ---------------------------------

def test_regression_layernorm_then_data_dependent_branch(tmp_path):
    """Found by the random run: a module branching on ``x.mean() > 0`` after a LayerNorm (mean 0
    up to rounding) flips between base and AiM model. The generator's data-dependent gate now
    loops over a traced size instead; this is the model that failed, which must convert and
    keep the base function."""
    spec = rm.Spec(kind="mlp", in_shape=(1, 8), blocks=[("linear", 8, 8), ("leaf",), ("residual", 8), ("norm", 8),
                                                         ("leaf",)], hidden=0, classes=3, act="GELU")
    conv = rm.convert_spec(spec, tmp_path)
    assert "class DataGate(nn.Module):" in conv.source  # copied, not imported
    assert {s.qualname for s in conv.plan.taps} >= {"b0_fc", "b2_fc", "head"}


def test_regression_untraceable_leaf_without_stored_argument_is_refused(tmp_path):
    """Found by the random run: a leaf class that does not keep its constructor argument cannot
    be rebuilt; it is refused by name, with why it is a leaf, and the file/line that forced it."""
    from aimgen.errors import RenderError
    from aimgen.loader import InputSpec, load_model

    text = rm.render_source(rm.Spec(kind="cnn", in_shape=(1, 3, 8, 8), blocks=[("stem", 3, 4, 3), ("leaf",)]))
    text = text.replace("        self.width = width\n", "")
    path = tmp_path / "gate_without_width.py"
    path.write_text(text)
    model = load_model(f"{path}:build_model").model
    import aimgen

    with pytest.raises(RenderError) as err:
        aimgen.convert(model, [InputSpec((1, 3, 8, 8))])
    msg = str(err.value)
    assert "b1_gate (DataGate" in msg and "'width' is not stored" in msg
    assert "torch.fx cannot trace it" in msg and "gate_without_width.py:" in msg
