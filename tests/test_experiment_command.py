"""aimgen/experiment/command.py: `aimgen experiment` end to end (one experiment: outputs, refusals)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimgen import experiment
from aimgen.cli import main
from test_experiment_runner import DIGITS, QUICK, _models, refused

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_digits_run_writes_plot_table_and_numbers(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["experiment", DIGITS, "--data", "digits", "--out", str(out), *QUICK]) == 0
    png = (out / "val_accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    table = (out / "results.md").read_text()
    assert experiment.TABLE_HEADER in table
    for arm in ("| base |", "| aim |", "| wider |"):
        assert arm in table
    assert "Paired differences (mean ± standard error): AiM minus base:" in table
    data = json.loads((out / "results.json").read_text())
    assert {r["arm"] for r in data["runs"]} == {"base", "aim", "wider"}
    assert all(1 <= len(r["val_acc"]) <= 2 and 0 <= r["test_acc"] <= 1 for r in data["runs"])
    assert all(len(r["val_loss"]) == len(r["val_acc"]) for r in data["runs"])
    assert len(data["aimgen_commit"]) >= 7 and data["data"]["data"] == "digits"
    assert data["recipe"]["epochs"] == 2 and data["options"]["tap_width"] == 1
    printed = capsys.readouterr()
    assert "| base |" in printed.out
    # not a terminal: one plain progress line per run instead of a live bar
    assert "aim seed 0: 2 epochs" in printed.err and "\x1b[" not in printed.err
    # results are not overwritten silently
    assert main(["experiment", DIGITS, "--data", "digits", "--out", str(out), *QUICK]) == 2
    assert "exists already" in capsys.readouterr().err


def test_output_size_must_match_classes(tmp_path, capsys):
    target = f"{_models(tmp_path)}:five_way"
    msg = refused(tmp_path, target, "--data", "digits", "--limit", "5")
    assert "outputs 5 values per sample but the data has 10 classes" in msg
    assert main(["experiment", target, "--data", "digits", "--limit", "5", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimgen experiment: error:") and "num_classes=10" in err
