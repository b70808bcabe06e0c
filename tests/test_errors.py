"""The errors users see (aimgen.errors) and how the command line says them (aimgen.cli.common)."""
from __future__ import annotations

from aimgen.cli.common import cli_text, cli_words
from aimgen.errors import AimgenError, InternalError, PlanError, TraceError


def test_a_message_ends_as_a_sentence_before_its_hint():
    err = TraceError("running the model failed: expected 3 channels, but got 1 channels instead",
                     hint="Check the input shape.")
    assert str(err) == "running the model failed: expected 3 channels, but got 1 channels instead. Check the input shape."
    assert str(AimgenError("done.", hint="Next.")) == "done. Next."
    assert str(AimgenError("shape (1, 2)", hint="x")) == "shape (1, 2) x"


def test_declared_fields_and_exit_codes():
    err = PlanError("memory_size=0: must be positive.", field="memory_size", cause="c")
    assert (err.field, err.cause, err.hint, err.exit_code) == ("memory_size", "c", None, 2)
    assert InternalError("x").exit_code == 3 and isinstance(InternalError("x"), AimgenError)


def test_the_cli_names_flags_where_the_library_names_arguments():
    assert cli_text(PlanError("memory_size=0: must be a positive number of floats.", field="memory_size")) == \
        "--memory-size 0: must be a positive number of floats."
    assert cli_text(PlanError("budget=0.001 is too small; raise budget=0.05.", field="budget")) == \
        "--budget 0.001 is too small; raise --budget 0.05."
    assert cli_text(AimgenError("o.py exists already.", hint="Pass `force=True` to replace it.", field="force")) == \
        "o.py exists already. Pass --force to replace it."
    assert cli_words("use `random_weights=True`, `weights=W.pt` or `onnx=False`; keep `unknown=1`") == \
        "use --random-weights, --weights W.pt or --no-onnx; keep `unknown=1`"
    assert cli_words("layer memory_size=3 is a name") == "layer memory_size=3 is a name"  # not the error's field
