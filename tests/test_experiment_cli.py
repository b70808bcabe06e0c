"""aimgen/experiment/cli.py: the parser and the checks made before anything is loaded."""
from __future__ import annotations

import pytest

from test_experiment_runner import DIGITS, refused


@pytest.mark.parametrize("argv,expected", [
    (["--arms", "aim,wider"], "base is always needed"),
    (["--seeds", "0"], "--seeds 0: must be at least 1"),
    (["--val-fraction", "0.9"], "leaving some data to train on"),
])
def test_bad_numbers_are_refused(tmp_path, argv, expected):
    assert expected in refused(tmp_path, DIGITS, "--data", "digits", *argv)


def test_model_and_data_are_needed(tmp_path):
    assert "needs a model file and --data" in refused(tmp_path, DIGITS)


def test_sweep_takes_no_model_nor_transform_options(tmp_path):
    assert "do not also give a model file" in refused(tmp_path, "--sweep", "quick", "--data", "digits")
    msg = refused(tmp_path, "--sweep", "quick", "--memory-size", "64")
    assert "memory configurations from the sweep set" in msg and "FILE.json" in msg
