"""Paths in and out, without importing torch (so a wrong path is reported at once).

In: ``FILE.py[:NAME]`` targets and input files (weights, generated files) are checked before
any heavy import. Out: every file goes to a temporary name beside its target and is renamed
into place only when all of them are ready; existing files are refused unless forced.
"""
from __future__ import annotations

import os
import sysconfig
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AimgenError, LoadError

_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def installed(file: str) -> bool:
    """Whether a source file is the standard library's or an installed package's (not the
    user's own code)."""
    path = str(Path(file).resolve())
    return any(path.startswith(d + "/") or path == d for d in _LIBRARY_DIRS) or "site-packages" in path


def split_target(target: str) -> tuple[Path, str | None]:
    """``path/to/file.py:Name`` -> (Path, 'Name'); a Windows drive colon is not a separator."""
    path, name = target, None
    head, sep, tail = target.rpartition(":")
    if sep and head and tail and "/" not in tail and "\\" not in tail and not tail.endswith(".py"):
        path, name = head, tail
    return Path(path), name


def check_source(target: str) -> tuple[Path, str | None]:
    """The model file of ``FILE.py[:NAME]``, refused here if it is missing or not Python."""
    path, name = split_target(target)
    if not path.exists():
        raise LoadError(f"{path}: no such file.", hint="Check the path to your model file.")
    if path.is_dir() or path.suffix != ".py":
        raise LoadError(f"{path}: not a Python file.", hint="Give a .py file, e.g. models.py:MyNet.")
    return path, name


def check_input(path: str | Path, what: str, hint: str, field: str | None = None,
                error: type[AimgenError] = AimgenError) -> Path:
    """An input file that must exist (``what``: 'weights file', 'generated file', ...)."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path}: no such file.", hint=hint, field=field)
    if path.is_dir():
        raise error(f"{what} {path}: is a folder, not a file.", hint=hint, field=field)
    return path


def check_targets(paths: list[Path], force: bool) -> None:
    """Refuse outputs that exist (unless ``force``) or cannot be written, before any work."""
    for p in paths:
        p = Path(p)
        if p.exists() and p.is_dir():
            raise AimgenError(f"{p} is a directory, not a file path.", hint="Give a file name, e.g. out.py.")
        if p.exists() and not force:
            raise AimgenError(f"{p} exists already; aimgen does not overwrite files silently.",
                              hint="Choose another output path, or pass `force=True` to replace it.", field="force")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.exists():
            raise AimgenError(f"{p}: the folder {parent} does not exist.", hint="Create it first.")
        if not os.access(parent, os.W_OK):
            raise AimgenError(f"{p}: the folder {parent} is not writable.", hint="Choose a writable location.")


class Staging:
    """Temporary files for a set of outputs; ``commit`` renames them all into place (and removes
    the files marked with ``remove``)."""

    def __init__(self):
        self.pending: list[tuple[Path, Path]] = []
        self.removals: list[Path] = []

    def path_for(self, target: Path) -> Path:
        target = Path(target)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}",
                                       dir=str(target.parent if str(target.parent) else "."))
        except OSError as err:
            raise AimgenError(f"{target}: cannot write there: {err.strerror or err}.",
                              hint="Choose a writable location.") from None
        os.close(fd)
        mask = os.umask(0)  # mkstemp makes private files; outputs get the usual umask mode
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        self.pending.append((Path(tmp), target))
        return Path(tmp)

    def write_text(self, target: Path, text: str) -> Path:
        tmp = self.path_for(target)
        tmp.write_text(text, encoding="utf-8")
        return tmp

    def remove(self, target: Path) -> None:
        """Delete ``target`` when the staged files are committed (a stale file that would be
        taken for one of the new outputs)."""
        self.removals.append(Path(target))

    def commit(self) -> None:
        for tmp, target in self.pending:
            os.replace(tmp, target)
        for target in self.removals:
            target.unlink(missing_ok=True)
        self.pending.clear()
        self.removals.clear()

    def discard(self) -> None:
        for tmp, _ in self.pending:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            for extra in tmp.parent.glob(tmp.name + ".data"):
                extra.unlink()
        self.pending.clear()
        self.removals.clear()


@contextmanager
def staged():
    stage = Staging()
    try:
        yield stage
    except BaseException:
        stage.discard()
        raise
    else:
        stage.commit()
