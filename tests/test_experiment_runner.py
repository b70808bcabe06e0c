"""``aimgen experiment`` end to end: a tiny digits run and a tiny UCR run through the real
command line, results never overwritten silently, and bad arguments refused before anything
is loaded or trained."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from aimgen import experiment  # noqa: E402
from aimgen.cli import build_parser, main  # noqa: E402
from aimgen.errors import AimgenError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "examples" / "digits_cnn.py")
FCN = str(ROOT / "examples" / "fcn_tsc.py")
QUICK = ["--seeds", "1", "--epochs", "2", "--limit", "12", "--threads", "1"]

SMALL_MODELS = '''
import torch


class TwoClassCNN(torch.nn.Module):
    """A 1-channel CNN with two outputs, for the image-folder test."""

    def __init__(self, outputs=2):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, outputs)

    def forward(self, x):
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1), 1))


def build_model():
    return TwoClassCNN()


def five_way():
    return TwoClassCNN(5)
'''


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine is shared: one torch thread per test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _args(*argv: str):
    return build_parser().parse_args(["experiment", *argv])


def _models(tmp_path: Path) -> Path:
    path = tmp_path / "small_models.py"
    path.write_text(SMALL_MODELS)
    return path


def refused(tmp_path, *argv: str) -> str:
    """Run through the experiment's own entry point; it must fail before writing anything."""
    out = tmp_path / "out"
    with pytest.raises(AimgenError) as err:
        experiment.run(_args(*argv, "--out", str(out), "-q"))
    assert not any(out.glob("*")) if out.exists() else True
    return str(err.value)


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


def test_quick_ucr_run_prints_the_published_accuracy(tmp_path, capsys):
    pytest.importorskip("aeon")
    out = tmp_path / "out"
    code = main(["experiment", FCN, "--data", "ucr:GunPoint", "--out", str(out), "--arms", "base",
                 "--seeds", "1", "--epochs", "1", "--limit", "6", "--threads", "1", "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "published FCN on GunPoint: 100.0% ± 0.0 (Ismail Fawaz et al. 2019)" in printed
    table = (out / "results.md").read_text()
    assert "Published accuracy of the base architecture (FCN): 100.0% ± 0.0" in table
    data = json.loads((out / "results.json").read_text())
    assert data["published"]["mean"] == 100.0 and data["built_with"] == {"in_channels": 1, "num_classes": 2}
    assert data["data"]["official_test"] == 150 and data["data"]["test"] == 12  # --limit 6 per class


def test_output_size_must_match_classes(tmp_path, capsys):
    target = f"{_models(tmp_path)}:five_way"
    msg = refused(tmp_path, target, "--data", "digits", "--limit", "5")
    assert "outputs 5 values per sample but the data has 10 classes" in msg
    assert main(["experiment", target, "--data", "digits", "--limit", "5", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimgen experiment: error:") and "num_classes=10" in err


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


def test_the_package_does_not_import_the_cli():
    """aimgen.experiment must not import aimgen.cli (the CLI imports it: no circle)."""
    import ast

    for path in (ROOT / "aimgen" / "experiment").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {node.module or ""} | {a.name for a in node.names}
                assert not (node.level == 2 and ("cli" in names)), f"{path.name} imports aimgen.cli"
                assert node.module != "aimgen.cli", f"{path.name} imports aimgen.cli"
