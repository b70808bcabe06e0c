"""Case 6: ModuleDict keys and parameter names that are keywords, start with a digit, contain
`-`, spaces, quotes, newlines, or try to inject code."""
import torch
from torch import nn

# No "." in any of them: torch refuses module names with dots. Executed, each one sets the
# builtin AIMGEN_PWNED and creates the file named by the environment variable AIMGEN_MARKER.
_PAYLOAD = ("setattr(__import__('builtins'), 'AIMGEN_PWNED', 1) or "
            "open(getattr(__import__('os'), 'environ')['AIMGEN_MARKER'], 'w')")
INJECT = [
    "x'); " + _PAYLOAD + "; ('",
    'x"""); ' + _PAYLOAD.replace("'", '"') + '; ("""',
    "a\n" + _PAYLOAD + "\n#",
    "a\r\n" + _PAYLOAD + " #",
    _PAYLOAD,
    "{" + _PAYLOAD + "}",
]
ODD = ["class", "import", "0conv", "1", "my-conv", "with space", "it's", 'say "hi"', "new\nline", "match", "self",
       "torch", "memory", "F", "é", "\\", "}]){", "#not a comment"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.ModuleDict({k: nn.Conv2d(4, 4, 3, padding=1) for k in ODD + INJECT})
        self.heads = nn.ModuleDict({"def": nn.Linear(4, 2), INJECT[0]: nn.Linear(4, 2)})
        self.register_parameter("scale factor'); " + _PAYLOAD + "  #", nn.Parameter(torch.ones(4)))
        self.register_buffer("None", torch.zeros(4))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for block in self.blocks.values():
            x = x + torch.relu(block(x))
        v = x.mean((2, 3)) * getattr(self, "scale factor'); " + _PAYLOAD + "  #") + getattr(self, "None")
        return {k: head(v) for k, head in self.heads.items()}
