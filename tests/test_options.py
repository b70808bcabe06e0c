"""aimgen/options.py: the transform's options, defined once for the API and every command."""
from __future__ import annotations

import argparse

import pytest

from aimgen.errors import PlanError
from aimgen.options import Options


def test_every_field_has_a_flag_with_help_that_states_its_default():
    parser = argparse.ArgumentParser()
    Options.add_arguments(parser)
    for action in parser._actions[1:]:
        assert action.help and "default" in action.help.lower(), action.dest
    args = parser.parse_args(["--memory-size", "4096", "--layers", "Conv2d,layer4.*", "--skip", "fc", "--flat",
                              "--tap-width", "full", "--form", "literal"])
    opts = Options.from_args(args)
    assert opts.memory_size == 4096 and opts.layers == ["Conv2d", "layer4.*"] and opts.skip == ["fc"]
    assert opts.flat and opts.tap_width == "full" and opts.form == "literal"
    assert Options.flag("memory_size") == "--memory-size"


def test_bad_values_are_refused_naming_the_field():
    with pytest.raises(PlanError, match="carry_rate=2") as err:
        Options(carry_rate=2).check()
    assert err.value.field == "carry_rate"
    with pytest.raises(PlanError, match="tap_width='wide'"):
        Options(tap_width="wide")
    assert Options(tap_width="3").tap_width == 3


def test_the_description_names_what_shapes_the_output():
    text = Options(memory_size=512, skip=["fc"], flat=True).describe()
    assert "memory_size=512" in text and "skip=fc" in text and "flat" in text and "form=sum" in text
