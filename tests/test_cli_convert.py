"""aimgen convert from the command line: the happy path end to end, and every kind of bad
input refused with one paragraph, a non-zero exit code and no file left behind."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import EXAMPLES, leftovers, run_cli, write_model

TINY = EXAMPLES / "tiny_cnn.py"


def test_convert_writes_valid_source_and_report(tmp_path):
    out, rep = tmp_path / "tiny_aim.py", tmp_path / "report.json"
    proc = run_cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", out, "--report-json", rep, "--no-onnx")
    assert proc.returncode == 0, proc.stderr
    assert "tapped" in proc.stdout and "base params: 5,418 || aim params:" in proc.stdout
    assert "[ok] parameter count" in proc.stdout and "[ok] carry" in proc.stdout
    data = json.loads(rep.read_text())
    for key in ("base_params", "aim_params", "delta", "memory_shape", "taps", "untapped", "update_blocks"):
        assert key in data
    assert data["aim_params"] - data["base_params"] == sum(data["delta"][k] for k in ("memory", "taps", "updates"))
    assert [t["layer"] for t in data["taps"]] == ["conv1", "conv2", "fc"]
    text = out.read_text()
    assert "def build_model()" in text and "EXAMPLE_INPUT_SHAPES = [(1, 3, 32, 32)]" in text
    assert leftovers(tmp_path, {"tiny_aim.py", "report.json"}) == []


def test_python_dash_m_matches_the_command(tmp_path):
    proc = run_cli("--help")
    assert proc.returncode == 0 and "convert" in proc.stdout and "export" in proc.stdout


BAD_CASES = {
    "missing file": ("nope.py", ["--input-shape", "1,3,32,32"], "no such file"),
    "syntax error": ("SYNTAX", ["--input-shape", "1,3,32,32"], ":3: syntax error"),
    "no candidate": ("EMPTY", ["--input-shape", "1,3,32,32"], "found no model"),
    "several candidates": ("TWO", ["--input-shape", "1,3,32,32"], "several candidate models"),
    "constructor needs arguments": ("ARGS", ["--input-shape", "1,3,32,32"], "needs arguments (width)"),
    "wrong input shape": ("TINY", ["--input-shape", "1,3,32"], "failed at layer conv1 (Conv2d)"),
    "bad shape text": ("TINY", ["--input-shape", "1,x,3"], "is not a shape"),
    "no input shape": ("TINY", [], "no --input-shape given"),
    "pattern matches nothing": ("TINY", ["--input-shape", "1,3,32,32", "--layers", "block9.*"],
                                "--layers 'block9.*' matches no weight layer"),
    "skip matches nothing": ("TINY", ["--input-shape", "1,3,32,32", "--skip", "Conv3d"],
                             "--skip 'Conv3d' matches no weight layer"),
    "budget too small": ("TINY", ["--input-shape", "1,3,32,32", "--budget", "0.001"],
                         "over --budget 0.001"),
}
SOURCES = {
    "SYNTAX": "import torch\nclass Net(torch.nn.Module):\n    def forward(self, x) return x\n",
    "EMPTY": "import torch\nx = 3\n",
    "TWO": "from torch import nn\nclass A(nn.Module):\n    pass\nclass B(nn.Module):\n    pass\n",
    "ARGS": "from torch import nn\nclass Net(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
            "        self.fc = nn.Linear(width, 2)\n    def forward(self, x):\n        return self.fc(x)\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_refused_cleanly(case, tmp_path, cli):
    which, extra, expected = BAD_CASES[case]
    if which == "TINY":
        target = TINY
    elif which in SOURCES:
        target = write_model(tmp_path, SOURCES[which])
    else:
        target = tmp_path / which
    before = set(p.name for p in tmp_path.iterdir())
    code, out, err = cli("convert", target, *extra, "-o", tmp_path / "out.py", "--no-onnx")
    assert code != 0
    assert expected in err, err
    assert "Traceback" not in err and err.count("\n") == 1  # one paragraph
    assert leftovers(tmp_path, before) == []


def test_existing_output_is_refused_without_force(tmp_path, cli):
    out = tmp_path / "out.py"
    out.write_text("# mine\n")
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", out, "--no-onnx")
    assert code != 0 and "exists already" in err and "--force" in err
    assert out.read_text() == "# mine\n"
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", out, "--no-onnx", "--force", "-q")
    assert code == 0, err
    assert "class AimTinyCNN" in out.read_text()


def test_no_traceback_unless_debug(tmp_path):
    bad = write_model(tmp_path, SOURCES["SYNTAX"])
    proc = run_cli("convert", bad, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("--debug", "convert", bad, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_name_may_be_a_builder_function_or_an_instance(tmp_path, cli):
    src = ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
           "        self.fc = nn.Linear(n, 3)\n    def forward(self, x):\n        return self.fc(x)\n"
           "def build_model():\n    return Net(8)\ninstance = Net(8)\n")
    path = write_model(tmp_path, src)
    for name in ("build_model", "instance"):
        code, out, err = cli("convert", f"{path}:{name}", "--input-shape", "2,8", "-o", tmp_path / f"{name}.py",
                             "--no-onnx", "-q")
        assert code == 0, err
        assert "MemoryLinear(8, 3, memory_features=" in (tmp_path / f"{name}.py").read_text()


def test_an_output_folder_nobody_can_write_is_a_clear_error(tmp_path, cli):
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", "/sys/aimgen_out.py", "--no-onnx")
    assert code == 2 and "internal error" not in err
    assert "/sys/aimgen_out.py: cannot write there" in err and "writable location" in err
    assert not list(Path("/sys").glob("*aimgen_out*"))


# --- issue 12: the first hour of a new user -------------------------------------------------


def test_progress_lines_come_in_order_and_the_table_before_validation_ends(tmp_path):
    """Piped (not a terminal): the model line, the table and summary (flushed while validation
    still runs), the validation intro, then every phase ('... ') before its checks, and 'wrote'
    last."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "aimgen", "convert", str(TINY), "--input-shape", "1,3,32,32",
                             "-o", str(tmp_path / "t.py")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, running_at_summary = [], None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("base params:"):
            running_at_summary = proc.poll() is None
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert running_at_summary, "the summary came only after the process ended"
    assert not any("\x1b[" in ln for ln in lines)  # no live display, no colours in a pipe

    def at(prefix: str) -> int:
        return next(i for i, ln in enumerate(lines) if ln.startswith(prefix))

    order = [at("model: tiny_cnn.py:TinyCNN"), at("base params: 5,418"), at("weights: none given"),
             at("validating "), at("[ok] imports"), at("... fresh process"), at("... ONNX export (stateful graph"),
             at("[ok] onnx export (stateful)"), at("[ok] onnxruntime parity (stateful, batch 1)"),
             at("[ok] stateful carry"), at("[ok] onnx export (stateless)"), at("[ok] onnxruntime parity (stateless, "
                                                                                "batch 3)"),
             at("[ok] fresh import"), at("[ok] parameter count"), at("wrote ")]
    assert order == sorted(order), lines
    intro = lines[at("validating ")]
    assert "the long part" in intro and "--no-onnx skips it" in intro and f"aimgen validate {tmp_path / 't.py'}" in intro
    assert lines[-1] == f"wrote {tmp_path / 't.py'}"
    exports = [ln for ln in lines if re.search(r"(exported|traced).* in \d+\.\d s", ln)]
    assert len(exports) == 1, exports  # one export, one time


