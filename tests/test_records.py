"""aimgen/records.py: the arguments of every module's constructor call while a model is built."""
from __future__ import annotations

import functools

from torch import nn

from aimgen.records import recording


class Block(nn.Module):
    def __init__(self, planes, stride=1, *extra, norm=nn.BatchNorm2d, **options):
        super().__init__()
        self.conv = nn.Conv2d(planes, planes, 3, stride=stride, padding=1)
        self.norm = norm(planes)


def test_the_outermost_call_of_each_module_is_recorded_with_its_defaults():
    with recording() as records:
        net = nn.Sequential(Block(8, 2, "x", flag=True), Block(4, norm=functools.partial(nn.BatchNorm2d, eps=1e-3)))
    by_name = records.by_name(net)
    assert by_name["0"] == {"planes": 8, "stride": 2, "*extra": ("x",), "norm": nn.BatchNorm2d, "**options": {"flag": True}}
    assert by_name["1"]["stride"] == 1 and by_name["1"]["norm"].keywords == {"eps": 1e-3}
    assert by_name["0.conv"]["in_channels"] == 8 and by_name["0.conv"]["stride"] == 2
    assert "" in by_name  # the Sequential itself


class Table(nn.Module):
    def __init__(self, image_size, patch=8):
        super().__init__()
        height, width = image_size
        cells = (height // patch) * (width // patch)
        self.proj = nn.Linear(cells, 4)


def test_each_call_keeps_the_locals_its_init_ended_with():
    """What an expression of the ``__init__`` may read besides its arguments (``cells``), for the
    outermost call only (the Linear's own locals are its own)."""
    with recording() as records:
        net = Table((32, 16))
    call = records.of(net)
    assert call == {"image_size": (32, 16), "patch": 8}
    assert call.locals == {"height": 32, "width": 16, "cells": 8, "__class__": Table}
    assert records.of(net.proj).locals.get("cells") is None


def test_nothing_is_recorded_outside_the_block_and_the_profiler_is_restored():
    import sys
    before = sys.getprofile()
    with recording() as records:
        pass
    after_build = Block(2)
    assert records.of(after_build) is None and sys.getprofile() is before


def test_a_model_is_recorded_under_cprofile_and_the_profiler_counts_again_afterwards():
    # cProfile's profiler is not a function: chaining to it raised "'Profile' object is not
    # callable", so `python -m cProfile -m aimgen convert ...` failed while loading the model
    import cProfile
    import pstats
    import sys

    def after():
        return Block(3)

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        with recording() as records:
            block = Block(5)
        after()
    finally:
        profiler.disable()
    assert records.by_name(block)["conv"]["in_channels"] == 5
    assert sys.getprofile() is None
    called = {name for (_, _, name) in pstats.Stats(profiler).stats}
    assert "after" in called


def _kernelized(cls):
    """As the ``kernels`` package decorates transformers' MambaMixer: ``__init__`` replaced by a
    wrapper of ``*args, **kwargs`` (no functools.wraps), itself wrapped once more."""
    for _ in range(2):
        def wrap(orig_init):
            def new_init(self, *args, **kwargs):
                orig_init(self, *args, **kwargs)
            return new_init
        cls.__init__ = wrap(cls.__init__)
    return cls


@_kernelized
class Mixer(nn.Module):
    def __init__(self, width, layer_idx, scale=2.0):
        super().__init__()
        self.fc = nn.Linear(width, width * layer_idx)


class Plain(nn.Module):   # no __init__ of its own: only nn.Module's (*args, **kwargs)
    def forward(self, x):
        return x


def test_a_decorated_init_is_recorded_and_read_as_the_init_it_wraps():
    """The recorder took nn.Module.__init__'s empty ``*args, **kwargs`` for MambaMixer's call (its
    own frame did not match the wrapper's signature), so the module was rebuilt with no arguments."""
    from aimgen.modules import _signature

    with recording() as records:
        net = nn.Sequential(Mixer(4, layer_idx=2), Plain())
    by_name = records.by_name(net)
    assert by_name["0"] == {"width": 4, "layer_idx": 2, "scale": 2.0}
    assert "1" not in by_name   # nothing to record: read back from the module (it takes nothing)
    assert list(_signature(Mixer).parameters) == ["self", "width", "layer_idx", "scale"]


def test_an_installed_package_is_imported_unrecorded_and_the_users_modules_still_are(tmp_path, monkeypatch):
    """Importing a library runs a great deal of code (torchvision's import took 0.7 s longer
    recorded): the profiler is off for it. A module of the user's, imported by name from the
    file's folder, and everything built after, are recorded as before."""
    import builtins
    import sys

    (tmp_path / "user_blocks.py").write_text(
        "from torch import nn\n\nclass Layer(nn.Module):\n    def __init__(self, width):\n"
        "        super().__init__()\n        self.fc = nn.Linear(width, width)\n\nMADE = Layer(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_blocks", raising=False)
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    seen = []
    original = builtins.__import__
    with recording() as records:
        assert builtins.__import__ is not original
        import colorsys  # noqa: F401  (the standard library: not recorded)
        seen.append(sys.getprofile())
        import user_blocks
        net = user_blocks.Layer(5)
    assert builtins.__import__ is original and sys.getprofile() is None
    assert seen[0] is not None   # recording again after the library's import
    assert records.by_name(user_blocks.MADE)[""] == {"width": 3}
    assert records.by_name(net)["fc"]["in_features"] == 5
