"""aimgen: give memory to a whole neural network.

Trace a PyTorch model with torch.fx and write standalone, readable source for its AiM version:
a learned memory every conv and linear layer reads, update blocks that rewrite it, and a carry
that hands it to the next batch. See README.md.
"""
from .api import Conversion, convert
from .errors import AimgenError
from .loader import InputSpec
from .options import Options

__all__ = ["AimgenError", "Conversion", "InputSpec", "Options", "convert"]
__version__ = "0.1.0"
