"""Tap kinds: one file per kind of weight layer, all found through ``REGISTRY``.

Adding a kind is one file with a ``TapKind`` subclass decorated ``@REGISTRY.register`` (plus
its import here, or in the caller's own code for a user's kind)."""
from . import attention, conv, conv_transpose, functional_conv, functional_linear, linear  # noqa: F401  (registration)
from .base import REGISTRY, Arg, CallSource, Constructor, Skip, TapKind, TapSite, TapWidth

__all__ = ["REGISTRY", "Arg", "CallSource", "Constructor", "Skip", "TapKind", "TapSite", "TapWidth"]