def test_version():
    import aimgen

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"aimgen {aimgen.__version__}"


def test_options_are_never_abbreviated_and_the_flag_is_suggested(tmp_path, cli):
    with pytest.raises(SystemExit) as exit_:
        cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py", "--memory", "4096")
    assert exit_.value.code == 2
    proc = run_cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py", "--memory", "4096")
    assert proc.returncode == 2 and not (tmp_path / "o.py").exists()
    assert "unrecognized arguments: --memory 4096 (did you mean --memory-size?" in proc.stderr
    assert proc.stderr.startswith("usage: aimgen convert ")  # the sub-command's usage, not the top level's
    proc = run_cli("export", "x.py", "-o", "m.onnx", "--stateful", "--opsett", "18")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: aimgen export ")
    assert "did you mean --opset?" in proc.stderr


def _parsers():
    from aimgen.cli import build_parser

    parser = build_parser(["convert"])
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, sub.choices


def test_every_option_has_help_with_its_default():
    import argparse

    parser, commands = _parsers()
    for name in ("convert", "validate", "export", "diff"):
        for action in commands[name]._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            text = commands[name].formatter_class("x")._get_help_string(action) or ""
            where = f"aimgen {name} {'/'.join(action.option_strings) or action.metavar}"
            assert len(text) > 15, where
            if action.option_strings:
                assert "default" in text.lower() or "required" in text.lower(), f"{where}: {text}"
    budget = next(a for a in commands["convert"]._actions if "--budget" in a.option_strings)
    assert "5% of the base parameters" in budget.help
    assert not parser.allow_abbrev and all(not p.allow_abbrev for p in commands.values())


def test_it_says_which_candidate_it_picked_and_why(tmp_path, cli):
    src = ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, n=8):\n        super().__init__()\n"
           "        self.fc = nn.Linear(n, 3)\n    def forward(self, x):\n        return self.fc(x)\n"
           "class Other(Net):\n    pass\n"
           "def build_model():\n    return Net(8)\n")
    path = write_model(tmp_path, src)
    code, out, err = cli("convert", path, "--input-shape", "2,8", "-o", tmp_path / "o.py", "--no-onnx")
    assert code == 0, err
    assert out.splitlines()[0] == ("model: model.py:build_model (Net); picked because a builder function comes before "
                                   "Net, Other (builder functions, then module instances, then classes); name another "
                                   "as FILE.py:NAME")


