"""Paths in and out (aimgen.files): targets split and checked without torch, outputs written
all or nothing, existing files refused with the API's argument name."""
from __future__ import annotations

from pathlib import Path

import pytest

from aimgen.errors import AimgenError, LoadError
from aimgen.files import check_input, check_source, check_targets, split_target, staged


def test_split_and_check_source(tmp_path):
    assert split_target("m.py:Net") == (Path("m.py"), "Net")
    assert split_target("dir/m.py") == (Path("dir/m.py"), None)
    assert split_target(r"C:\models\m.py") == (Path(r"C:\models\m.py"), None)
    (tmp_path / "m.py").write_text("")
    assert check_source(f"{tmp_path / 'm.py'}:Net") == (tmp_path / "m.py", "Net")
    with pytest.raises(LoadError, match="no such file"):
        check_source(str(tmp_path / "nope.py"))
    (tmp_path / "m.txt").write_text("")
    with pytest.raises(LoadError, match="not a Python file"):
        check_source(str(tmp_path / "m.txt"))
    with pytest.raises(AimgenError, match="weights file .*w.pt: no such file") as err:
        check_input(tmp_path / "w.pt", "weights file", "Give one.", field="weights")
    assert err.value.field == "weights"


def test_existing_targets_are_refused_naming_the_api_argument(tmp_path):
    (tmp_path / "o.py").write_text("mine")
    with pytest.raises(AimgenError) as err:
        check_targets([tmp_path / "o.py"], force=False)
    assert "exists already" in str(err.value) and "`force=True`" in str(err.value) and "--force" not in str(err.value)
    assert err.value.field == "force"
    check_targets([tmp_path / "o.py"], force=True)
    with pytest.raises(AimgenError, match="does not exist"):
        check_targets([tmp_path / "no" / "o.py"], force=True)


def test_staged_writes_all_or_nothing_and_removes_on_commit(tmp_path):
    (tmp_path / "stale.pt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged() as stage:
            stage.write_text(tmp_path / "a.py", "a")
            stage.remove(tmp_path / "stale.pt")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stale.pt"]
    with staged() as stage:
        stage.write_text(tmp_path / "a.py", "a")
        stage.remove(tmp_path / "stale.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]
