"""aimgen experiment: a tiny end-to-end run, the parameter-matched wider arm, and bad input
refused (clearly, before any training) rather than failing mid-run."""
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
QUICK = ["--seeds", "1", "--epochs", "2", "--limit", "12", "--threads", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine is shared: one torch thread per test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _args(*argv: str):
    return build_parser().parse_args(["experiment", *argv])


def _image_folder(root: Path, classes: dict[str, list[tuple[int, int]]]) -> Path:
    """DIR/CLASS/i.png with images of the given (width, height) sizes."""
    from PIL import Image

    for name, sizes in classes.items():
        (root / name).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, color=(i * 40 % 255, 80, 160)).save(root / name / f"{i}.png")
    return root


def test_quick_digits_run_writes_plot_table_and_numbers(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["experiment", DIGITS, "--data", "digits", "--out", str(out), *QUICK]) == 0
    png = (out / "val_accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    table = (out / "results.md").read_text()
    assert experiment.TABLE_HEADER in table
    for arm in ("| base |", "| aim |", "| wider |"):
        assert arm in table
    data = json.loads((out / "results.json").read_text())
    assert {r["arm"] for r in data["runs"]} == {"base", "aim", "wider"}
    assert all(1 <= len(r["val_acc"]) <= 2 and 0 <= r["test_acc"] <= 1 for r in data["runs"])
    printed = capsys.readouterr()
    assert "| base |" in printed.out
    # not a terminal: one plain progress line per run instead of a live bar
    assert "aim seed 0: 2 epochs" in printed.err and "\x1b[" not in printed.err
    # results are not overwritten silently
    assert main(["experiment", DIGITS, "--data", "digits", "--out", str(out), *QUICK]) == 2
    assert "exists already" in capsys.readouterr().err


def test_image_folder_of_mixed_sizes_is_resized(tmp_path):
    data = _image_folder(tmp_path / "data", {"cats": [(9, 7), (20, 31), (8, 8), (5, 12)] * 2,
                                            "dogs": [(8, 8), (40, 10), (11, 11), (3, 3)] * 2})
    splits = experiment.load_splits(str(data), channels=1, input_size=(8, 8), limit=None,
                                    fractions=(0.25, 0.25), split_seed=0)
    assert splits.input_shape == (1, 8, 8) and splits.classes == ["cats", "dogs"]
    assert all(splits.train[i][0].shape == (1, 8, 8) for i in range(len(splits.train)))
    out = tmp_path / "out"
    code = main(["experiment", f"{_models(tmp_path)}:build_model", "--data", str(data),
                 "--input-size", "8,8", "--out", str(out), "--arms", "base,aim", "--seeds", "1",
                 "--epochs", "1", "--val-fraction", "0.25", "--test-fraction", "0.25", "-q"])
    assert code == 0 and (out / "results.md").exists()


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


def _models(tmp_path: Path) -> Path:
    path = tmp_path / "small_models.py"
    path.write_text(SMALL_MODELS)
    return path


def _refused(tmp_path, *argv: str) -> str:
    """Run through the experiment's own entry point; it must fail before writing anything."""
    out = tmp_path / "out"
    with pytest.raises(AimgenError) as err:
        experiment.run(_args(*argv, "--out", str(out), "-q"))
    assert not any(out.glob("*")) if out.exists() else True
    return str(err.value)


def test_directory_without_classes(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "loose.png").write_bytes(b"")
    msg = _refused(tmp_path, DIGITS, "--data", str(tmp_path / "data"), "--input-size", "8,8")
    assert "no class folders" in msg and "DIR/CLASS/IMAGE" in msg


def test_class_without_images(tmp_path):
    data = _image_folder(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    (data / "empty_class").mkdir()
    (data / "empty_class" / "notes.txt").write_text("no images here")
    msg = _refused(tmp_path, DIGITS, "--data", str(data), "--input-size", "8,8")
    assert "hold no images" in msg and "empty_class" in msg


def test_unreadable_images_are_named(tmp_path):
    data = _image_folder(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    (data / "b" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = (data / "a" / "0.png").read_bytes()
    (data / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    msg = _refused(tmp_path, DIGITS, "--data", str(data), "--input-size", "8,8")
    assert "2 image file(s) cannot be read" in msg
    assert "broken.jpg" in msg and "truncated.png" in msg


def test_output_size_must_match_classes(tmp_path, capsys):
    target = f"{_models(tmp_path)}:five_way"
    msg = _refused(tmp_path, target, "--data", "digits", "--limit", "5")
    assert "outputs 5 values per sample but the data has 10 classes" in msg
    assert main(["experiment", target, "--data", "digits", "--limit", "5", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimgen experiment: error:") and "num_classes=10" in err


def test_folder_needs_input_size(tmp_path):
    data = _image_folder(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    assert "--input-size" in _refused(tmp_path, DIGITS, "--data", str(data))


@pytest.mark.parametrize("target,shape", [(DIGITS, (1, 8, 8)),
                                          (str(ROOT / "examples" / "tiny_cnn.py"), (3, 32, 32))])
def test_wider_arm_matches_aim_parameter_count(target, shape):
    import aimgen
    from aimgen.loader import load_model

    base = load_model(target).model
    aim = aimgen.convert(base, torch.zeros(1, *shape)).plan.aim_params
    wider, hidden = experiment.widened(base, aim - experiment.count_params(base), shape, seed=0)
    assert hidden >= 1
    assert abs(experiment.count_params(wider) - aim) / aim < 0.03
    assert wider(torch.zeros(2, *shape)).shape == base(torch.zeros(2, *shape)).shape


def test_arms_share_init_and_split_is_fixed():
    """Within a seed the arms start from the base's weights wherever they share a layer, and
    the split does not depend on the run seed."""
    import aimgen
    from aimgen.loader import load_model

    base = load_model(DIGITS).model
    seeded = experiment.reinitialised(base, 3)
    aim = aimgen.convert(base, torch.zeros(1, 1, 8, 8)).build(load_weights=False)
    assert experiment.share_init(seeded, aim) == len(seeded.state_dict())
    assert torch.equal(aim.conv1.weight[:, :1], seeded.conv1.weight)
    assert torch.equal(aim.fc.bias, seeded.fc.bias)
    labels = [i % 3 for i in range(30)]
    a, b = experiment.stratified_split(labels, (0.2, 0.2), 0), experiment.stratified_split(labels, (0.2, 0.2), 0)
    assert a == b and not set(a[0]) & set(a[1]) and not set(a[1]) & set(a[2])
    assert sorted(a[0] + a[1] + a[2]) == list(range(30))
