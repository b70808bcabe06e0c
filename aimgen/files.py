"""Writing outputs all-or-nothing: every file goes to a temporary name beside its target and is
renamed into place only when all of them are ready; existing files are refused unless forced."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AimgenError


def check_targets(paths: list[Path], force: bool) -> None:
    for p in paths:
        if p.exists() and not force:
            raise AimgenError(f"{p} exists already; aimgen does not overwrite files silently.",
                              hint="Choose another output path, or pass --force to replace it.")
        if p.exists() and p.is_dir():
            raise AimgenError(f"{p} is a directory, not a file path.", hint="Give a file name, e.g. out.py.")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.exists():
            raise AimgenError(f"{p}: the folder {parent} does not exist.", hint="Create it first.")
        if not os.access(parent, os.W_OK):
            raise AimgenError(f"{p}: the folder {parent} is not writable.", hint="Choose a writable location.")


class Staging:
    """Temporary files for a set of outputs; ``commit`` renames them all into place."""

    def __init__(self):
        self.pending: list[tuple[Path, Path]] = []

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

    def commit(self) -> None:
        for tmp, target in self.pending:
            os.replace(tmp, target)
        self.pending.clear()

    def discard(self) -> None:
        for tmp, _ in self.pending:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            for extra in tmp.parent.glob(tmp.name + ".data"):
                extra.unlink()
        self.pending.clear()


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
