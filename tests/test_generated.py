"""generated/ holds the outputs for the example models; a regeneration must not differ by a
single byte (so every codegen change shows up as a reviewable diff), and they must stay valid."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from aimgen.validate import imported_modules, read_metadata

from conftest import ROOT

GENERATED = ROOT / "generated"


@pytest.fixture(scope="module")
def rendered():
    spec = importlib.util.spec_from_file_location("regenerate", GENERATED / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render_all()


def test_regeneration_is_byte_identical(rendered):
    stale = [name for name, text in rendered.items()
             if not (GENERATED / name).exists() or (GENERATED / name).read_bytes() != text.encode()]
    assert stale == [], f"run `python generated/regenerate.py` and review the diff: {stale}"
    extra = sorted(p.name for p in GENERATED.iterdir() if p.suffix in (".py", ".json")
                   and p.name != "regenerate.py" and p.name not in rendered)
    assert extra == []


def test_every_generated_line_is_under_100_characters(rendered):
    """As the spec's readable source asks: code, comments aimgen moves above their line, the
    header, docstrings of every file in generated/ (whose examples copy no library code)."""
    long = {name: [line for line in text.splitlines() if len(line) > 99] for name, text in rendered.items()
            if name.endswith(".py")}
    assert {name: lines for name, lines in long.items() if lines} == {}


@pytest.mark.parametrize("name", ["tiny_cnn_aim.py", "mlp_aim.py", "resnet50_aim.py", "vgg16_aim.py",
                                  "resnet50_plain.py", "swin_tiny_aim.py", "text_transformer_aim.py",
                                  "text_transformer_plain.py"])
def test_generated_files_import_only_torch_and_the_standard_library(name):
    assert imported_modules(GENERATED / name) <= {"torch"} | set(sys.stdlib_module_names)
    meta = read_metadata(GENERATED / name)
    assert meta["kind"] == ("plain" if "plain" in name else "aim")


def test_the_readme_shows_resnet50s_block_as_generated():
    """The README's excerpt of the Bottleneck class: every line it shows (``...`` aside) is in
    generated/resnet50_aim.py, in the same order."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\nclass Bottleneck(nn.Module):")
    excerpt = readme[start + len("```python\n"):readme.index("```", start + 10)].splitlines()
    generated = (GENERATED / "resnet50_aim.py").read_text().splitlines()
    at = 0
    for line in excerpt:
        if line.strip() == "...":
            continue
        assert line in generated[at:], f"README line not in generated/resnet50_aim.py (in order): {line!r}"
        at = generated.index(line, at) + 1
