"""Real Hugging Face models whose conversion the breadth sweep (benchmarks/hf_sweep.py) found
broken, converted again with the sweep's own check: every base state_dict key kept, the base
function kept with base weights, a training step (``-m slow``: about three minutes). The
mechanisms each needed have fast tests of their own (test_capture.py, test_codegen*.py)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
import transformers

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hf_sweep  # noqa: E402
import sweep  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.slow

# name: (what it needed, at least this many layers tapped)
FIXED = {
    "beit": ("stochastic depth kept live on the torch.export path", 14),
    "segformer": ("stochastic depth kept live on the torch.export path; the hooks a first call "
                  "registers put back with the flag that marks them", 21),
    "dinov2": ("a parameter the forward never reads (mask_token) kept", 13),
    "t5_encoder": ("a tied embedding never called by its own name (shared) kept", 12),
    "roberta": ("a tied bias under a name the forward never reads kept", 14),
    "mobilevit": ("a block constant named like one of its layers; its unfolded patches found as rows of "
                  "the samples at their values' scale, and by the reshape that makes them where every "
                  "value is zero (its last stage)", 90),
    "falcon": ("a Linear subclass computing x @ W.T + b tapped as a Linear", 9),
    "levit": ("a cache dict the exporter filled with fake tensors put back after each run", 27),
    # the second set (hf_sweep.py --more)
    "mamba": ("a mixer whose path differs by mode kept whole; its decorated __init__ recorded, "
              "rebuilt with its defaults where the recorded call leaves weights uninitialised", 1),
    "videomae": ("a large plain tensor attribute: its module kept whole and read from", 13),
}


@pytest.mark.parametrize("name", list(FIXED))
def test_a_model_the_sweep_found_broken_converts_with_everything_kept(name):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "hf_models.py"
        call, spec = hf_sweep.MODELS_ALL[name]
        source.write_text(f"from transformers import *\n\n\ndef {name}():\n    return {call}\n")
        line = sweep.check(source, name, spec)   # raises on any failure
    taps = int(line.split("taps=")[1].split("/")[0])   # taps=tapped/seen
    assert line.startswith("ok ") and taps >= FIXED[name][1], (FIXED[name][0], line)
