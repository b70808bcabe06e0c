"""``python -m aimgen`` works like the ``aimgen`` command."""
import sys

from .cli import command

sys.exit(command())