def test_no_candidate_says_what_a_candidate_is(tmp_path, cli):
    path = write_model(tmp_path, "import torch\nx = 3\n")
    code, _, err = cli("convert", path, "--input-shape", "1,3", "-o", tmp_path / "o.py")
    assert code == 2 and "Candidates: none" not in err
    assert "a candidate is a zero-argument build_model() or build() function" in err
    assert "`def build_model(): return MyNet(num_classes=10)`" in err


def test_a_torch_message_is_followed_by_a_full_stop_before_the_hint(cli, tmp_path):
    code, _, err = cli("convert", TINY, "--input-shape", "1,1,32,32", "-o", tmp_path / "o.py")
    assert code == 2 and "channels instead. Check --input-shape" in err


def test_a_missing_file_is_reported_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom aimgen.cli import main\n"
            "for args in (['convert', 'nope.py', '--input-shape', '1,3', '-o', 'o.py'],\n"
            "             ['validate', 'nope_aim.py'], ['export', 'nope_aim.py', '-o', 'm.onnx'],\n"
            "             ['convert', sys.argv[1], '--input-shape', '1,3', '-o', 'o.py', '--weights', 'nope.pt']):\n"
            "    assert main(args) == 2\n"
            "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(TINY)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert proc.stderr.count("no such file") == 4
    assert "weights file nope.pt: no such file" in proc.stderr


def test_without_weights_it_says_the_model_starts_random(tmp_path, cli):
    code, out, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py", "--no-onnx")
    assert code == 0, err
    assert ("weights: none given: the model starts from random initialisation (seeded); --weights PATH starts it "
            "from the base model's trained weights") in out


def test_a_stale_weights_file_beside_the_output_is_not_left_to_be_taken(tmp_path, cli):
    """Converting again without --weights over an output that had them: the old OUT.pt would be
    picked up by export/validate as this model's weights; refused, or removed with --force."""
    (tmp_path / "o.py").write_text("# old\n")
    (tmp_path / "o.pt").write_bytes(b"old weights")
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py", "--no-onnx", "--force")
    assert code == 0, err
    assert not (tmp_path / "o.pt").exists()
    (tmp_path / "o.pt").write_bytes(b"old weights")
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", tmp_path / "p.py", "--no-onnx")
    assert code == 0  # another output name: o.pt is not beside it
    code, _, err = cli("convert", TINY, "--input-shape", "1,3,32,32", "-o", tmp_path / "o.py", "--no-onnx")
    assert code == 2 and "exists already" in err  # o.py itself


def test_an_internal_error_exits_3_and_says_it_is_a_bug(tmp_path):
    from aimgen.cli.common import cli_text
    from aimgen.errors import InternalError

    err = InternalError("fc.weight: widened to (2, 3) but the model has (2, 4).", hint="This is a bug in aimgen.")
    assert err.exit_code == 3 and cli_text(err).endswith("This is a bug in aimgen.")


def test_a_model_the_onnx_exporter_cannot_take_converts_with_the_onnx_check_not_possible(tmp_path, cli):
    """torch.special.i0 has no ONNX function: the base model does not export, so neither can its
    AiM version. That is no failure of the conversion (it was reported as a bug in aimgen): the
    check says why it is not possible, and the file is written."""
    src = ("import torch\nfrom torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n"
           "        super().__init__()\n        self.fc = nn.Linear(8, 3)\n"
           "    def forward(self, x):\n        return torch.special.i0(self.fc(x))\n")
    path = write_model(tmp_path, src)
    out = tmp_path / "net_aim.py"
    code, stdout, err = cli("convert", f"{path}:Net", "--input-shape", "2,8", "-o", out)
    assert code == 0, err
    assert ("[not possible] onnx export: not possible for this model: the ONNX exporter has no function for "
            "prims.bessel_i0, an operation the base model computes") in stdout
    assert "[ok] forward/backward" in stdout and out.exists()


def test_a_failed_validation_says_whose_doing_it_may_be():
    """Only ONNX checks failed, or eval() was random: the base model may do the same, and the
    hint says how to tell; anything else is aimgen's bug."""
    from aimgen.api import BUG_HINT, invalid_hint

    assert "`onnx=False` converts without the ONNX checks" in invalid_hint(("onnx export (stateful)", "stateful carry (3 calls)"))
    assert "eval() forward is random too" in invalid_hint(("eval determinism",))
    assert invalid_hint(("onnx export (stateful)", "parameter count")) == BUG_HINT
    assert invalid_hint(()) == BUG_HINT
