"""``aimgen experiment`` end to end: a tiny digits run and a tiny UCR run through the real
command line, results never overwritten silently, and bad arguments refused before anything
is loaded or trained."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

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


pytestmark = pytest.mark.usefixtures("one_thread")


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
