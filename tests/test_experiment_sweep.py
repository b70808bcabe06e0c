"""Sweeps: the quick set end to end through the command line (its files, by content), a
stopped sweep resumes, finished results are not overwritten silently, and sweep files are
checked before any training."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("aeon")
pytest.importorskip("matplotlib")

from aimgen.cli import main  # noqa: E402
from aimgen.experiment import sweep  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One run of the quick set (about 10 s on one thread), shared by the tests below."""
    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp("sweep") / "out"
    code = main(["experiment", "--sweep", "quick", "--out", str(out), "--threads", "1", "-q"])
    torch.set_num_threads(before)
    assert code == 0
    return out


def test_quick_sweep_writes_its_files(quick):
    page = (quick / "ItalyPowerDemand" / "results.md").read_text()
    assert page.startswith("# ItalyPowerDemand: does memory help?")
    assert "## fcn_tsc.py:build_model, memory configuration: default" in page
    assert "| base | 264,962 |" in page and "| aim |" in page and "| wider |" in page
    assert "Published accuracy of the base architecture (FCN): 96.1% ± 0.3" in page
    assert "53 train / 14 val (from the official 67 train) / 1029 test (official)" in page
    png = (quick / "ItalyPowerDemand" / "val_accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    summary = (quick / "summary.md").read_text()
    assert "| ItalyPowerDemand | fcn_tsc | default |" in summary and "| 96.1 ± 0.3 |" in summary
    assert "CPU time, all experiments:" in summary
    data = json.loads((quick / "results.json").read_text())
    assert data["sweep"]["name"] == "quick" and data["not_run"] == []
    row = data["summary"][0]
    assert row["key"] == "ItalyPowerDemand/fcn_tsc/default" and row["memory_floats"] > 1000
    assert set(row["arms"]) == {"base", "aim", "wider"} and row["published"]["mean"] == 96.1
    runs = data["experiments"][0]["record"]["runs"]
    assert len(runs) == 3 and all(len(r["val_acc"]) == 2 for r in runs)
    assert len(data["aimgen_commits"][0]) >= 40
    cell = json.loads((quick / "cells" / "ItalyPowerDemand__fcn_tsc__default.json").read_text())
    assert cell["spec"]["recipe"]["epochs"] == 2 and cell["spec"]["seeds"] == [0]


def test_a_finished_sweep_is_kept_and_not_overwritten(quick, capsys):
    before = (quick / "cells" / "ItalyPowerDemand__fcn_tsc__default.json").read_text()
    assert main(["experiment", "--sweep", "quick", "--out", str(quick), "--threads", "1"]) == 0
    assert "finished already" in capsys.readouterr().err
    assert (quick / "cells" / "ItalyPowerDemand__fcn_tsc__default.json").read_text() == before
    # other settings: refused, not silently rerun
    assert main(["experiment", "--sweep", "quick", "--out", str(quick), "--epochs", "1", "-q"]) == 2
    assert "with other settings" in capsys.readouterr().err


def test_only_must_match_an_experiment(tmp_path, capsys):
    assert main(["experiment", "--sweep", "quick", "--only", "OSULeaf", "--out", str(tmp_path)]) == 2
    assert "matches none of the sweep's experiments: ItalyPowerDemand/fcn_tsc/default" in capsys.readouterr().err


def test_sweep_json_file_is_checked_before_training(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"groups": [{"data": ["ucr:GunPoint"], "models": ["nowhere.py"]}]}))
    assert main(["experiment", "--sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "sweep model 'nowhere.py': no such file" in capsys.readouterr().err
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"groups": [{"data": ["ucr:GunPoint"], "models": [str(sweep.REPO_ROOT / "examples" / "fcn_tsc.py")],
                                           "configs": {"neg": {"memory_size": -1}}}]}))
    assert main(["experiment", "--sweep", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "memory_size=-1" in capsys.readouterr().err
    assert main(["experiment", "--sweep", "nonesuch", "--out", str(tmp_path / "o")]) == 2
    assert "neither a built-in set (quick, main, memory)" in capsys.readouterr().err


def test_built_in_sets_cover_the_readme_comparison():
    main_set = sweep.SETS["main"]
    ucr = main_set["groups"][0]
    assert main_set["seeds"] >= 5 and len(ucr["data"]) >= 4
    assert {m.split("/")[-1] for m in ucr["models"]} == {"fcn_tsc.py", "resnet_tsc.py"}
    assert main_set["groups"][1]["data"] == ["digits"]
    assert main_set["groups"][1]["configs"]["mem-1024"]["memory_size"] == 1024
    assert set(sweep.SETS["memory"]["groups"][0]["configs"]) == {"default", "tap-full", "mem-50176"}
    assert sweep.SETS["memory"]["groups"][0]["recipe"] == ucr["recipe"]  # its default cell is the main sweep's
