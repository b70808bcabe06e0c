"""The one exception type users see. Every message says what failed, where, and what to do."""
from __future__ import annotations


class AimgenError(Exception):
    """A failure the user can act on. ``str(err)`` is one paragraph: what, where, what to do."""

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message.strip()
        self.hint = hint.strip() if hint else None
        super().__init__(self.message + (f" {self.hint}" if self.hint else ""))

    def __str__(self) -> str:  # not args[0]: torch.fx's Interpreter rewrites args in flight
        return self.message + (f" {self.hint}" if self.hint else "")


class LoadError(AimgenError):
    """The user's file or the object named in it could not be loaded."""


class TraceError(AimgenError):
    """torch.fx could not trace the model, or running it on the example input failed."""


class PlanError(AimgenError):
    """The options cannot be met (budget, patterns that match nothing, ...)."""


class RenderError(AimgenError):
    """A module or operation cannot be written out as standalone source."""


class ValidationError(AimgenError):
    """The generated model failed one of the checks of the spec."""


class WeightsError(AimgenError):
    """Weights are not a plain state_dict, or do not fit the model."""


class ExportError(AimgenError):
    """The ONNX export or its parity check failed."""
