"""The one sanitizer: every emitted identifier is safe; everything else is quoted."""
from __future__ import annotations

import keyword

from hypothesis import given, strategies as st

from aimgen.naming import Namespace, attribute_access, comment, is_safe_identifier, sanitize


@given(st.text(max_size=40))
def test_sanitize_always_gives_a_plain_identifier(text):
    name = sanitize(text)
    assert name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


@given(st.lists(st.text(max_size=12), max_size=30))
def test_namespace_names_are_unique_and_never_reserved(texts):
    ns = Namespace()
    names = [ns.create(t) for t in texts]
    assert len(set(names)) == len(names)
    assert not {"self", "memory", "torch", "F", "nn"} & set(names)


@given(st.text(max_size=30))
def test_attribute_access_quotes_anything_unsafe(name):
    src = attribute_access("self", name)
    if is_safe_identifier(name):
        assert src == f"self.{name}"
    else:
        assert src == f"getattr(self, {name!r})"
    compile(src, "<test>", "eval")


@given(st.text(max_size=30))
def test_comments_stay_on_one_line(text):
    assert "\n" not in comment(text) and "\r" not in comment(text)
    compile("x = 1  # " + comment(text), "<test>", "exec")


def test_examples():
    assert sanitize("layer1.0-conv") == "layer1_0_conv"
    assert sanitize("class") == "class_"
    assert sanitize("0weird") == "v_0weird"
    assert not is_safe_identifier("__import__")
