"""aimgen/cli/common.py: what every sub-command shares: API argument names turned into the
flags a command-line user typed, and a parser that completes no abbreviation."""
from __future__ import annotations

from aimgen.cli.common import cli_text, cli_words, flag_of
from aimgen.errors import AimgenError
from conftest import EXAMPLES, run_cli


def test_api_arguments_become_flags():
    assert flag_of("memory_size") == "--memory-size" and flag_of("base_weights") == "--weights"
    assert flag_of("no_such_argument") is None
    assert cli_words("Give `input_shapes=1,3,8,8`.") == "Give --input-shape 1,3,8,8."
    assert cli_words("or `onnx=False`") == "or --no-onnx"
    assert cli_words("`flat=True` writes one forward") == "--flat writes one forward"


def test_the_field_an_error_is_about_is_named_as_its_flag():
    err = AimgenError("memory_size=-1: must be a positive number of floats.", field="memory_size")
    assert cli_text(err).startswith("--memory-size -1: must be a positive number of floats.")
    # another word that merely contains the field's name is left alone
    assert cli_words("max_memory_size=3", field="memory_size") == "max_memory_size=3"


def test_an_abbreviated_flag_is_refused_with_the_full_one(tmp_path):
    done = run_cli("convert", str(EXAMPLES / "tiny_cnn.py"), "--input-sha", "1,3,32,32", "-o", str(tmp_path / "x.py"))
    code, err = done.returncode, done.stderr
    assert code == 2 and "Traceback" not in err
    assert "did you mean --input-shape? aimgen does not complete abbreviated options" in err
    assert not (tmp_path / "x.py").exists()


def test_every_command_prints_its_help(capsys):
    """A help text with a percent sign ("5% of the base") once crashed argparse's formatting."""
    import pytest

    from aimgen.cli import main

    for command in ("convert", "validate", "export", "diff", "experiment"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0, command
        assert out.startswith(f"usage: aimgen {command}"), command
    main_help = run_cli("convert", "--help").stdout
    assert "i.e. 5% of the base parameters" in main_help
