"""The UCR/UEA loader: real bundled sets (official split sizes, shapes, z-normalisation,
multivariate and unequal-length sets), a set in --ucr-dir, a bad name (the message lists the
available sets) and aeon not installed (the message says what to install)."""
from __future__ import annotations

import builtins
import sys
from collections import Counter

import pytest
import torch

pytest.importorskip("aeon")

from aimgen.experiment import ucr  # noqa: E402
from aimgen.experiment.data import load_splits  # noqa: E402
from aimgen.experiment.errors import DataError  # noqa: E402


def _tensor(ds) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[ds[i] for i in range(len(ds))])
    return torch.stack(xs), torch.tensor([int(y) for y in ys])


def test_gunpoint_keeps_the_official_split_and_normalises_each_series():
    s = load_splits("ucr:GunPoint", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    # GunPoint: 50 official training series (24 of class 1, 26 of class 2), 150 test series, length 150
    assert (len(s.train), len(s.val), len(s.test)) == (40, 10, 150)
    assert s.meta["official_train"] == 50 and s.meta["official_test"] == 150
    assert s.input_shape == (1, 150) and s.classes == ["1", "2"] and s.num_classes == 2
    x, y = _tensor(s.train)
    assert x.shape == (40, 1, 150) and x.dtype == torch.float32
    assert torch.allclose(x.mean(-1), torch.zeros(40, 1), atol=1e-5)
    assert torch.allclose(x.std(-1, unbiased=False), torch.ones(40, 1), atol=1e-4)
    xt, _ = _tensor(s.test)
    assert torch.allclose(xt.std(-1, unbiased=False), torch.ones(150, 1), atol=1e-4)
    # validation is stratified: round(0.2 * 24) = 5 and round(0.2 * 26) = 5
    _, yv = _tensor(s.val)
    assert Counter(yv.tolist()) == {0: 5, 1: 5}
    assert s.meta["znorm"] == "series" and "official" in s.description


def test_split_depends_on_split_seed_only():
    a = load_splits("ucr:ArrowHead", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    b = load_splits("ucr:arrowhead", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    c = load_splits("ucr:ArrowHead", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=1)
    assert a.train.indices == b.train.indices and a.val.indices == b.val.indices  # names match case-insensitively
    assert a.val.indices != c.val.indices
    assert not set(a.train.indices) & set(a.val.indices)
    assert sorted(a.train.indices + a.val.indices) == list(range(36))  # ArrowHead: 36 official training series


def test_multivariate_set_is_channels_by_length_with_training_statistics():
    s = load_splits("ucr:BasicMotions", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2),
                    split_seed=0)
    assert s.input_shape == (6, 100) and s.num_classes == 4 and s.meta["znorm"] == "channel"
    assert (s.meta["official_train"], s.meta["official_test"]) == (40, 40)
    # per channel, the official training split (train + val) has mean 0 and std 1 over series and time
    x = torch.cat([_tensor(s.train)[0], _tensor(s.val)[0]])
    assert torch.allclose(x.mean(dim=(0, 2)), torch.zeros(6), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2), unbiased=False), torch.ones(6), atol=1e-4)
    # but not per series: amplitude differences between series survive (standing vs running)
    per_series_std = x.std(-1, unbiased=False)
    assert per_series_std.max() / per_series_std.min() > 10


def test_unequal_lengths_are_resampled_to_the_longest_training_series():
    s = load_splits("ucr:JapaneseVowels", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2),
                    split_seed=0)
    lo, hi = s.meta["resampled_from_lengths"]
    assert s.input_shape == (12, s.meta["length"]) and lo < hi and s.meta["length"] <= hi
    assert (s.meta["official_train"], s.meta["official_test"], s.num_classes) == (270, 370, 9)
    assert _tensor(s.test)[0].shape == (370, 12, s.meta["length"])


def test_resample_keeps_the_ends_and_interpolates_linearly():
    out = ucr._resample([torch.tensor([[0.0, 2.0, 4.0]]), torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]])], 5)
    assert torch.allclose(out[0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    assert torch.equal(out[1, 0], torch.ones(5, dtype=torch.float64))


def test_limit_caps_train_and_test_per_class():
    s = load_splits("ucr:GunPoint", channels=1, input_size=None, limit=5, fractions=(0.2, 0.2), split_seed=0)
    assert (len(s.train) + len(s.val), len(s.test)) == (10, 10)


def test_unknown_name_lists_the_available_sets():
    with pytest.raises(DataError) as err:
        load_splits("ucr:GunPoynt", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    msg = str(err.value)
    assert "ucr:GunPoynt" in msg and "no UCR/UEA classification set" in msg
    for name in ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf"):
        assert name in msg
    assert "Covid3Month," not in msg.replace("Covid3Month_disc", "")  # a regression set is not offered
    assert "--ucr-dir" in msg and "never downloads" in msg


def test_unknown_name_through_the_command_line(cli):
    from conftest import EXAMPLES

    code, _, err = cli("experiment", EXAMPLES / "fcn_tsc.py", "--data", "ucr:NoSuchSet", "--out", "unused")
    assert code == 2 and err.startswith("aimgen experiment: error: --data ucr:NoSuchSet")
    assert "Available: ACSF1, ArrowHead, BasicMotions" in err


def test_missing_extra_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_aeon(name, *args, **kwargs):
        if name == "aeon" or name.startswith("aeon."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m == "aeon" or m.startswith("aeon.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_aeon)
    with pytest.raises(DataError) as err:
        load_splits("ucr:GunPoint", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    msg = str(err.value)
    assert "optional package aeon, which is not installed" in msg
    assert "pip install 'aimgen[experiment]'" in msg


TS_HEADER = """@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength false
@classLabel true a b
@data
"""


def test_a_set_in_ucr_dir(tmp_path):
    folder = tmp_path / "archive" / "Tiny"
    folder.mkdir(parents=True)
    train = "".join(f"{','.join(str(v + i) for v in range(4 + i % 3))}:{'ab'[i % 2]}\n" for i in range(10))
    test = "".join(f"{','.join(str(v * i) for v in range(5))}:{'ab'[i % 2]}\n" for i in range(1, 5))
    (folder / "Tiny_TRAIN.ts").write_text(TS_HEADER + train)
    (folder / "Tiny_TEST.ts").write_text(TS_HEADER + test)
    assert "Tiny" in ucr.available(tmp_path / "archive")
    s = load_splits("ucr:tiny", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0,
                    ucr_dir=str(tmp_path / "archive"))
    assert s.classes == ["a", "b"] and s.input_shape == (1, 6)  # the longest training series has 6 steps
    assert (len(s.train), len(s.val), len(s.test)) == (8, 2, 4)
    assert s.meta["source"] == str(folder) and s.meta["resampled_from_lengths"] == [4, 6]
    with pytest.raises(DataError, match="--ucr-dir .*no such directory"):
        load_splits("ucr:Tiny", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0,
                    ucr_dir=str(tmp_path / "nowhere"))
