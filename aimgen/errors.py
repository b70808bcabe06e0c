"""The exceptions users see. Every message says what failed, where, and what to do.

``AimgenError`` and its subclasses are the user's to act on (exit code 2 on the command line);
``InternalError`` is a bug in aimgen (exit code 3). Library messages name API arguments
(``memory_size=``); ``field`` says which ``Options`` field a message is about, so the CLI can
name the flag (``--memory-size``) instead.
"""
from __future__ import annotations


class AimgenError(Exception):
    """A failure the user can act on. ``str(err)`` is one paragraph: what, where, what to do."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 cause: str | None = None):
        self.message = message.strip()
        self.hint = hint.strip() if hint else None
        self.field = field      # the Options field the message is about, if any
        self.cause = cause      # a short machine-kept cause (e.g. the exporter's first line)
        super().__init__(str(self))

    def __str__(self) -> str:  # not args[0]: torch.fx's Interpreter rewrites args in flight
        return sentence(self.message) + (f" {self.hint}" if self.hint else "")


def sentence(text: str) -> str:
    """``text`` ending as a sentence does, so a hint after it reads as the next sentence (torch's
    own messages, quoted into ours, often end without a full stop)."""
    text = text.rstrip()
    return text if not text or text[-1] in ".!?:;)]}'\"`" else text + "."


class InternalError(AimgenError):
    """A bug in aimgen: an invariant of its own did not hold. Please report it."""

    exit_code = 3


class ConversionInvalid(InternalError):
    """The file a conversion wrote failed its validation: a bug in aimgen, unless the base model
    fails the same way (an operation the ONNX exporter lacks, a forward that is random in eval());
    the hint says which checks point where."""


class LoadError(AimgenError):
    """The user's file or the object named in it could not be loaded."""


class TraceError(AimgenError):
    """The model could not be captured, or running it on the example input failed."""


class PlanError(AimgenError):
    """The options cannot be met (budget, patterns that match nothing, ...)."""


class RenderError(AimgenError):
    """A module or operation cannot be written out as standalone source."""


class KeepWhole(RenderError):
    """Modules whose members cannot be written out one by one (an integer buffer too large for
    a literal), but whose own code can build them: the conversion keeps them whole."""

    def __init__(self, message: str, *, modules: dict[str, str], hint: str | None = None):
        super().__init__(message, hint=hint)
        self.modules = modules  # qualified name -> why, as the report's kept-whole list says it; '' is the root


class ValidationError(AimgenError):
    """The generated model failed one of the checks of the spec; ``failed`` names them."""

    def __init__(self, message: str, *, failed: tuple[str, ...] = (), **kwargs):
        super().__init__(message, **kwargs)
        self.failed = tuple(failed)


class GeneratedFileError(AimgenError):
    """A file given as aimgen's output is not one, or does not import or build."""


class WeightsError(AimgenError):
    """Weights are not a plain state_dict, or do not fit the model."""


class ExportError(AimgenError):
    """The ONNX export or its parity check failed."""
