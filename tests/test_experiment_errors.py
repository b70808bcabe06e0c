"""aimgen/experiment/errors.py: the experiment's errors are user errors (exit code 2) whose text
is one paragraph, the hint after the message."""
from __future__ import annotations

import pytest

from aimgen.errors import AimgenError
from aimgen.experiment.errors import DataError, ExperimentError


@pytest.mark.parametrize("cls", [DataError, ExperimentError])
def test_experiment_errors_are_user_errors_with_their_hint(cls):
    err = cls("the data set 'Nope' is not a bundled UCR/UEA set", hint="Give one of GunPoint, ArrowHead.")
    assert isinstance(err, AimgenError) and err.exit_code == 2
    assert str(err) == "the data set 'Nope' is not a bundled UCR/UEA set. Give one of GunPoint, ArrowHead."
