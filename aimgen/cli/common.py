"""What every sub-command shares: the parser class (no abbreviations, "did you mean", the
sub-command's own usage on a mistake, defaults in every help text), the error paragraph with
API argument names turned into flags, and the progress display."""
from __future__ import annotations

import argparse
import difflib
import re
import sys

from ..errors import AimgenError
from ..options import Options

#: API argument -> command-line flag, for the arguments that are not Options fields.
FLAGS = {"force": "--force", "weights": "--weights", "base_weights": "--weights", "random_weights": "--random-weights",
         "partial": "--weights-partial", "stateful": "--stateful", "opset": "--opset", "input_shapes": "--input-shape",
         "report_json": "--report-json", "plain": "--plain"}
#: Boolean API arguments whose flag turns them off.
NEGATED = {"onnx": "--no-onnx", "validate": "--no-validate"}
DEBUG_HELP = argparse.SUPPRESS


def flag_of(name: str) -> str | None:
    if name in FLAGS:
        return FLAGS[name]
    try:
        return Options.flag(name)
    except KeyError:
        return None


def _flag_text(name: str, value: str) -> str | None:
    if name in NEGATED:
        return NEGATED[name] if value == "False" else None
    flag = flag_of(name)
    if flag is None:
        return None
    return flag if value == "True" else f"{flag} {value}"


def cli_words(text: str, field: str | None = None) -> str:
    """``text`` as the command line says it: `name=value` (an API argument in backticks, or
    unmarked for ``field``, the argument an error is about) becomes ``--flag value``."""
    def marked(m: re.Match) -> str:
        return _flag_text(m.group(1), m.group(2)) or m.group(0)

    text = re.sub(r"`(\w+)=([^`]*)`", marked, text)
    if field and (flag_of(field) or field in NEGATED):
        text = re.sub(rf"(?<![\w.`-]){re.escape(field)}=([^\s,;)]+?)(?=[\s,;)]|:\s|:$|\.?$)",
                      lambda m: _flag_text(field, m.group(1)) or m.group(0), text)
    return text


def cli_text(err: AimgenError) -> str:
    """The error's paragraph as the command line says it (see ``cli_words``)."""
    return cli_words(str(err), err.field)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, adding '(default: X)' where a help text does not say its default;
    help texts are plain text, not %-format strings."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").replace("%", "%%")   # help texts are plain text ("5% of")
        if ("default" in text.lower() or "required" in text.lower() or action.default in (None, False, [])
                or action.default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """No silent abbreviations (``--memory`` is not ``--memory-size``), a suggestion for an
    unknown option, and a sub-command's own usage when its options are wrong."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:  # here, not in the top-level parser, so the usage shown is this command's
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def error(self, message: str):
        unknown = re.findall(r"(?:^|\s)(--?[\w-]+)", message.partition("unrecognized arguments:")[2])
        hints = [f"did you mean {', '.join(s)}?" for s in map(self.suggest, unknown) if s]
        if hints:
            message += " (" + "; ".join(hints) + " aimgen does not complete abbreviated options)"
        super().error(message)

    def suggest(self, option: str) -> list[str]:
        known = sorted({o for a in self._actions for o in a.option_strings
                        if o.startswith("--") and a.help is not argparse.SUPPRESS})
        name = option.split("=")[0]
        return [o for o in known if o.startswith(name) and o != name] or \
            difflib.get_close_matches(name, known, n=2, cutoff=0.7)


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def progress_display():
    """Live rich display on a terminal, plain ordered lines otherwise (aimgen.progress)."""
    from ..progress import for_stream

    return for_stream(sys.stdout)


def say(text: str = "") -> None:
    """One line to stdout, at once (progress must reach a pipe as it happens)."""
    print(text, flush=True)
