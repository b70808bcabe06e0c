"""Every identifier aimgen emits goes through this module.

User strings (module names, ModuleDict keys, argument names) never reach the generated source
unquoted: a name is either a safe Python identifier made from the user's string (letters,
digits and ``_`` only, not a keyword, not a builtin we rely on), or it is written as a
``repr``-quoted string literal (``getattr(obj, 'name')``, ``**{'name': ...}``).
"""
from __future__ import annotations

import builtins
import keyword
import re
import textwrap

_UNSAFE = re.compile(r"[^0-9a-zA-Z_]+")
# Names every generated file uses itself (the code generator adds the runtime's and its classes').
RESERVED = frozenset({"self", "torch", "nn", "F", "math", "operator", "builtins", "memory", "outputs"})


def is_safe_identifier(name: str) -> bool:
    """True if ``name`` can be written as-is as an attribute or keyword-argument name."""
    return (
        isinstance(name, str)
        and name.isidentifier()
        and name.isascii()
        and not keyword.iskeyword(name)
        and not keyword.issoftkeyword(name)
        and not name.startswith("__")
    )


def sanitize(text: str, default: str = "v") -> str:
    """Turn any string into a plain identifier stem: ``'layer1.0-conv'`` -> ``'layer1_0_conv'``."""
    stem = _UNSAFE.sub("_", str(text)).strip("_").lower() if text else ""
    stem = re.sub(r"_+", "_", stem)
    if not stem:
        stem = default
    if stem[0].isdigit():
        stem = f"{default}_{stem}"
    if keyword.iskeyword(stem) or keyword.issoftkeyword(stem) or hasattr(builtins, stem):
        stem = f"{stem}_"
    return stem


def class_name(text: str) -> str:
    """A CamelCase class name from any string."""
    parts = [p for p in _UNSAFE.sub(" ", str(text)).replace("_", " ").split() if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    if name[0].isdigit():
        name = "M" + name
    return name if not keyword.iskeyword(name) else name + "_"


class Namespace:
    """Hands out unique identifiers (like torch.fx's ``_Namespace``, but ours, and the only one)."""

    def __init__(self, reserved: frozenset[str] | set[str] = RESERVED):
        self._used: set[str] = set(reserved)
        self._counts: dict[str, int] = {}

    def reserve(self, name: str) -> None:
        self._used.add(name)

    @property
    def used(self) -> frozenset[str]:
        return frozenset(self._used)

    def create_class(self, text: str) -> str:
        """A unique CamelCase class name from any string."""
        stem = class_name(text)
        name, i = stem, 1
        while name in self._used:
            i += 1
            name = f"{stem}{i}"
        self._used.add(name)
        return name

    def create(self, text: str, default: str = "v") -> str:
        stem = sanitize(text, default)
        name = stem
        while name in self._used:
            self._counts[stem] = self._counts.get(stem, 0) + 1
            name = f"{stem}_{self._counts[stem]}"
        self._used.add(name)
        return name


def attribute_access(base: str, name: str) -> str:
    """Source for reading attribute ``name`` of the expression ``base``; quoted when unsafe."""
    if is_safe_identifier(name):
        return f"{base}.{name}"
    return f"getattr({base}, {name!r})"


def child_access(base: str, name: str, container_is_list: bool) -> str:
    """Source for child ``name`` of a container expression (ModuleList index or attribute)."""
    if container_is_list:
        return f"{base}[{int(name)}]"
    return attribute_access(base, name)


def comment(text: str) -> str:
    """Text safe inside a ``#`` comment: one line, non-printable characters escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


#: the longest line a generated file has (render.wrap_long_lines holds every line to it)
WIDTH = 99


def count(n: int, unit: str) -> str:
    """``1 float``, ``50,176 floats``: a number and its unit, as the report and header write them."""
    return f"{n:,} {unit}{'' if n == 1 else 's'}"


def wrapped_comment(text: str, width: int) -> list[str]:
    """Comment text on lines of at most ``width`` characters, the later ones indented."""
    return textwrap.wrap(text, width, subsequent_indent="  ", break_long_words=False) or [""]


def comment_lines(indent: str, text: str, width: int = WIDTH) -> list[str]:
    """``# text`` at ``indent``, on lines of at most ``width`` characters (later lines ``#   ``,
    as a generated file's header writes them)."""
    return [f"{indent}# {line}".rstrip() for line in wrapped_comment(text, width - len(indent) - 2)]


def docstring(text: str) -> str:
    """Text safe inside a triple-quoted docstring: backslashes, quotes and non-printable
    characters escaped, so no user string can end the docstring or the line."""
    text = comment(str(text).replace("\\", "\\\\"))
    return text.replace('"', '\\"')
