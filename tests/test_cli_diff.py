"""aimgen/cli/diff.py: ``aimgen diff`` prints the plain rendering against the AiM one."""
from __future__ import annotations

from conftest import EXAMPLES


def test_diff_prints_what_the_memory_adds(cli):
    code, out, _ = cli("diff", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "--color", "never")
    assert code == 0
    assert out.startswith("--- tiny_cnn.py:TinyCNN (plain)\n+++ tiny_cnn.py:TinyCNN (AiM)\n")
    assert "+        self.conv1 = MemoryConv2d(3, 16, 3, padding=1, memory_channels=1)" in out
    assert "-        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)" in out
    assert "\x1b[" not in out


def test_diff_takes_the_transform_options(cli):
    code, out, _ = cli("diff", EXAMPLES / "tiny_cnn.py", "--input-shape", "1,3,32,32", "--form", "literal")
    assert code == 0 and "+        self.conv1 = nn.Conv2d(3 + 1, 16, 3, padding=1)" in out


def test_a_missing_file_is_named(cli, tmp_path):
    code, out, err = cli("diff", tmp_path / "nowhere.py", "--input-shape", "1,3,32,32")
    assert code == 2 and out == ""
    assert "nowhere.py: no such file. Check the path to your model file." in err
