"""The experiment's own errors (both are ``AimgenError``: exit code 2, one paragraph each)."""
from __future__ import annotations

from ..errors import AimgenError


class DataError(AimgenError):
    """The data set cannot be used (missing classes, empty classes, unreadable images, an
    unknown UCR/UEA name, a missing optional package...)."""


class ExperimentError(AimgenError):
    """The model, the options or the outputs do not fit an experiment."""
