"""Tap handlers: one small file per kind of weight layer, all found through ``REGISTRY``."""
from . import conv, conv_transpose, functional, linear  # noqa: F401  (registration)
from .base import REGISTRY, Skip, TapHandler, TapSite

__all__ = ["REGISTRY", "Skip", "TapHandler", "TapSite"]
