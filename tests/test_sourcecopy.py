"""aimgen/sourcecopy.py: the user's own classes and functions copied into the output, as written,
with what they need; nothing else the user wrote is run."""
from __future__ import annotations

import pytest

from aimgen.errors import RenderError
from aimgen.sourcecopy import SourceCopier, is_user_object
from conftest import write_model


def module_from(tmp_path, text):
    import importlib.util
    import sys
    path = write_model(tmp_path, text, "usercode.py")
    spec = importlib.util.spec_from_file_location("usercode_for_copy", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # as aimgen's loader does: classes find their source through it
    spec.loader.exec_module(mod)
    return mod


def test_a_class_is_copied_with_its_helpers_constants_and_imports(tmp_path):
    mod = module_from(tmp_path, (
        "import fractions\nfrom torch import nn\nLIMIT = 2.5  # a constant\n\n"
        "def clip(x):\n    # keep it small\n    return x.clamp(-LIMIT, LIMIT) * float(fractions.Fraction(1, 2))\n\n"
        "class Gate(nn.Module):\n    def forward(self, x):\n        return clip(x)\n"))
    copier = SourceCopier()
    assert copier.add(mod.Gate, "layer gate is kept whole") == "Gate"
    text = copier.copied.text()
    assert "import fractions" in text and "LIMIT = 2.5" in text and "# keep it small" in text
    assert text.index("def clip") < text.index("class Gate")  # dependencies first
    assert is_user_object(mod.Gate) and not is_user_object(pytest.raises)


def test_a_definition_inside_a_function_or_a_clashing_name_is_refused(tmp_path):
    mod = module_from(tmp_path, "def make():\n    class Inner:\n        pass\n    return Inner\n\nF = 1\n\n"
                                "def uses_f(x):\n    return x + F\n")
    with pytest.raises(RenderError, match="defined inside a function"):
        SourceCopier().add(mod.make(), "a class the model builds")
    with pytest.raises(RenderError, match="the name F of your code is also a name the generated file defines"):
        SourceCopier(taken={"F"}).add(mod.uses_f, "operation uses_f calls it")


def test_library_code_is_copied_with_the_names_its_annotations_need(tmp_path):
    import torchvision.ops
    copier = SourceCopier()
    assert copier.copy_library(torchvision.ops.StochasticDepth, "a kept leaf") == "StochasticDepth"
    text = copier.copied.text()
    assert "from typing import Any" in text and "def stochastic_depth(" in text
    namespace = {}
    exec(compile("import torch\nfrom torch import nn\n" + text, "copied", "exec"), namespace)  # it runs
    assert namespace["StochasticDepth"](0.5, "row").p == 0.5
