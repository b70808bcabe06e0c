"""aimgen/sourcecopy.py: the user's own classes and functions copied into the output, as written,
with what they need; nothing else the user wrote is run."""
from __future__ import annotations

import pytest

from aimgen.errors import RenderError
from aimgen.sourcecopy import SourceCopier, is_user_object, self_reads
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


def test_the_definition_copied_is_the_one_the_object_came_from(tmp_path):
    """A name defined twice (the later wins in Python), after an async def and a decorated
    class, in a file whose statements share lines: the definition the object came from."""
    mod = module_from(tmp_path, (
        "import functools; import torch\n\ndef scale(x):\n    return x * 1\n\nasync def fetch():\n    pass\n\n"
        "@functools.total_ordering\nclass Key:\n    def __lt__(self, other):\n        return False\n\n"
        "def scale(x):\n    return x * 2\n"))
    copier = SourceCopier()
    assert copier.add(mod.scale, "operation scale") == "scale"
    assert copier.add(mod.Key, "a class") == "Key"
    text = copier.copied.text()
    assert "return x * 2" in text and "return x * 1" not in text and "async def" not in text
    assert "@functools.total_ordering\nclass Key:" in text


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


def test_a_method_that_only_reads_self_is_copied_as_a_function_of_what_it_reads(tmp_path):
    mod = module_from(tmp_path, (
        "import torch\nfrom torch import nn\n\nSCALE = 3\n\n"
        "def ramp(n):\n    return torch.arange(n) * SCALE\n\n"
        "class Block(nn.Module):\n"
        "    def table(\n            self,\n            offset: int = 0,\n    ):\n"
        "        # the block's geometry\n        return ramp(self.size) + self.shift + offset\n\n"
        "    def writes(self):\n        self.size = 2\n\n"
        "    def passes_self(self):\n        return ramp(self)\n\n"
        "    def shadows(self):\n        size = 4\n        return size + self.size\n"))
    assert self_reads(mod.Block.table) == ["size", "shift"]
    assert self_reads(mod.Block.writes) is None and self_reads(mod.Block.passes_self) is None
    assert self_reads(mod.Block.shadows) is None   # `size` would mean two things in the function
    copier = SourceCopier()
    assert copier.add_method(mod.Block, "table", "Block.__init__ computes its table with it") == "table"
    text = copier.copied.text()
    assert "def table(\n        offset: int = 0,\n        *,\n        size,\n        shift,\n):" in text
    assert "    # the block's geometry\n    return ramp(size) + shift + offset" in text
    assert text.index("def ramp") < text.index("def table") and "SCALE = 3" in text and "class Block" not in text
    space = {}
    exec(compile("import torch\n" + text, "copied", "exec"), space)
    assert space["table"](1, size=3, shift=10).tolist() == [11, 14, 17]
    with pytest.raises(RenderError, match="uses self other than to read attributes"):
        SourceCopier().add_method(mod.Block, "passes_self", "why")


def test_a_namedtuple_without_a_class_statement_is_written_as_the_call_that_makes_it():
    """torchvision's GoogLeNetOutputs (a library's, made by collections.namedtuple) and one with
    defaults: the same call, in the file, so it imports no library; once, whoever asks again."""
    import collections

    from torchvision.models.googlenet import GoogLeNetOutputs

    copier = SourceCopier()
    assert copier.add_namedtuple(GoogLeNetOutputs, "the output") == "GoogLeNetOutputs"
    assert copier.add_namedtuple(GoogLeNetOutputs, "the output again") == "GoogLeNetOutputs"
    Pair = collections.namedtuple("Pair", ["a", "b"], defaults=[None, 0.5])
    copier.add_namedtuple(Pair, "the output")
    text = copier.copied.text()
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import collections"]
    assert "GoogLeNetOutputs = collections.namedtuple('GoogLeNetOutputs', ['logits', 'aux_logits2', " \
           "'aux_logits1'])" in text
    assert "Pair = collections.namedtuple('Pair', ['a', 'b'], defaults=[None, 0.5])" in text
    scope = {}
    exec(text, scope)  # noqa: S102 - the text written above
    assert scope["Pair"]() == (None, 0.5) and scope["Pair"]._fields == ("a", "b")
    with pytest.raises(RenderError, match="needed for two different things"):
        copier.add_namedtuple(collections.namedtuple("Pair", ["c"]), "another output")
