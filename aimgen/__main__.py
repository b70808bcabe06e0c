"""``python -m aimgen`` works like the ``aimgen`` command."""
import sys

from .cli import main

sys.exit(main())
